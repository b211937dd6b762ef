"""Issue 23: ranks started by torchrun are shards; results are identical at any world size, and a dead rank loses
only its unfinished items.

Real launches (torchrun --standalone, gloo on CPU) against one single-process reference per world: the shapes
world (base and img, 7 items of one seed at 2 sampler steps: 5/2 items over 2 ranks, 1/5/1 over 3) and the dummy
model (generate and score as separate launches; `accelerate launch`, whose multi-GPU launcher is torchrun's and
also runs on CPU; a rank killed mid-run).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scale_support import run_content, torchrun, torchrun_command

from imgbench.distributed import Ranks, choose_shard, rank_device, ranks_from_env
from imgbench.errors import UserError
from imgbench.store import Shard

SHAPES = ("--task", "shapes", "--limit", "7", "--seeds", "0", "--model-arg", "steps=2")
DUMMY = ("--task", "tiny", "--model", "dummy", "--method", "base")


@pytest.fixture(scope="module")
def shapes_single(tmp_path_factory):
    """One process: base, then img (which reuses base's images), as a user would run them."""
    from imgbench.cli import main

    output = tmp_path_factory.mktemp("single")
    for method in ("base", "img"):
        assert main(["run", *SHAPES, "--method", method, "--output", str(output)]) == 0
    return output


@pytest.mark.parametrize("nproc", [2, 3])
def test_ranks_write_what_one_process_writes_on_the_shapes_world(tmp_path, shapes_single, nproc):
    for method in ("base", "img"):
        torchrun(nproc, "run", *SHAPES, "--method", method, "--output", tmp_path)
    runs = list(tmp_path.glob("runs/shapes/shapes/*/*"))
    assert sorted(p.name for p in runs[0].glob("generations*.jsonl")) == \
        [f"generations.shard-{i}-of-{nproc}.jsonl" for i in range(nproc)]
    expected = run_content(shapes_single)
    assert len(expected) == 2 and all(len(run["generations"]) == 7 for run in expected.values())
    assert run_content(tmp_path) == expected


def test_generate_and_score_under_ranks_equal_one_process(tmp_path, cli):
    assert cli("generate", *DUMMY, "--output", tmp_path / "single")[0] == 0
    (single,) = (tmp_path / "single").glob("runs/*/*/*/*")
    assert cli("score", "--run", single, "--scorer", "dummy")[0] == 0
    torchrun(2, "generate", *DUMMY, "--output", tmp_path / "ranks")
    (run,) = (tmp_path / "ranks").glob("runs/*/*/*/*")
    done = torchrun(2, "score", "--run-dir", run, "--scorer", "dummy")  # torchrun reads --run as its --run-path
    assert done.stdout.count("scored dummy") == 1  # rank 0 speaks for the group
    assert run_content(tmp_path / "ranks") == run_content(tmp_path / "single")


def test_accelerate_launch_ranks_equal_one_process(tmp_path, cli):
    pytest.importorskip("accelerate")
    assert cli("run", *DUMMY, "--scorer", "dummy", "--output", tmp_path / "single")[0] == 0
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",  # no config file needed
               "-m", "imgbench", "run", *DUMMY, "--scorer", "dummy", "--output", str(tmp_path / "ranks")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-6000:]
    assert len(list(tmp_path.glob("ranks/runs/*/*/*/*/generations.shard-*-of-2.jsonl"))) == 2
    assert run_content(tmp_path / "ranks") == run_content(tmp_path / "single")


def _rank_pid(launcher: int, rank: int) -> int | None:
    """The worker of torchrun process `launcher` whose RANK is `rank` (read from /proc)."""
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == launcher \
                    and f"\0RANK={rank}\0".encode() in b"\0" + (proc / "environ").read_bytes():
                return int(proc.name)
        except (OSError, IndexError, ValueError):
            continue
    return None


def _complete_lines(run: Path) -> dict[str, list[bytes]]:
    return {str(p.relative_to(run)): [line for line in p.read_bytes().split(b"\n")[:-1]]
            for p in [*run.glob("generations*.jsonl"), *run.glob("scores/*.jsonl")]}


def test_a_killed_rank_loses_only_its_unfinished_items(tmp_path, cli):
    args = (*DUMMY, "--scorer", "dummy", "--model-arg", "delay=0.1", "--output", tmp_path / "ranks")
    assert cli("run", *DUMMY, "--scorer", "dummy", "--output", tmp_path / "single")[0] == 0
    launcher = subprocess.Popen(torchrun_command(2, "run", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while not any(len(p.read_bytes().splitlines()) >= 3
                      for p in tmp_path.glob("ranks/runs/*/*/*/*/generations.shard-1-of-2.jsonl")):
            assert launcher.poll() is None and time.monotonic() < deadline, launcher.communicate()
            time.sleep(0.05)
        pid = _rank_pid(launcher.pid, 1)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        launcher.communicate(timeout=120)
    finally:
        launcher.kill()
    assert launcher.returncode != 0  # torchrun stops the other rank when one dies
    (run,) = (tmp_path / "ranks").glob("runs/*/*/*/*")
    before = _complete_lines(run)
    kept = sum(len(lines) for name, lines in before.items() if name.startswith("generations"))
    assert 3 <= kept < 24 and not (run / "metrics.json").exists()

    torchrun(2, "run", *args)
    after = _complete_lines(run)
    for name, lines in before.items():  # every finished record is kept as it was, ahead of the new ones
        assert after[name][:len(lines)] == lines, name
    assert run_content(tmp_path / "ranks") == run_content(tmp_path / "single")  # merged: each item exactly once


def test_merge_writes_the_metrics_of_shards_that_never_met(tmp_path, cli):
    single, shards = tmp_path / "single", tmp_path / "shards"
    assert cli("run", *DUMMY, "--scorer", "dummy", "--output", single)[0] == 0
    assert cli("generate", *DUMMY, "--shard", "1/3", "--output", shards)[0] == 0
    (run,) = shards.glob("runs/*/*/*/*")
    status, _, err = cli("merge", run)
    assert status == 2 and "has no scores yet" in err
    for index in (0, 2):
        assert cli("run", *DUMMY, "--scorer", "dummy", "--shard", f"{index}/3", "--output", shards)[0] == 0
    status, _, err = cli("merge", run)
    assert status == 2 and "shard 1/3:" in err and "shard 0/3" not in err  # 1/3 only generated
    assert cli("run", *DUMMY, "--scorer", "dummy", "--shard", "1/3", "--output", shards)[0] == 0
    (run / "metrics.json").unlink()
    status, out, _ = cli("merge", run)
    assert status == 0 and "24" in out
    assert run_content(shards) == run_content(single)


def test_the_slurm_examples_run_as_array_tasks(tmp_path, cli):
    """examples/slurm/array.sbatch run as its two array tasks would be (one after the other; sbatch absent)."""
    examples = Path(__file__).resolve().parent.parent / "examples" / "slurm"
    for script in examples.glob("*.sbatch"):
        assert subprocess.run(["bash", "-n", script]).returncode == 0, script
    assert cli("run", *DUMMY, "--scorer", "dummy", "--output", tmp_path / "single")[0] == 0
    env = {**os.environ, "IMGBENCH_ARGS": " ".join((*DUMMY, "--scorer", "dummy")), "RESULTS": str(tmp_path / "array"),
           "HF_HOME": str(tmp_path / "hf"), "SLURM_ARRAY_TASK_COUNT": "2",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for task in ("1", "0"):
        done = subprocess.run(["bash", examples / "array.sbatch"], env={**env, "SLURM_ARRAY_TASK_ID": task},
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    assert run_content(tmp_path / "array") == run_content(tmp_path / "single")  # the last task wrote the metrics


# ranks from the environment -------------------------------------------------------------------------------------
def test_ranks_come_from_torchrun_then_srun_and_an_sbatch_script_is_one_process():
    assert ranks_from_env({}) == Ranks()
    assert ranks_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == Ranks(3, 4, 1, "torchrun")
    srun = {"SLURM_PROCID": "5", "SLURM_NTASKS": "16", "SLURM_LOCALID": "1", "SLURM_STEP_NUM_TASKS": "8"}
    assert ranks_from_env(srun) == Ranks(5, 8, 1, "srun")  # the step's tasks, not the allocation's
    assert ranks_from_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "8"}) == Ranks()  # the batch script itself
    assert ranks_from_env({**srun, "RANK": "0", "WORLD_SIZE": "2"}).launcher == "torchrun"  # torchrun under srun
    assert Ranks(2, 3).shard == Shard(2, 3)


@pytest.mark.parametrize("environ, message", [
    ({"RANK": "x", "WORLD_SIZE": "2"}, "is not an integer"),
    ({"RANK": "2", "WORLD_SIZE": "2"}, "must be below the world size"),
    ({"RANK": "-1", "WORLD_SIZE": "2"}, "is negative"),
])
def test_a_broken_launcher_environment_is_named(environ, message):
    with pytest.raises(UserError, match=message):
        ranks_from_env(environ)


def test_a_rank_is_its_shard_and_shard_is_refused_beside_a_launcher():
    assert choose_shard(None, Ranks(1, 2, launcher="torchrun")) == Shard(1, 2)
    assert choose_shard("1/4", Ranks()) == Shard(1, 4)
    with pytest.raises(UserError, match="drop --shard"):
        choose_shard("0/2", Ranks(0, 2, launcher="torchrun"))


def test_a_rank_keeps_its_device_type_on_a_machine_without_gpus():
    import torch

    if torch.cuda.is_available():
        pytest.skip("checks the CPU-only path")
    ranks = Ranks(1, 2, 1, "torchrun")
    assert rank_device(None, ranks) is None and rank_device("cpu", ranks) == "cpu"
    assert rank_device("cuda", Ranks()) == "cuda"  # one process: untouched (checked later by the model)


@pytest.fixture
def two_gpus(monkeypatch):
    """torch's answers on a node with two visible GPUs (this machine has none); records set_device calls."""
    import torch

    chosen: list[int] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    return chosen


def test_each_rank_takes_the_gpu_of_its_local_rank(two_gpus):
    assert rank_device("cuda", Ranks(3, 4, 1, "torchrun")) == "cuda:1" and two_gpus == [1]
    assert rank_device(None, Ranks(2, 4, 0, "torchrun")) is None and two_gpus == [1, 0]  # plain "cuda" → GPU 0
    assert rank_device("cuda", Ranks(5, 8, 3, "srun")) == "cuda:1"  # srun binding: the task's own GPUs
    assert rank_device("cuda:0", Ranks(1, 2, 1, "torchrun")) == "cuda:0" and two_gpus == [1, 0, 1]  # as given
    with pytest.raises(UserError, match="at most 2 process"):
        rank_device("cuda", Ranks(2, 3, 2, "torchrun"))


def test_the_launch_is_recorded_with_each_invocation(tmp_path):
    torchrun(2, "generate", *DUMMY, "--seeds", "0", "--output", tmp_path)
    (run,) = tmp_path.glob("runs/*/*/*/*")
    lines = [json.loads(line) for line in (run / "invocations.jsonl").read_text().splitlines()]
    assert sorted((line["shard"], line["ranks"]["rank"]) for line in lines) == [("0/2", 0), ("1/2", 1)]
