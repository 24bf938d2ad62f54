"""Generation with the key-value cache versus recomputing the whole context at every step.

    python benchmarks/bench_generation.py

Greedy decoding from a short prompt (8 tokens) up to the full context length (block_size tokens), one sequence,
at the course's CPU MiniGPT size: the config of notebook 08's checkpoint (checkpoints/mini_gpt_wiki.pt) if it
exists, else the CPU config of ``course_utils.train``, else the default below. The weights do not matter for
the speed, so they are random unless the checkpoint is there.

With the cache, ``generate`` runs the one-token steps on a single CPU thread (their operations are too small to
gain from more). The baseline, recomputation, is timed both with PyTorch's default number of threads and with one
thread, and the faster of the two is the baseline of the speed-up, so the ratio never flatters the cache.

All the ways run in this process, taking turns after a warm-up; the best time of each is kept. It prints tokens/s
for each and the speed-up ratio. It asserts that all produce the same tokens, and nothing about time. Runs in
well under a minute on a 2-core CPU.
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
from course_utils.generation import generate, torch_threads  # noqa: E402
from course_utils.model import GPTConfig, MiniGPT  # noqa: E402

CHECKPOINT = REPO / "checkpoints" / "mini_gpt_wiki.pt"
# Used only when neither the checkpoint nor course_utils.train's CPU config is there: the MiniGPT defaults
# with the character vocabulary of the course's Wikipedia text (94 symbols).
DEFAULT_CONFIG = dict(vocab_size=94, block_size=128, d_model=128, n_heads=4, n_layers=4)
PROMPT_LEN = 8
REPEATS = 3
LONGER = (128,)   # a longer context also measured (same width and depth), to show the speed-up growing with it


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


def compare(model: MiniGPT, repeats: int, batch: int = 1) -> dict[str, float]:
    """Best seconds of each way to generate greedily from PROMPT_LEN tokens up to block_size; asserts equal tokens."""
    c = model.config
    n_new = c.block_size - PROMPT_LEN
    prompt = torch.randint(0, c.vocab_size, (batch, PROMPT_LEN), generator=torch.Generator().manual_seed(0))
    threads = torch.get_num_threads()

    def with_cache():
        return generate(model, prompt, n_new, greedy=True, use_cache=True)

    def recompute():
        return generate(model, prompt, n_new, greedy=True, use_cache=False)

    def recompute_one_thread():
        with torch_threads(1):
            return recompute()

    ways = {"key-value cache": with_cache, f"recompute, {threads} threads": recompute,
            "recompute, 1 thread": recompute_one_thread}
    best: dict[str, float] = {}
    outs: dict[str, torch.Tensor] = {}
    for fn in ways.values():                                    # warm-up
        fn()
    for _ in range(repeats):                                    # the ways take turns, so a busy spell hits all
        for name, fn in ways.items():
            t, outs[name] = timed(fn)
            best[name] = min(best.get(name, float("inf")), t)
    first = outs["key-value cache"]
    assert all(torch.equal(first, o) for o in outs.values()), "the KV cache changed the generated tokens"
    return best


def speedup(best: dict[str, float]) -> float:
    return min(v for k, v in best.items() if k.startswith("recompute")) / best["key-value cache"]


def main() -> None:
    torch.manual_seed(0)
    dev = runtime.device("cpu", verbose=False)
    threads = torch.get_num_threads()
    print(f"device: cpu ({threads} threads, {platform.processor() or platform.machine()}); torch {torch.__version__}")
    model, where = course_model()
    model.to(dev).eval()
    c = model.config
    print(f"model: {where}: block_size={c.block_size}, d_model={c.d_model}, n_heads={c.n_heads}, "
          f"n_layers={c.n_layers}, vocab_size={c.vocab_size} ({model.num_params() / 1e6:.2f} M parameters)")
    n_new = c.block_size - PROMPT_LEN
    best = compare(model, REPEATS)
    print(f"greedy decoding of one sequence, {PROMPT_LEN} -> {c.block_size} tokens ({n_new} new), best of {REPEATS}:")
    for name, t in best.items():
        print(f"  {name:24s}: {t * 1e3:8.1f} ms  {n_new / t:8,.0f} tokens/s")
    print(f"  speed-up (fastest recompute / cache): {speedup(best):.2f}x   same tokens: yes (asserted)")
    print("where the cache pays more (the same measurement, other settings):")
    b = compare(model, repeats=2, batch=8)
    print(f"  8 sequences at once, block_size={c.block_size}: cache {8 * n_new / b['key-value cache']:7,.0f} tokens/s, "
          f"speed-up {speedup(b):.2f}x   same tokens: yes (asserted)")
    for block in LONGER:
        if block <= c.block_size:
            continue
        cfg = GPTConfig(**{**model.config_dict(), "block_size": block})
        b = compare(MiniGPT(cfg).eval(), repeats=2)
        tok = block - PROMPT_LEN
        print(f"  1 sequence, block_size={block} (random weights): cache {tok / b['key-value cache']:7,.0f} tokens/s, "
              f"speed-up {speedup(b):.2f}x   same tokens: yes (asserted)")


if __name__ == "__main__":
    main()
