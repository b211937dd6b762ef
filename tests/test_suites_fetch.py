"""Finding suite data: data dir, cache, download (local HTTP server), archives, offline and proxy errors."""

from __future__ import annotations

import io
import shutil
import tarfile
import time
from pathlib import Path

import pytest
from suites_support import PROXY_VARS, closed_port, copy_suite, serve, shared_suites

from imgbench import catalog
from imgbench.errors import UserError
from imgbench.suites.fetch import Remote, locate
from imgbench.task import load_task

DRAWBENCH_CSV = "DrawBench Prompts.csv"


@pytest.fixture
def env(monkeypatch, tmp_path):
    """No data dir, an empty private cache, no proxies; downloads allowed unless a test turns them off."""
    for var in ("IMGBENCH_DATA_DIR", "IMGBENCH_OFFLINE", "HF_HUB_OFFLINE", *PROXY_VARS):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("IMGBENCH_CACHE", str(tmp_path / "cache"))
    return monkeypatch


def _spec(name):
    return catalog.tasks().get(name).spec


def _alter_first_prompt(path: Path, old: str, new: str) -> None:
    text = path.read_bytes().decode("utf-8")
    assert old in text
    path.write_bytes(text.replace(old, new, 1).encode("utf-8"))


def test_one_altered_prompt_fails_the_checksum(env, tmp_path):
    folder = copy_suite("drawbench", tmp_path / "data")
    _alter_first_prompt(folder / DRAWBENCH_CSV, "A red colored car.", "A blue colored car.")
    env.setenv("IMGBENCH_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(UserError, match="content checksum .* pins"):
        load_task(_spec("drawbench"))
    # the pin covers the whole published list, so a subset task fails as well
    with pytest.raises(UserError, match="pins"):
        load_task(_spec("drawbench-counting"))


@pytest.mark.parametrize(("folder", "task"), [("drawbench", "drawbench"), ("partiprompts", "partiprompts"),
                                              ("t2i_compbench", "t2i-compbench"), ("geneval", "geneval")])
def test_other_line_endings_pass(env, tmp_path, folder, task):
    copy = copy_suite(folder, tmp_path / "data")
    for path in copy.iterdir():
        raw = path.read_bytes()
        # DrawBench's export is CRLF upstream (write LF); the others are LF (write CRLF)
        changed = raw.replace(b"\r\n", b"\n") if b"\r\n" in raw else raw.replace(b"\n", b"\r\n")
        assert changed != raw
        path.write_bytes(changed)
    env.setenv("IMGBENCH_DATA_DIR", str(tmp_path / "data"))
    assert load_task(_spec(task)).spec.prompts.content_sha256


def test_drawbench_reexport_with_other_quoting_passes(env, tmp_path):
    """A Google-Sheets style export quotes every cell; the parsed content is the same."""
    import csv

    rows = list(csv.reader(io.StringIO((shared_suites() / "drawbench" / DRAWBENCH_CSV).read_text("utf-8-sig"),
                                       newline="")))
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    (tmp_path / "data" / "drawbench").mkdir(parents=True)
    (tmp_path / "data" / "drawbench" / DRAWBENCH_CSV).write_text(out.getvalue(), encoding="utf-8")
    env.setenv("IMGBENCH_DATA_DIR", str(tmp_path / "data"))
    assert len(load_task(_spec("drawbench")).prompts) == 200


def test_incomplete_local_copy_names_the_missing_file(env, tmp_path):
    folder = copy_suite("hpdv2", tmp_path / "data")
    (folder / "photo.json").unlink()
    env.setenv("IMGBENCH_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(UserError, match=r"lacks 'photo.json'.*benchmark/photo.json.*hpdv2/photo.json"):
        load_task(_spec("hpdv2"))


def test_data_dir_that_does_not_exist_is_an_error(env, tmp_path):
    env.setenv("IMGBENCH_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="does not exist"):
        load_task(_spec("drawbench"))


def test_offline_error_names_url_and_path_then_the_cache_copy_is_used(env, tmp_path):
    env.setenv("IMGBENCH_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(UserError) as info:
        load_task(_spec("imagereward-bench"))
    assert time.perf_counter() - start < 5
    message = str(info.value)
    target = tmp_path / "cache" / "suites" / "imagereward" / "benchmark-prompts.json"
    assert "raw.githubusercontent.com/THUDM/ImageReward/c1392c6dd0fd6ecd6d416c96959ab744a6d0a8fb" in message
    assert str(target) in message
    target.parent.mkdir(parents=True)
    shutil.copy(shared_suites() / "imagereward" / "benchmark-prompts.json", target)
    task = load_task(_spec("imagereward-bench"))
    assert len(task.prompts) == 100 and task.origin.endswith("(cache)")


def test_offline_error_points_into_the_data_dir_when_one_is_set(env, tmp_path):
    (tmp_path / "data").mkdir()
    env.setenv("IMGBENCH_DATA_DIR", str(tmp_path / "data"))
    env.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match=r"offline.*" + str(tmp_path / "data" / "hpdv2" / "anime.json")):
        load_task(_spec("hpdv2"))


def test_closed_proxy_fails_fast_with_url_and_path(env, tmp_path):
    proxy = f"http://127.0.0.1:{closed_port()}"
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env.setenv(var, proxy)
    start = time.perf_counter()
    with pytest.raises(UserError, match="download failed") as info:
        load_task(_spec("partiprompts"))
    assert time.perf_counter() - start < 5
    assert "raw.githubusercontent.com/google-research/parti/5a657978" in str(info.value)
    assert str(tmp_path / "cache" / "suites" / "partiprompts" / "PartiPrompts.tsv") in str(info.value)
    assert not list((tmp_path / "cache").rglob("*.part"))  # no partial file left behind


def test_download_into_cache_then_reuse(env, tmp_path):
    with serve(shared_suites() / "t2i_compbench") as base:
        remote = Remote(what="test", data_dir="t2i", files=("color_val.txt", "shape_val.txt"), url=base + "/{file}")
        first = locate(remote)
        assert first.origin == "downloaded"
        assert (first.folder / "shape_val.txt").read_bytes() == \
            (shared_suites() / "t2i_compbench" / "shape_val.txt").read_bytes()
    second = locate(remote)  # server gone: the cache answers
    assert second.origin == "cache" and second.folder == first.folder


def test_download_of_a_missing_file_is_a_clear_error(env, tmp_path):
    with serve(tmp_path) as base:
        remote = Remote(what="test", data_dir="x", files=("absent.json",), url=base + "/{file}")
        with pytest.raises(UserError, match=r"HTTP 404 .*absent.json"):
            locate(remote)


def test_archive_folder_is_extracted(env, tmp_path):
    """DPG-Bench style: a folder of one-prompt files taken from a GitHub tarball at a commit."""
    source = tmp_path / "srv"
    source.mkdir()
    with tarfile.open(source / "repo.tar.gz", "w:gz") as archive:
        for name, text in (("ELLA-abc/dpg_bench/prompts/0.txt", "a cat"), ("ELLA-abc/dpg_bench/prompts/x7.txt",
                           "a dog"), ("ELLA-abc/README.md", "readme"), ("ELLA-abc/dpg_bench/../evil.txt", "no")):
            data = text.encode()
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    with serve(source) as base:
        remote = Remote(what="test", data_dir="dpg", files=("prompts/",), url=base + "/repo.tar.gz#dpg_bench")
        located = locate(remote)
    assert sorted(p.name for p in (located.folder / "prompts").iterdir()) == ["0.txt", "x7.txt"]
    assert not (located.folder / "README.md").exists() and not (tmp_path / "cache" / "suites" / "evil.txt").exists()
    assert [p.name for p in (tmp_path / "cache" / "suites").iterdir()] == ["dpg"]  # staging folders cleaned up


def test_silent_proxy_hits_the_read_timeout(env, tmp_path):
    """A proxy that accepts the connection and never answers: the short socket timeout ends it, not a hang."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody ever reads or writes
        proxy = f"http://127.0.0.1:{silent.getsockname()[1]}"
        for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            env.setenv(var, proxy)
        env.setenv("IMGBENCH_DOWNLOAD_TIMEOUT", "0.5")
        start = time.perf_counter()
        with pytest.raises(UserError, match=r"download failed \(.*timed out") as info:
            load_task(_spec("tifa"))
        assert 0.4 < time.perf_counter() - start < 4
    assert str(tmp_path / "cache" / "suites" / "tifa" / "tifa_v1.0_text_inputs.json") in str(info.value)
    assert not list((tmp_path / "cache").rglob("*.part"))
