"""Hand-built attention (course_utils.attention) versus PyTorch's fused scaled_dot_product_attention.

    python benchmarks/bench_attention.py

At the course's sizes (B=8 sequences, h=4 heads, d_head=32, float32) and T in {64, 128, 256}, with and without
the causal mask, it prints the median time of each (after a warm-up, both measured in this run), the ratio
hand-built / SDPA, and the memory of the T x T attention matrix that the hand-built version stores and the fused
kernel does not have to. It prints figures only; nothing is asserted about time. Runs in well under a minute.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from course_utils import runtime  # noqa: E402
from course_utils.attention import attention, causal_mask  # noqa: E402

B, H, D_HEAD = 8, 4, 32
LENGTHS = (64, 128, 256)
WARMUP, REPEATS = 5, 31


def median_times(fn_a, fn_b, warmup: int = WARMUP, repeats: int = REPEATS) -> tuple[float, float]:
    """Median wall times of ``fn_a()`` and ``fn_b()`` in seconds, after ``warmup`` untimed calls of each.

    The two are timed in alternation, so that a busy moment on the machine slows both rather than one.
    GPU work, if any, is waited for.
    """
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        fn_a()
        fn_b()
    sync()
    runs: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out in ((fn_a, runs[0]), (fn_b, runs[1])):
            t0 = time.perf_counter()
            fn()
            sync()
            out.append(time.perf_counter() - t0)
    return statistics.median(runs[0]), statistics.median(runs[1])


def main() -> None:
    dev = runtime.device()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; B={B}, h={H}, d_head={D_HEAD}, float32; "
          f"median of {REPEATS} alternating runs after {WARMUP} warm-up calls")
    print(f"{'T':>5} {'mask':>7} {'hand-built ms':>14} {'SDPA ms':>9} {'ratio':>7} {'max |diff|':>11} "
          f"{'weights MiB':>12}")
    started = time.perf_counter()
    with torch.inference_mode():
        for T in LENGTHS:
            g = torch.Generator(device="cpu").manual_seed(T)
            q, k, v = (torch.randn(B, H, T, D_HEAD, generator=g).to(dev) for _ in range(3))
            mask = causal_mask(T, dev)
            cases = [
                ("none", lambda q=q, k=k, v=v: attention(q, k, v)[0],
                 lambda q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v)),
                ("causal", lambda q=q, k=k, v=v, m=mask: attention(q, k, v, m)[0],
                 lambda q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v, is_causal=True)),
            ]
            for label, mine, fused in cases:
                diff = (mine() - fused()).abs().max().item()
                t_mine, t_fused = median_times(mine, fused)
                mib = B * H * T * T * 4 / 2**20
                print(f"{T:5d} {label:>7} {t_mine * 1e3:14.3f} {t_fused * 1e3:9.3f} {t_mine / t_fused:7.2f} "
                      f"{diff:11.1e} {mib:12.2f}")
    print(f"ratio = hand-built time / SDPA time (>1: the fused kernel is faster). "
          f"Total {time.perf_counter() - started:.1f} s.")


if __name__ == "__main__":
    main()
