"""Hand-built attention (course_utils.attention) versus PyTorch's fused scaled_dot_product_attention.

    python benchmarks/bench_attention.py

At the course's sizes (B=8 sequences, h=4 heads, d_head=32, float32) and T in {64, 128, 256}, with and without
the causal mask, it prints the median time of each after a warm-up (both measured in this run, wall clock and
processor time), the ratio hand-built / SDPA, and the memory of the T x T attention matrix that the hand-built
version stores and the fused kernel does not have to. It prints figures only; nothing is asserted about time.
Runs in well under a minute.
"""

from __future__ import annotations

import argparse
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


def median_times(fn_a, fn_b, warmup: int = WARMUP, repeats: int = REPEATS) -> dict[str, tuple[float, float]]:
    """Median times of ``fn_a()`` and ``fn_b()`` in seconds, after ``warmup`` untimed calls of each.

    Returns {"wall": (a, b), "cpu": (a, b)}: wall-clock time, and processor time of this process (all its threads),
    which does not count the moments other programs hold the processor, so it is steadier on a busy machine.
    The two functions are timed in alternation, so that a busy moment slows both rather than one.
    GPU work, if any, is waited for.
    """
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        fn_a()
        fn_b()
    sync()
    wall: tuple[list[float], list[float]] = ([], [])
    cpu: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for i, fn in enumerate((fn_a, fn_b)):
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            sync()
            wall[i].append(time.perf_counter() - w0)
            cpu[i].append(time.process_time() - c0)
    med = statistics.median
    return {"wall": (med(wall[0]), med(wall[1])), "cpu": (med(cpu[0]), med(cpu[1]))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="hand-built attention vs scaled_dot_product_attention")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch (default 1: with several threads on a shared, busy machine the "
                             "threads wait on each other and the timings mean little)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev = runtime.device()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; B={B}, h={H}, d_head={D_HEAD}, float32; "
          f"median of {REPEATS} alternating runs after {WARMUP} warm-up calls")
    print(f"{'T':>5} {'mask':>7} {'hand ms':>9} {'SDPA ms':>9} {'ratio':>6} {'hand cpu-ms':>12} {'SDPA cpu-ms':>12} "
          f"{'cpu ratio':>9} {'max |diff|':>11} {'weights MiB':>12}")
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
                t = median_times(mine, fused)
                (w_mine, w_fused), (c_mine, c_fused) = t["wall"], t["cpu"]
                mib = B * H * T * T * 4 / 2**20
                print(f"{T:5d} {label:>7} {w_mine * 1e3:9.3f} {w_fused * 1e3:9.3f} {w_mine / w_fused:6.2f} "
                      f"{c_mine * 1e3:12.3f} {c_fused * 1e3:12.3f} {c_mine / c_fused:9.2f} {diff:11.1e} {mib:12.2f}")
    print("ratio = hand-built time / SDPA time (>1: the fused kernel is faster); ms = wall clock, cpu-ms = processor "
          "time of this process (steadier when other programs share the machine); weights = the B*h*T*T float32 "
          "matrix the hand-built version stores.")
    print(f"Total {time.perf_counter() - started:.1f} s.")


if __name__ == "__main__":
    main()
