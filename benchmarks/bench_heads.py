"""Multi-head attention: a Python loop over the heads versus one batched matrix product for all heads.

    python benchmarks/bench_heads.py

At the course's sizes (B=8 sequences, T=128 tokens, d_model=128, float32) and h in {1, 2, 4, 8}, it computes the
same multi-head self-attention (same weights) twice: once head by head (each head its own slice of W_Q, W_K, W_V,
outputs concatenated, then W_O) and once with the heads as a batch dimension (split_heads, one batched attention,
merge_heads), as course_utils.attention.MultiHeadAttention does. It prints the median time of each after a
warm-up (both measured in this run, alternately, so that a busy machine slows both alike), their ratio
loop / batched, the largest difference between the two outputs and the memory of the (B, h, T, T) attention
weights that the batched version holds at once, at the default number of CPU threads and,
on a CPU, also on one thread.
Figures only; nothing is asserted about time. Runs in well under a minute.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from course_utils import runtime  # noqa: E402
from course_utils.attention import MultiHeadAttention, attention, head_loop  # noqa: E402

B, T, D_MODEL = 8, 128, 128
HEADS = (1, 2, 4, 8)
WARMUP, REPEATS = 3, 15


def paired_times(fn_a, fn_b, warmup: int = WARMUP, repeats: int = REPEATS) -> tuple[float, float]:
    """Time ``fn_a`` and ``fn_b`` alternately (so a busy machine slows both alike), after ``warmup`` untimed calls
    of each. Returns (median time of a, median time of b) in seconds."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)

    def timed(fn) -> float:
        t0 = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - t0

    for _ in range(warmup):
        fn_a()
        fn_b()
    sync()
    a, b = [], []
    for _ in range(repeats):
        a.append(timed(fn_a))
        b.append(timed(fn_b))
    return statistics.median(a), statistics.median(b)



def batched(mha: MultiHeadAttention, x: torch.Tensor) -> torch.Tensor:
    """All heads at once: (B, T, d) -> (B, h, T, d_head), one batched attention, merge, W_O."""
    q, k, v = mha.split_heads(mha.w_q(x)), mha.split_heads(mha.w_k(x)), mha.split_heads(mha.w_v(x))
    return mha.w_o(mha.merge_heads(attention(q, k, v)[0]))


def table(dev: torch.device, x: torch.Tensor) -> None:
    print(f"{'h':>3} {'d_head':>7} {'loop ms':>9} {'batched ms':>11} {'loop/batched':>13} {'max |diff|':>11} "
          f"{'weights MiB':>12}")
    with torch.inference_mode():
        for h in HEADS:
            mha = MultiHeadAttention(D_MODEL, h).to(dev).eval()
            diff = (head_loop(mha, x) - batched(mha, x)).abs().max().item()
            t_loop, t_batch = paired_times(lambda mha=mha: head_loop(mha, x),
                                           lambda mha=mha: batched(mha, x))
            mib = B * h * T * T * 4 / 2**20      # the (B, h, T, T) weights the batched version holds at once
            print(f"{h:3d} {D_MODEL // h:7d} {t_loop * 1e3:9.3f} {t_batch * 1e3:11.3f} {t_loop / t_batch:13.2f} "
                  f"{diff:11.1e} {mib:12.1f}")


def main() -> None:
    dev = runtime.device()
    default_threads = torch.get_num_threads()
    print(f"torch {torch.__version__}; B={B}, T={T}, d_model={D_MODEL}, float32; median of {REPEATS} alternating "
          f"runs after {WARMUP} warm-up calls")
    started = time.perf_counter()
    torch.manual_seed(0)
    x = torch.randn(B, T, D_MODEL, device=dev)
    thread_counts = [default_threads] if dev.type != "cpu" or default_threads == 1 else [default_threads, 1]
    for n in thread_counts:
        torch.set_num_threads(n)
        print(f"\n{n} CPU thread{'s' if n > 1 else ''}" + (" (the default)" if n == default_threads else "")
              + (f", on {dev.type}" if dev.type != "cpu" else ""))
        table(dev, x)
    torch.set_num_threads(default_threads)
    print(f"\nloop/batched = median loop time / median batched time (>1: batching wins). On a CPU shared with other "
          f"work, several threads can make small products much slower (they wait on each other); the 1-thread "
          f"table is then the steadier one. On a CPU the loop can win at larger h: the batched version holds all "
          f"h weight matrices at once (last column), the loop one cache-sized (B, T, T) at a time. "
          f"Total {time.perf_counter() - started:.1f} s.")


if __name__ == "__main__":
    main()
