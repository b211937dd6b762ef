"""With no local weights every hub-backed scorer fails within 5 s, naming the hub id and how to get it.

Checked twice, each in a fresh interpreter with an empty Hugging Face cache: with IMGBENCH_OFFLINE /
HF_HUB_OFFLINE set, and with them unset but HF_ENDPOINT and every proxy variable pointing at a closed
loopback port (so any download attempt is refused at once).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

HUB_IDS = {"clipscore": "openai/clip-vit-large-patch14", "pickscore": "yuvalkirstain/PickScore_v1",
           "hpsv2": "xswu/HPSv2", "hpsv2.1": "xswu/HPSv2", "aesthetic": "openai/clip-vit-large-patch14",
           "imagereward": "THUDM/ImageReward", "vqascore": "Qwen/Qwen2.5-VL-7B-Instruct",
           "vqascore-llava-ov": "llava-hf/llava-onevision-qwen2-7b-ov-hf",
           "geneval": "google/owlv2-base-patch16-ensemble"}

PROBE = """
import json, sys, time
from imgbench.components import build_scorer
from imgbench.errors import UserError
out = {}
for name in sys.argv[1:]:
    start = time.monotonic()
    try:
        build_scorer(name, {"device": "cpu"})
        out[name] = {"error": None}
    except UserError as exc:
        out[name] = {"error": str(exc)}
    out[name]["seconds"] = time.monotonic() - start
print(json.dumps(out))
"""


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # released on close: nothing listens there


def run_probe(env_changes: dict[str, str | None], tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("IMGBENCH_OFFLINE", "HF_HUB_OFFLINE", "HF_ENDPOINT") and not k.lower().endswith("_proxy")}
    env.update({"HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hf" / "hub")})
    env.update({k: v for k, v in env_changes.items() if v is not None})
    result = subprocess.run([sys.executable, "-c", PROBE, *HUB_IDS], env=env, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mode", ["offline-flags", "closed-port"])
def test_missing_weights_fail_fast_with_hub_id_and_fix(mode, tmp_path):
    if mode == "offline-flags":
        changes = {"IMGBENCH_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    else:
        url = f"http://127.0.0.1:{closed_port()}"
        changes = {"HF_ENDPOINT": url, **{k: url for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy",
                                                          "https_proxy", "all_proxy")}}
    results = run_probe(changes, tmp_path)
    for name, hub_id in HUB_IDS.items():
        outcome = results[name]
        assert outcome["error"], f"{name} did not fail without weights"
        assert hub_id in outcome["error"] and "hf download" in outcome["error"], outcome["error"]
        assert outcome["seconds"] < 5.0, (name, outcome["seconds"])
        expected = "downloads are disabled" if mode == "offline-flags" else "cannot connect to 127.0.0.1"
        assert expected in outcome["error"], outcome["error"]
