#!/usr/bin/env bash
# Time the README's quick-start run exactly as a user types it (no environment variable, a fresh results
# folder), write the figure to results/quickstart_time.txt and into the README's time line.
#   bash benchmarks/quickstart_time.sh          (from the repository root, in the installed venv; idle machine)
set -euo pipefail
cd "$(dirname "$0")/.."
command_line=$(grep -o "imgbench run --method img --task shapes$" README.md | head -1)
[ -n "$command_line" ] || { echo "the README's quick-start command was not found" >&2; exit 2; }
workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(date +%s)
(cd "$workdir" && env -u OMP_NUM_THREADS -u MKL_NUM_THREADS $command_line > run.log 2>&1)
seconds=$(( $(date +%s) - start ))
cores=$(nproc)
cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
minutes=$(( (seconds + 30) / 60 ))
printf '%s\n' "command: $command_line" "wall_seconds: $seconds" "cores: $cores" "cpu: $cpu" \
  "load_average_before: $load_before" "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)" > results/quickstart_time.txt
line="Time on $cores CPU cores: $minutes minutes ($seconds s wall, \`results/quickstart_time.txt\`, measured by \`benchmarks/quickstart_time.sh\` with exactly this command)."
python3 - "$line" <<'PY'
import re, sys
from pathlib import Path
readme = Path("README.md")
text = readme.read_text()
new = re.sub(r"(<!-- quickstart-time -->).*?(<!-- /quickstart-time -->)", lambda m: m[1] + sys.argv[1] + m[2], text,
             count=1, flags=re.S)
readme.write_text(new)
PY
cat results/quickstart_time.txt
