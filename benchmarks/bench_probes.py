"""What recording costs: tokens/s of a forward pass of SmolLM2-135M (the course's MiniGPT with the GGUF file's
weights) with course_utils.probes.record's hooks on (every block: stream, both updates, the attention's input and
the heads' outputs) and off.

    python benchmarks/bench_probes.py

Both are measured in this run, alternately (so a busy machine slows both alike), on one batch of B=1 x T=256
random tokens, median of 5 after a warm-up, and printed with their ratio (hooks on / hooks off, in time).
Skipped with a message when the model file is absent (make setup fetches it). Figures only; nothing is asserted.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from course_utils import gguf_file, runtime  # noqa: E402
from course_utils.probes import record  # noqa: E402

B, T, WARMUP, REPEATS = 1, 256, 1, 5


def main() -> int:
    if not gguf_file.available():
        print(f"skipped: the model file is missing; run {gguf_file.FETCH_COMMAND}")
        return 0
    from course_utils.llama import load_gguf_model

    dev = runtime.device(verbose=False)
    model = load_gguf_model().to(dev)
    idx = torch.randint(0, model.config.vocab_size, (B, T), generator=torch.Generator().manual_seed(0)).to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    @torch.no_grad()
    def plain():
        model(idx)

    @torch.no_grad()
    def hooked():
        with record(model):
            model(idx)

    def timed(fn) -> float:
        t0 = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - t0

    for _ in range(WARMUP):
        plain()
        hooked()
    off, on = [], []
    for _ in range(REPEATS):
        off.append(timed(plain))
        on.append(timed(hooked))
    t_off, t_on = statistics.median(off), statistics.median(on)
    print(f"SmolLM2-135M forward, {B} x {T} tokens on {dev}, {torch.get_num_threads()} threads")
    print(f"  hooks off: {B * T / t_off:8.0f} tokens/s")
    print(f"  hooks on : {B * T / t_on:8.0f} tokens/s   (record(model), every block)")
    print(f"  ratio on/off (time): {t_on / t_off:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
