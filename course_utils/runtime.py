"""Where the course runs: the device, random seeds, quick mode, and the machine's peak speed.

:func:`peak_flops_per_s` is the course's one convention for "the peak" of a CPU or GPU: the best speed of a
large fp32 matrix product, measured on the same device and threads. (An estimate from the data sheet, cores x clock
x FLOPs per cycle, reads the base clock on most machines and is beaten by the turbo clock.)

Quick mode (the environment variable ``COURSE_QUICK``) shrinks every training budget so that CI can run every
notebook in minutes. Notebooks never hard-code a step count, corpus size or epoch count that makes them slow:
they ask :func:`budget` for it.
"""

from __future__ import annotations

import functools
import os
import random
import time
from pathlib import Path

import numpy as np
import torch

QUICK_ENV_VAR = "COURSE_QUICK"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class QuickModeError(ValueError):
    """``COURSE_QUICK`` holds a value that is neither true nor false."""


def quick_mode() -> bool:
    """True when the environment variable ``COURSE_QUICK`` says so (1/true/yes/on; 0/false/no/off or unset = full)."""
    raw = os.environ.get(QUICK_ENV_VAR, "")
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise QuickModeError(
        f"{QUICK_ENV_VAR}={raw!r} is not understood. Use {QUICK_ENV_VAR}=1 (quick: small budgets, as in CI) "
        f"or {QUICK_ENV_VAR}=0 (full run), or leave it unset for a full run."
    )


def budget(full: int | float, quick: int | float):
    """Pick the full-mode value or the quick-mode value of a slow setting (steps, epochs, corpus size, ...).

    >>> steps = budget(full=3000, quick=60)
    """
    if quick > full:
        raise ValueError(f"budget(full={full}, quick={quick}): the quick value should not exceed the full one.")
    return quick if quick_mode() else full


def mode_banner() -> str:
    """One line that says which mode this notebook runs in; notebooks print it near the top."""
    if quick_mode():
        return (f"QUICK MODE ({QUICK_ENV_VAR}=1): training budgets are shrunk so the notebook runs in seconds; "
                "numbers and plots are rougher than in a full run.")
    return f"Full mode: the real training budgets (set {QUICK_ENV_VAR}=1 for a fast, rough run)."


def device(preferred: str | None = None, verbose: bool = True) -> torch.device:
    """Choose where tensors live: cuda if a GPU is there, then Apple's mps, then the cpu. Prints one line why.

    ``preferred`` ("cuda", "mps" or "cpu") forces a choice; asking for one that is not available is an error.
    The environment variable ``COURSE_DEVICE`` does the same for a whole session.
    """
    choice = preferred or os.environ.get("COURSE_DEVICE") or None
    available = {
        "cuda": torch.cuda.is_available(),
        "mps": bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available(),
        "cpu": True,
    }
    if choice is not None:
        choice = choice.strip().lower()
        if choice not in available:
            raise ValueError(f"Unknown device {choice!r}: use 'cuda', 'mps' or 'cpu'.")
        if not available[choice]:
            raise RuntimeError(f"Device {choice!r} was asked for but is not available on this machine. "
                               f"Available: {', '.join(k for k, v in available.items() if v)}.")
        why = "as asked"
    elif available["cuda"]:
        choice, why = "cuda", f"an NVIDIA GPU was found ({torch.cuda.get_device_name(0)})"
    elif available["mps"]:
        choice, why = "mps", "an Apple-silicon GPU was found (Metal)"
    else:
        choice, why = "cpu", f"no GPU was found; using {torch.get_num_threads()} CPU threads"
    if verbose:
        print(f"Device: {choice} ({why})")
    return torch.device(choice)


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and PyTorch (all devices) so a run can be repeated exactly."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@functools.cache
def cpu_bf16_native(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when this CPU has instructions for bf16 products (x86 AVX512-BF16 or AMX-BF16, read from Linux's
    ``cpuinfo`` file). Only then does bf16 make a CPU's matrix products faster than fp32 (about twice on
    AVX512-BF16); without them bf16 is emulated and slower. False on other systems (not measured there)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    flags = {f for line in text.splitlines() if line.startswith("flags") for f in line.split(":", 1)[-1].split()}
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def _bf16_on(dev: torch.device, cpu_bf16: bool) -> bool:
    """Whether :func:`autocast` runs the products in bf16: always on CUDA; on a CPU when asked and native."""
    return dev.type == "cuda" or (dev.type == "cpu" and cpu_bf16 and cpu_bf16_native())


def autocast(dev: torch.device | str, cpu_bf16: bool = False):
    """bf16 autocast on CUDA; on a CPU only when ``cpu_bf16`` asks for it and the CPU multiplies bf16 natively
    (:func:`cpu_bf16_native`); a no-op context elsewhere. Use as ``with autocast(dev): logits = model(x)``.
    Autocast runs the matrix products in bf16 and keeps the weights, their gradients and the loss in fp32."""
    dev = torch.device(dev)
    if _bf16_on(dev, cpu_bf16):
        return torch.autocast(device_type=dev.type, dtype=torch.bfloat16)
    return torch.autocast(device_type="cpu", enabled=False)


def precision(dev: torch.device | str, cpu_bf16: bool = False) -> str:
    """What :func:`autocast` does for these arguments, in words (training prints it)."""
    dev = torch.device(dev)
    if _bf16_on(dev, cpu_bf16):
        where = "on the GPU" if dev.type == "cuda" else "this CPU multiplies bf16 natively"
        return f"bf16 matrix products (autocast; {where})"
    if dev.type == "cpu" and cpu_bf16:
        return "fp32 (bf16 asked for, but this CPU has no bf16 instructions: it would be slower)"
    return "fp32"


def synchronize(dev: torch.device | str) -> None:
    """Wait until ``dev`` has finished the work queued on it (GPUs run asynchronously); a no-op on the CPU.
    Time a piece of GPU work between two calls of this, or the clock measures only the queueing."""
    dev = torch.device(dev)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elif dev.type == "mps":
        torch.mps.synchronize()


def peak_flops_per_s(dev: torch.device | str = "cpu", threads: int | None = None, n: int = 1024,
                     repeats: int = 5) -> float:
    """The peak as the course measures it: 2 n^3 / (the best time of ``repeats`` n x n fp32 matrix products) on
    ``dev``, with ``threads`` torch threads on the CPU (default: the current setting, restored afterwards)."""
    dev = torch.device(dev)
    if n < 64 or repeats < 1:
        raise ValueError(f"peak_flops_per_s: n should be >= 64 and repeats >= 1, got n={n}, repeats={repeats}")
    if threads is not None and threads < 1:
        raise ValueError(f"peak_flops_per_s: threads should be >= 1, got {threads}")
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        a = torch.randn(n, n, device=dev)
        a @ a                                     # warm-up: the first product pays for allocation and dispatch
        best = float("inf")
        for _ in range(repeats):
            synchronize(dev)
            t0 = time.perf_counter()
            a @ a
            synchronize(dev)
            best = min(best, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)
    return 2 * n**3 / best
