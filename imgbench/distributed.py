"""Ranks from the launchers users already have: torchrun, `accelerate launch`, srun (docs/scale.md).

A rank is a shard: rank r of w owns exactly the items `--shard r/w` owns and writes the same shard files, so a
run started under a launcher can be finished by hand with `--shard`, or the other way round, and an item's seed,
noise and result never depend on the world size. imgbench schedules nothing: the launcher starts (and, when one
dies, stops) the processes, the hash assignment splits the items, and the per-shard locks keep writers apart.
The one collective is a barrier before the metrics, and only where the launcher set up a rendezvous
(torchrun and accelerate do; srun alone does not, and SLURM array tasks never meet: `imgbench merge` then).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from imgbench.errors import UserError
from imgbench.store import Shard

logger = logging.getLogger(__name__)

BARRIER_TIMEOUT = timedelta(days=2)
"""How long rank 0 waits at the metrics barrier for the slowest rank: shares are equal by hash, but one slow
GPU on a days-long run can lag by hours; a rank that died is noticed by the launcher, which stops the rest."""


@dataclass(frozen=True)
class Ranks:
    """This process's place among the processes a launcher started (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    launcher: str | None = None
    """Which variables named the rank: "torchrun" (RANK/WORLD_SIZE, also set by accelerate) or "srun"."""
    group: bool = False
    """Whether a torch.distributed process group joins the ranks (so they can meet at a barrier)."""

    @property
    def shard(self) -> Shard:
        return Shard(self.rank, self.world)

    def record(self) -> dict[str, object]:
        """What invocations.jsonl keeps of the launch (with the shard it already records)."""
        return {"launcher": self.launcher, "rank": self.rank, "world": self.world, "local_rank": self.local_rank}

    def speaks(self) -> bool:
        """Whether this process prints the run's summary: rank 0 of a group (which wrote the metrics), or every
        process without a group (each says what it did, as a hand-started `--shard` does)."""
        return self.rank == 0 or not self.group

    def finish_together(self) -> bool:
        """Wait until every rank is done (with a process group); True on the process that writes the metrics.

        With a group that is rank 0 after the barrier, once every item is there. Without one every process
        tries: whichever finishes last finds the item set complete (metrics.json is written atomically and its
        content depends only on the per-item records, so two writers write the same bytes).
        """
        if not self.group:
            return True
        self.barrier()
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every rank of the group (nothing to wait for without one)."""
        if self.group:
            import torch.distributed as dist

            dist.barrier()


def _integer(environ: Mapping[str, str], name: str) -> int:
    try:
        value = int(environ[name])
    except ValueError:
        raise UserError(f"environment variable {name}={environ[name]!r} is not an integer; the launcher "
                        f"(torchrun, accelerate launch, srun) sets it: start imgbench through it unchanged.") from None
    if value < 0:
        raise UserError(f"environment variable {name}={value} is negative; it is set by the launcher.")
    return value


def ranks_from_env(environ: Mapping[str, str] | None = None) -> Ranks:
    """The launcher's rank variables: torchrun / accelerate first, then those of an srun step.

    srun's world is SLURM_STEP_NUM_TASKS, the processes of this step, which srun sets and sbatch does not: the
    batch script itself carries SLURM_PROCID=0 and the allocation's SLURM_NTASKS, and is one process.
    """
    environ = os.environ if environ is None else environ
    if "RANK" in environ and "WORLD_SIZE" in environ:
        names, launcher = ("RANK", "WORLD_SIZE", "LOCAL_RANK"), "torchrun"
    elif "SLURM_PROCID" in environ and "SLURM_STEP_NUM_TASKS" in environ:
        names, launcher = ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID"), "srun"
    else:
        return Ranks()
    rank, world = _integer(environ, names[0]), _integer(environ, names[1])
    local_rank = _integer(environ, names[2]) if names[2] in environ else 0
    if world < 1 or rank >= world:
        raise UserError(f"{names[0]}={rank} and {names[1]}={world} from the launcher: the rank must be below the "
                        f"world size.")
    return Ranks(rank, world, local_rank, launcher)


def choose_shard(shard_text: str | None, ranks: Ranks) -> Shard:
    """The launcher's rank as the shard, or `--shard I/N` in a single process; both at once is refused."""
    if ranks.world == 1:
        return Shard.parse(shard_text)
    if shard_text:
        raise UserError(f"--shard {shard_text} under {ranks.launcher} with {ranks.world} processes: the launcher's "
                        f"ranks already split the items (rank r takes shard r/{ranks.world}); drop --shard, or start "
                        f"one process per --shard without the launcher.")
    return ranks.shard


def rank_device(device: str | None, ranks: Ranks) -> str | None:
    """This rank's device: its own GPU (cuda:LOCAL_RANK) when the run uses CUDA, never another device type.

    The current CUDA device is set too, so a model or scorer that asks for plain "cuda" lands on the rank's GPU.
    The device type is part of the run id (the index is not), so the run is the same at any world size; a
    model that defaults to the CPU stays there unless `--device cuda` is given, as in a single process. Under
    srun with GPUs bound per task (--gpus-per-task) a task sees only its own, so its local rank is taken modulo
    the GPUs it sees.
    """
    if ranks.world == 1 or (device is not None and not device.startswith("cuda")):
        return device
    import torch

    if not torch.cuda.is_available():
        return device
    count = torch.cuda.device_count()
    index = ranks.local_rank
    if index >= count:
        if ranks.launcher != "srun":
            raise UserError(f"local rank {index} but this node has {count} visible GPU(s): start at most {count} "
                            f"process(es) per node (torchrun --nproc-per-node {count}).")
        index %= count  # srun --gpus-per-task binds each task to its own GPU(s), numbered from 0 in the task
    if device not in (None, "cuda"):
        logger.warning("--device %s under %s: every rank on this node uses that one GPU; give --device cuda (or "
                       "none) for one GPU per rank", device, ranks.launcher)
        return device
    torch.cuda.set_device(index)
    return device if device is None else f"cuda:{index}"


@contextmanager
def launched() -> Iterator[Ranks]:
    """This process's ranks, joined by a gloo process group when the environment names a rendezvous (MASTER_ADDR
    and MASTER_PORT: torchrun and accelerate set them; export them for srun tasks to meet too) or a group exists
    already; the group made here is closed on exit.

    gloo, not NCCL: the group only carries a barrier, and gloo needs no GPU and binds none.
    """
    environ = os.environ
    ranks = ranks_from_env(environ)
    if ranks.world == 1:
        yield ranks
        return
    import torch.distributed as dist

    created = False
    if not dist.is_initialized() and "MASTER_ADDR" in environ and "MASTER_PORT" in environ:
        dist.init_process_group("gloo", init_method="env://", rank=ranks.rank, world_size=ranks.world,
                                timeout=BARRIER_TIMEOUT)
        created = True
    ranks = Ranks(ranks.rank, ranks.world, ranks.local_rank, ranks.launcher, group=dist.is_initialized())
    logger.info("rank %d of %d (%s, local rank %d)%s", ranks.rank, ranks.world, ranks.launcher, ranks.local_rank,
                "" if ranks.group else "; no process group: metrics come from the last rank to finish")
    try:
        yield ranks
    finally:
        if created:
            dist.destroy_process_group()
