"""Generation with the key-value cache versus recomputing the whole context at every step.

    python benchmarks/bench_generation.py

Greedy decoding from a short prompt (8 tokens) up to the full context length (block_size tokens), one sequence,
at the course's CPU MiniGPT size: the config of notebook 08's checkpoint (checkpoints/mini_gpt_wiki.pt) if it
exists, else the CPU config of ``course_utils.train``, else the default below. The weights do not matter for
the speed, so they are random unless the checkpoint is there.

Both ways run in this process, interleaved (cache, no cache, cache, ...) after a warm-up; the best time of each
is kept. It prints tokens/s for each and the speed-up ratio (baseline = recomputation). It asserts that both
ways produce the same tokens, and nothing about time. Runs in well under a minute on a 2-core CPU.
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from course_utils import runtime  # noqa: E402
from course_utils.generation import generate  # noqa: E402
from course_utils.model import GPTConfig, MiniGPT  # noqa: E402

CHECKPOINT = REPO / "checkpoints" / "mini_gpt_wiki.pt"
# Used only when neither the checkpoint nor course_utils.train's CPU config is there: the MiniGPT defaults
# with the character vocabulary of the course's Wikipedia text (94 symbols).
DEFAULT_CONFIG = dict(vocab_size=94, block_size=128, d_model=128, n_heads=4, n_layers=4)
PROMPT_LEN = 8
REPEATS = 3


def course_model() -> tuple[MiniGPT, str]:
    """The model to time and a line saying where its size came from."""
    if CHECKPOINT.exists():
        from course_utils.checkpoint import load_model

        model, _, _ = load_model(CHECKPOINT)
        return model, f"config of {CHECKPOINT.relative_to(REPO)}"
    try:
        from course_utils import train

        cfg = _train_cpu_config(train)
        if cfg is not None:
            return MiniGPT(cfg).eval(), "CPU config of course_utils.train"
    except ImportError:
        pass
    return MiniGPT(GPTConfig(**DEFAULT_CONFIG)).eval(), "default config of this benchmark"


def _train_cpu_config(train) -> GPTConfig | None:
    preset = getattr(train, "preset", None)    # preset(vocab_size, device) -> (GPTConfig, TrainSettings)
    if preset is None:
        return None
    cfg, _ = preset(DEFAULT_CONFIG["vocab_size"], "cpu")
    return cfg


def timed(fn) -> tuple[float, torch.Tensor]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    torch.manual_seed(0)
    dev = runtime.device("cpu", verbose=False)
    print(f"device: cpu ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()}); "
          f"torch {torch.__version__}")
    model, where = course_model()
    model.to(dev).eval()
    c = model.config
    print(f"model: {where}: block_size={c.block_size}, d_model={c.d_model}, n_heads={c.n_heads}, "
          f"n_layers={c.n_layers}, vocab_size={c.vocab_size} ({model.num_params() / 1e6:.2f} M parameters)")
    n_new = c.block_size - PROMPT_LEN
    for batch in (1, 8):
        prompt = torch.randint(0, c.vocab_size, (batch, PROMPT_LEN), generator=torch.Generator().manual_seed(0))
        with_cache = lambda p=prompt: generate(model, p, n_new, greedy=True, use_cache=True)  # noqa: E731
        without = lambda p=prompt: generate(model, p, n_new, greedy=True, use_cache=False)  # noqa: E731
        with_cache(), without()                                                # warm-up
        t_cache, t_plain = [], []
        for _ in range(REPEATS):
            t, out_cache = timed(with_cache)
            t_cache.append(t)
            t, out_plain = timed(without)
            t_plain.append(t)
        assert torch.equal(out_cache, out_plain), "the KV cache changed the generated tokens"
        best_cache, best_plain = min(t_cache), min(t_plain)
        tok = batch * n_new
        print(f"batch {batch}: greedy, {PROMPT_LEN} -> {c.block_size} tokens ({n_new} new per sequence), "
              f"best of {REPEATS}:")
        print(f"  recompute the context (baseline): {best_plain * 1e3:8.1f} ms  {tok / best_plain:9,.0f} tokens/s")
        print(f"  key-value cache                 : {best_cache * 1e3:8.1f} ms  {tok / best_cache:9,.0f} tokens/s")
        print(f"  speed-up (baseline / cache)     : {best_plain / best_cache:8.2f}x   same tokens: yes")


if __name__ == "__main__":
    main()
