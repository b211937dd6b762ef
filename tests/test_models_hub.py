"""Where weights come from: hub-cache snapshots, --model-path folders, fast fix-it errors, memory checks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from models_support import folders, make_model, max_diff, model_args, requests

from imgbench.errors import UserError
from imgbench.models import memory, tiny
from imgbench.models.hub import WeightSource
from imgbench.models.sd import SDXLModel

COMMITS = {"imgbench-test/tiny-sdxl": "a" * 40, "imgbench-test/tiny-dpo": "b" * 40, "imgbench-test/tiny-ip": "c" * 40}


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory) -> Path:
    """A Hugging Face cache holding the tiny SDXL, a DPO-style UNet repo and an IP-Adapter repo."""
    cache = tmp_path_factory.mktemp("hf-cache")
    f = folders()
    tiny.save_as_hub_cache(f["sdxl"], cache, "imgbench-test/tiny-sdxl", COMMITS["imgbench-test/tiny-sdxl"])
    tiny.save_as_hub_cache(f["sdxl-dpo-unet"], cache, "imgbench-test/tiny-dpo", COMMITS["imgbench-test/tiny-dpo"])
    tiny.save_as_hub_cache(f["sdxl-ip"], cache, "imgbench-test/tiny-ip", COMMITS["imgbench-test/tiny-ip"])
    return cache


def _hub_model(cache: Path, **overrides) -> SDXLModel:
    args = {"hub_id": "imgbench-test/tiny-sdxl", "revision": None, "cache_dir": str(cache),
            "ip_adapter_id": "imgbench-test/tiny-ip", "ip_adapter_subfolder": "sdxl_models",
            "ip_adapter_weight": "ip-adapter-plus_sdxl_vit-h.safetensors", "device": "cpu", "dtype": "fp32",
            "steps": 2}
    return SDXLModel(**{**args, **overrides})


def test_loads_by_hub_id_from_a_cache_snapshot_and_records_the_served_commit(hub_cache, monkeypatch):
    monkeypatch.setenv("IMGBENCH_OFFLINE", "1")
    model = _hub_model(hub_cache, unet_id="imgbench-test/tiny-dpo")
    weights = model.identity()["weights"]
    assert weights["pipeline"] == {"hub_id": "imgbench-test/tiny-sdxl", "revision": "a" * 40,
                                   "requested_revision": "unpinned"}
    assert weights["unet"]["revision"] == "b" * 40
    # same bytes as the --model-path folder + unet_path → same images
    from_folders = make_model("sdxl", unet_path=str(folders()["sdxl-dpo-unet"]))
    batch = requests()[:2]
    for a, b in zip(model.generate(batch), from_folders.generate(batch), strict=True):
        assert max_diff(a, b) == 0
    assert tuple(model.encode_image(model.generate(batch[:1])).shape) == (1, 16, 64)


def test_pinned_revision_missing_from_the_cache_is_a_user_error(hub_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert _hub_model(hub_cache, revision="a" * 40).identity()["weights"]["pipeline"]["revision"] == "a" * 40
    with pytest.raises(UserError, match="imgbench-test/tiny-sdxl"):
        _hub_model(hub_cache, revision="d" * 40)


def test_unreachable_hub_falls_back_to_the_cached_snapshot(hub_cache, monkeypatch):
    from huggingface_hub import HfApi

    def refuse(*args, **kwargs):
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    monkeypatch.delenv("IMGBENCH_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(HfApi, "model_info", refuse)
    resolved = WeightSource("base pipeline", "imgbench-test/tiny-sdxl", cache_dir=str(hub_cache)).resolve()
    assert resolved.commit == "a" * 40 and resolved.local_only
    with pytest.raises(UserError, match="unreachable"):
        WeightSource("base pipeline", "nobody/nothing", cache_dir=str(hub_cache)).resolve()


def test_missing_weights_message_names_the_repo_and_both_fixes(tmp_path, monkeypatch):
    monkeypatch.setenv("IMGBENCH_OFFLINE", "1")
    with pytest.raises(UserError) as caught:
        SDXLModel(hub_id="stabilityai/stable-diffusion-xl-base-1.0", cache_dir=str(tmp_path), device="cpu")
    message = str(caught.value)
    for part in ("stabilityai/stable-diffusion-xl-base-1.0", "hf download stabilityai/stable-diffusion-xl-base-1.0",
                 "huggingface-cli download", "--model-path", "offline"):
        assert part in message
    with pytest.raises(UserError, match="unet_path"):
        make_model("sdxl", unet_id="someone/missing-unet", cache_dir=str(tmp_path))
    with pytest.raises(UserError, match="model_index.json"):
        make_model("sdxl", model_path=str(tmp_path))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cli_env(tmp_path: Path, offline: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k.upper() not in {"IMGBENCH_OFFLINE", "HF_HUB_OFFLINE", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                                "NO_PROXY", "HF_ENDPOINT"}}
    env.update(HF_HOME=str(tmp_path / "hf-home"), HF_HUB_CACHE=str(tmp_path / "hf-cache"))
    if offline:
        env.update(IMGBENCH_OFFLINE="1", HF_HUB_OFFLINE="1")
    else:  # every download routed to a closed loopback port
        closed = f"http://127.0.0.1:{_closed_port()}"
        for var in ("HF_ENDPOINT", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                    "all_proxy"):
            env[var] = closed
    return env


@pytest.mark.parametrize("offline", [True, False], ids=["offline-env", "closed-port"])
@pytest.mark.parametrize("model, repo", [("sdxl", "stabilityai/stable-diffusion-xl-base-1.0"),
                                         ("flux-dev", "black-forest-labs/FLUX.1-dev")])
def test_cli_run_without_weights_fails_fast_with_the_fix(tmp_path, offline, model, repo):
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "imgbench", "run", "--model", model, "--task", "tiny",
                             "--scorer", "dummy", "--output", str(tmp_path / "results")],
                            env=_cli_env(tmp_path, offline), capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - start
    assert result.returncode == 2, result.stderr
    assert elapsed < 5, f"took {elapsed:.1f} s"
    assert repo in result.stderr and f"hf download {repo}" in result.stderr and "--model-path" in result.stderr
    assert ("offline" in result.stderr) if offline else ("unreachable" in result.stderr)


def test_cli_run_with_model_path(tmp_path):
    from imgbench.cli import main

    args = model_args("sdxl")
    code = main(["run", "--model", "sdxl", "--model-path", args["model_path"], "--device", "cpu", "--dtype", "fp32",
                 "--model-arg", "steps=2", "--model-arg", f"ip_adapter_path={args['ip_adapter_path']}",
                 "--task", "tiny", "--scorer", "dummy", "--seeds", "0", "--limit", "2", "--batch-size", "2",
                 "--output", str(tmp_path)])
    assert code == 0
    (run_json,) = tmp_path.glob("runs/tiny/sdxl/base/*/run.json")
    model = json.loads(run_json.read_text())["identity"]["model"]
    assert model["name"] == "sdxl" and model["weights"]["pipeline"]["path_digest"] and model["steps"] == 2
    assert len(list(run_json.parent.glob("images/*/0.png"))) == 2


def test_memory_check_suggests_offload_and_dtype(monkeypatch):
    with pytest.raises(UserError, match="cpu_offload=true.*--dtype fp16"):
        memory.check_fits("model sdxl", {"unet": 5 * memory.GB, "text": 2 * memory.GB}, "cuda:0", cpu_offload=False,
                          free=4 * memory.GB)
    memory.check_fits("model sdxl", {"unet": 2 * memory.GB, "text": 2 * memory.GB}, "cuda:0", cpu_offload=True,
                      free=3 * memory.GB)  # offload: only the largest component must fit
    monkeypatch.setattr(memory, "available_bytes", lambda device: 1024)
    model = make_model("sd15")
    with pytest.raises(UserError, match="needs about .* GB on cpu"):
        model.generate(requests()[:1])


def test_parameter_count_comes_from_safetensors_headers():
    pipe = tiny.tiny_sd15_pipeline()
    counts = memory.folder_params(folders()["sd15"])
    assert counts["unet"] == sum(p.numel() for p in pipe.unet.parameters())
    assert counts["vae"] == sum(p.numel() for p in pipe.vae.parameters())


def test_model_modules_import_without_torch_and_ls_lists_every_model():
    code = ("import sys, imgbench.models.sd, imgbench.models.flux, imgbench.models.hub; "
            "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    out = subprocess.run([sys.executable, "-m", "imgbench", "ls", "models"], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "COLUMNS": "400"}).stdout
    expected = {"sd15": "stable-diffusion-v1-5/stable-diffusion-v1-5",
                "sdxl": "stabilityai/stable-diffusion-xl-base-1.0",
                "flux-dev": "black-forest-labs/FLUX.1-dev", "flux-schnell": "black-forest-labs/FLUX.1-schnell",
                "sdxl-dpo": "mhdang/dpo-sdxl-text2image-v1", "sd15-dpo": "mhdang/dpo-sd1.5-text2image-v1",
                "sdxl-spo": "SPO-Diffusion-Models/SPO-SDXL_4k-p_10ep", "sdxl-mapo": "mapo-t2i/mapo-beta",
                "sd15-kto": "jacklishufan/diffusion-kto"}
    for name, repo in expected.items():
        row = next((line for line in out.splitlines() if line.startswith(f"│ {name} ")), "")
        assert repo in row and "unpinned" in row and " GB " in row, name
    assert "16 x 2048" in out and "4 x 4096" in out
