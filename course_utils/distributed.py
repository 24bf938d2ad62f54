"""Data-parallel training with PyTorch's own engine: ``torchrun`` and DistributedDataParallel (DDP).

    torchrun --nproc_per_node=2 -m course_utils.train --text FILE --minutes 5

torchrun starts N copies of the command and tells each its place through environment variables (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``). :func:`setup` reads them and joins the process
group: ``nccl`` between CUDA GPUs, ``gloo`` on CPUs. Without torchrun (no ``WORLD_SIZE``) it returns a
:class:`Dist` of one process and nothing else changes.

How a step works with N processes: each rank draws its own batch of B windows, computes its gradient, and DDP
averages the N gradients (an all-reduce) during ``backward``. The mean of N equal-size half-batch gradients is the
gradient of the whole N*B batch, so every rank applies the same update to the same weights: one step of a batch N
times larger. Rank 0 alone evaluates, prints and writes the checkpoint; :meth:`Dist.agree` makes every rank stop
at the same step (and use the same clock for the learning-rate schedule), so no rank waits forever for the others.
"""

from __future__ import annotations

import datetime
import os
import signal
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist


@dataclass(frozen=True)
class Dist:
    """Where this process stands in the job: ``rank`` in 0..world_size-1 (0 is the main process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """True when several processes train together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the process that evaluates, prints and writes checkpoints (rank 0)."""
        return self.rank == 0

    def agree(self, elapsed: float, stop: bool) -> tuple[float, bool]:
        """One all-reduce that every rank calls once per step: the largest clock of all ranks and whether any rank
        wants to stop. Every rank gets the same answer, so all stop at the same step with the same schedule."""
        if not self.enabled:
            return elapsed, stop
        t = torch.tensor([elapsed, float(stop)], dtype=torch.float64, device=_collective_device())
        torch_dist.all_reduce(t, op=torch_dist.ReduceOp.MAX)
        return float(t[0]), bool(t[1] > 0)


def from_env() -> Dist:
    """The ranks torchrun gave this process (a single process when ``WORLD_SIZE`` is not set). Joins nothing."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as err:
        raise ValueError(f"RANK, WORLD_SIZE and LOCAL_RANK should be integers (torchrun sets them): {err}") from None
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} should be in 0..WORLD_SIZE-1 with WORLD_SIZE={world} >= 1")
    return Dist(rank=rank, world_size=world, local_rank=local)


def backend(device: torch.device | str) -> str:
    """``nccl`` for CUDA devices, ``gloo`` otherwise (CPU; Apple's mps has no multi-process backend)."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def setup(device: torch.device | str, timeout_s: float = 600.0) -> Dist:
    """Join the process group torchrun describes (no-op for one process) and return this process's :class:`Dist`.

    On CUDA each process takes the GPU ``cuda:LOCAL_RANK``; call :func:`device_for` for it. SIGTERM (what torchrun
    sends the other ranks when one fails or when you press Ctrl-C) is turned into KeyboardInterrupt, so a rank
    stops the way an interrupt stops a single process.
    """
    d = from_env()
    if not d.enabled:
        return d
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(d.local_rank)
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend(dev), rank=d.rank, world_size=d.world_size,
                                      timeout=datetime.timedelta(seconds=timeout_s))
    signal.signal(signal.SIGTERM, _raise_interrupt)
    return d


def device_for(d: Dist, device: torch.device) -> torch.device:
    """The device of this rank: ``cuda:LOCAL_RANK`` on CUDA, ``device`` itself elsewhere."""
    return torch.device("cuda", d.local_rank) if device.type == "cuda" and d.enabled else device


def wrap(model: torch.nn.Module, d: Dist) -> torch.nn.Module:
    """``model`` wrapped in DistributedDataParallel when several processes train (it starts from rank 0's weights
    and averages gradients in ``backward``); ``model`` itself otherwise. Evaluate and save the unwrapped model."""
    if not d.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    dev = next(model.parameters()).device
    return DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)


def cleanup(wait_for_others: bool = True) -> None:
    """Leave the process group (if this process joined one).

    With ``wait_for_others`` every rank first meets the others at a barrier, so that no rank tears down its gloo
    connections while another is still using them (the late rank would abort with "terminate called without an
    active exception"). After an error the other ranks may be gone: pass ``False`` to leave without waiting.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        if wait_for_others:
            torch_dist.barrier()
        torch_dist.destroy_process_group()


def _collective_device() -> torch.device:
    if torch_dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt
