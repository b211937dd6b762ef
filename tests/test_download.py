"""`imgbench download` against a local hub mirror: it fetches every file the run reads (model, IP-Adapter,
scorer), verifies each against the hub's hash, refetches damaged or deleted files, fetches nothing on a rerun,
and the very same run then works with downloads off.

The mirror (tests/hub_mirror.py) serves tiny real repos on 127.0.0.1; `imgbench` runs as a subprocess with
HF_ENDPOINT pointing at it, because huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE at import.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hub_mirror import commit_of, serve

from imgbench.download import loader_files

SDXL, DPO, IP, CLIP = ("imgbench-test/tiny-sdxl", "imgbench-test/tiny-dpo", "imgbench-test/tiny-ip",
                       "imgbench-test/tiny-clip")
RUN_ARGS = ["--task", "tiny", "--model", "sdxl-dpo", "--model-arg", f"hub_id={SDXL}", "--model-arg", f"unet_id={DPO}",
            "--model-arg", f"ip_adapter_id={IP}", "--model-arg", "steps=2", "--scorer", "clipscore",
            "--scorer-arg", f"clipscore.model={CLIP}"]
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy")


@pytest.fixture(scope="module")
def mirror_root(tmp_path_factory) -> Path:
    """Repos as the hub holds them: a tiny SDXL pipeline, a DPO-style UNet repo, an IP-Adapter repo, a tiny CLIP."""
    import scorer_helpers
    from models_support import folders

    root = tmp_path_factory.mktemp("mirror")
    shutil.copytree(folders()["sdxl"], root / SDXL)
    shutil.copytree(folders()["sdxl-dpo-unet"], root / DPO)
    shutil.copytree(folders()["sdxl-ip"], root / IP)
    scorer_helpers.tiny_clip_model().save_pretrained(root / CLIP)
    scorer_helpers.clip_tokenizer().save_pretrained(root / CLIP)
    (root / CLIP / "preprocessor_config.json").write_text(json.dumps({"crop_size": 32, "image_mean": [0.5] * 3,
                                                                      "image_std": [0.5] * 3}))
    return root


def _imgbench(args: list[str], home: Path, endpoint: str, offline: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in (*PROXY_VARS, "IMGBENCH_DATA_DIR")}
    env.update(HF_HOME=str(home / "hf"), HF_HUB_CACHE=str(home / "hf" / "hub"), IMGBENCH_CACHE=str(home / "cache"),
               HF_ENDPOINT=endpoint, IMGBENCH_OFFLINE="1" if offline else "0", HF_HUB_OFFLINE="1" if offline else "0",
               NO_PROXY="127.0.0.1", COLUMNS="250")
    return subprocess.run([sys.executable, "-m", "imgbench", *args], capture_output=True, text=True, env=env,
                          cwd=home, timeout=900)


def _blob(cache: Path, repo: str, name: str) -> Path:
    return Path(os.path.realpath(cache / f"models--{repo.replace('/', '--')}" / "snapshots" / commit_of(repo) / name))


def test_download_fetches_verifies_and_the_run_then_works_offline(mirror_root, tmp_path):
    cache = tmp_path / "hf" / "hub"
    output = ["--output", str(tmp_path / "results")]
    with serve(mirror_root) as (endpoint, mirror):
        # offline, nothing cached: the run names what it lacks (what download must supply)
        refused = _imgbench(["run", *RUN_ARGS, *output], tmp_path, endpoint, offline=True)
        assert refused.returncode == 2 and SDXL in refused.stderr, refused.stderr

        first = _imgbench(["download", *RUN_ARGS, *output], tmp_path, endpoint, offline=False)
        assert first.returncode == 0, first.stderr
        unet = "unet/diffusion_pytorch_model.safetensors"
        assert f"{SDXL}/{unet}" not in mirror.gets  # the swapped-out base UNet is not fetched
        for repo in (SDXL, DPO, IP, CLIP):
            assert commit_of(repo) in first.stdout, first.stdout  # the summary names the served revision
            assert any(get.startswith(repo) for get in mirror.gets)  # over HTTP (equal files share one blob)
            for name in mirror.files(repo):
                if repo == SDXL and name.startswith("unet/"):
                    continue
                assert _blob(cache, repo, name).read_bytes() == (mirror_root / repo / name).read_bytes()
        assert "every hub file matches the hash the hub served" in first.stdout

        # a rerun fetches no file content again
        served = len(mirror.gets)
        again = _imgbench(["download", *RUN_ARGS, *output], tmp_path, endpoint, offline=False)
        assert again.returncode == 0, again.stderr
        assert len(mirror.gets) == served, mirror.gets[served:]
        assert "4 present" in again.stdout, again.stdout

        # a damaged blob is detected and fetched again; a deleted one is fetched again
        damaged = _blob(cache, DPO, unet)
        damaged.write_bytes(damaged.read_bytes()[:-10] + b"0123456789")
        _blob(cache, CLIP, "model.safetensors").unlink()
        repaired = _imgbench(["download", *RUN_ARGS, *output], tmp_path, endpoint, offline=False)
        assert repaired.returncode == 0, repaired.stderr
        assert sorted(mirror.gets[served:]) == sorted([f"{DPO}/{unet}", f"{CLIP}/model.safetensors"])
        assert "does not match the hub's hash" in repaired.stdout and "1 damaged, refetched" in repaired.stdout
        assert _blob(cache, DPO, unet).read_bytes() == (mirror_root / DPO / unet).read_bytes()

    # the mirror is gone and downloads are off: the same run generates and scores from the cache alone
    done = _imgbench(["run", *RUN_ARGS, "--limit", "1", "--seeds", "0", *output], tmp_path, endpoint, offline=True)
    assert done.returncode == 0, done.stderr
    run_json = next((tmp_path / "results").rglob("run.json"))
    weights = json.loads(run_json.read_text())["identity"]["model"]["weights"]
    assert weights["pipeline"]["revision"] == commit_of(SDXL) and weights["unet"]["revision"] == commit_of(DPO)
    assert "clipscore" in done.stdout


def test_bad_input_and_offline_mode_exit_2(cli, monkeypatch):
    status, _, err = cli("download", "--task", "tiny", "--model", "dummy")  # conftest sets IMGBENCH_OFFLINE=1
    assert status == 2 and "downloads are off" in err
    monkeypatch.setenv("IMGBENCH_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    status, _, err = cli("download", "--task", "tiny", "--model", "nosuch")
    assert status == 2 and "unknown model 'nosuch'" in err
    status, _, err = cli("download", "--task", "nosuch", "--model", "dummy")
    assert status == 2 and "unknown task 'nosuch'" in err
    status, _, err = cli("download", "--task", "tiny", "--model", "dummy", "--method", "base", "--method-arg", "x=1")
    assert status == 2 and "has no parameter 'x'" in err
    status, out, _ = cli("download", "--task", "tiny", "--model", "dummy")
    assert status == 0 and "nothing to fetch" in out


def test_loader_files_take_a_folder_configs_and_one_weight_format_without_variants():
    listing = ["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
               "unet/diffusion_pytorch_model.fp16.safetensors", "unet/diffusion_pytorch_model.bin",
               "vae/config.json", "config.json", "pytorch_model.bin", "tokenizer.json", "llava/a.json"]
    assert loader_files(listing, ("unet/",)) == ["unet/config.json", "unet/diffusion_pytorch_model.safetensors"]
    assert loader_files(listing, ("",)) == ["model_index.json", "config.json", "tokenizer.json",
                                            "pytorch_model.bin"]
    assert loader_files(listing, ("llava/*", "vae/config.json")) == ["llava/a.json", "vae/config.json"]


def test_suite_files_are_fetched_into_the_cache_and_validate_then_checks_them(cli, monkeypatch, tmp_path):
    """The suite half: `download` with the dummy model and scorer fetches only the task's files (the fix that
    `validate` names for an 'unchecked' suite); the files come over HTTP from a local copy of the suite."""
    import urllib.parse

    from needs import shared_suites
    from suites_support import serve as serve_folder

    from imgbench.suites import fetch

    monkeypatch.setenv("IMGBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("IMGBENCH_DATA_DIR", raising=False)
    args = ("download", "--task", "drawbench", "--model", "dummy", "--scorer", "dummy", "--output", str(tmp_path))
    status, out, _ = cli("validate", "--task", "drawbench")
    assert status == 1 and "unchecked" in out
    with serve_folder(shared_suites()) as base:
        monkeypatch.setattr(fetch, "file_url", lambda remote, name: f"{base}/{remote.data_dir}/"
                                                                    f"{urllib.parse.quote(name)}")
        monkeypatch.setenv("IMGBENCH_OFFLINE", "0")
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        status, out, err = cli(*args)
        assert status == 0, err
        assert "task 'drawbench'" in out and "fetched" in out and str(tmp_path / "cache") in out
        status, out, err = cli(*args)
        assert status == 0 and "1 present" in out, out + err
    monkeypatch.setenv("IMGBENCH_OFFLINE", "1")
    status, out, _ = cli("validate", "--task", "drawbench")
    assert status == 0, out


@pytest.mark.parametrize(("method", "expected"), [
    ("img", {("hub", "shi-labs/IMG", ("aligner_sdxl.pth",)), ("hub", "shi-labs/IMG", ("llava/*",))}),
    ("instruct-pix2pix", {("pipeline", "diffusers/sdxl-instructpix2pix-768", ())}),
])
def test_the_fetch_list_is_what_the_run_resolves_model_method_and_ip_adapter(method, expected, monkeypatch,
                                                                               tmp_path):
    """Planned offline with nothing cached, the run fails with MissingFiles, and the recording holds what
    download would fetch: SDXL's pipeline (fp16 and plain files: the dtype is not given), its IP-Adapter with
    the image encoder folder, and the method's own hub files."""
    from huggingface_hub import constants

    from imgbench.errors import MissingFiles
    from imgbench.needs import recording
    from imgbench.runner import RunRequest, prepare

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("IMGBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("IMGBENCH_DATA_DIR", raising=False)
    request = RunRequest(task="tiny", model="sdxl", method=method, scorers=("dummy",), output=tmp_path / "out")
    with recording() as needs, pytest.raises(MissingFiles):
        prepare(request)
    found = {(n.kind, n.source, n.files) for n in needs}
    assert ("pipeline", "stabilityai/stable-diffusion-xl-base-1.0", ()) in found
    assert ("hub", "h94/IP-Adapter", ("sdxl_models/ip-adapter-plus_sdxl_vit-h.safetensors",
                                      "models/image_encoder/")) in found
    assert expected <= found, found
    pipeline = next(n for n in needs if n.source == "stabilityai/stable-diffusion-xl-base-1.0")
    assert pipeline.variants == ("fp16", None) and pipeline.without == ()
    with recording() as needs, pytest.raises(MissingFiles):  # a swapped UNet: the base one is not fetched
        prepare(RunRequest(task="tiny", model="sdxl-dpo", method="base", scorers=("dummy",), output=tmp_path))
    assert ("hub", "mhdang/dpo-sdxl-text2image-v1", ("unet/",)) in {(n.kind, n.source, n.files) for n in needs}
    assert next(n for n in needs if n.kind == "pipeline").without == ("unet",)
