"""`imgbench download`: fetch and verify every weight and suite file a run needs, so it then runs offline.

It takes the arguments of `imgbench run` (the same parser options and the same request), plans that run
with the run's own code, and fetches what the plan's resolvers name (imgbench.download).
"""

from __future__ import annotations

import argparse
import sys

from imgbench.cli.common import add_run_options, run_request

EXAMPLES = """examples:
  imgbench download --method img --task drawbench --model sdxl
  imgbench download --task geneval --model sdxl-dpo --preset img-paper --scorer geneval,clipscore
  imgbench download --method instruct-pix2pix --task t2i-compbench --model sdxl --no-score
then, on the offline machine (after copying $HF_HOME/hub and the imgbench cache):
  IMGBENCH_OFFLINE=1 imgbench run --method img --task drawbench --model sdxl
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("download", help="fetch and verify every file a run needs (then run offline)",
                                   epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_options(parser)
    parser.add_argument("--no-score", action="store_true",
                        help="only what `imgbench generate` needs (no scorer weights)")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from rich.table import Table

    from imgbench.cli.console import output_console
    from imgbench.download import download, human_size
    from imgbench.runner import command_line

    if not sys.stderr.isatty():  # progress bars in a log are noise: one line per repository and per new file
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    console = output_console()
    done = download(run_request(args, command_line()), score=not args.no_score,
                    say=lambda line: console.print(line, markup=False, highlight=False))
    if not done:
        console.print("download: this run reads nothing from outside imgbench (shipped or local files only); "
                      "nothing to fetch.", markup=False, highlight=False)
        return 0
    table = Table(title="what this run reads", title_justify="left")
    for column in ("for", "source", "revision", "status", "files", "size", "where"):
        table.add_column(column, overflow="fold")
    for item in done:
        need = item.need
        status = item.status + (f" ({len(item.new)} new)" if item.new else "") + \
            (f" ({len(item.repaired)} damaged, refetched)" if item.repaired else "")
        table.add_row(need.role, need.source, item.commit or need.revision or "-", status,
                      str(len(item.files)) if item.files else "-", human_size(item.size), item.where)
    console.print(table)
    fetched = sum(item.size for item in done if item.status in ("fetched", "repaired"))
    counts = {s: sum(item.status == s for item in done) for s in ("fetched", "repaired", "present", "local")}
    hub = any(item.commit for item in done)
    console.print(f"download: {len(done)} sources ({', '.join(f'{n} {s}' for s, n in counts.items() if n)}; "
                  f"{human_size(fetched)} in sources with new files); "
                  + ("every hub file matches the hash the hub served, and " if hub else "")
                  + "the run, planned with IMGBENCH_OFFLINE=1, finds everything.", markup=False, highlight=False)
    return 0
