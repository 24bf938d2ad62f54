"""Training quality per minute: the course's CPU configuration of the mini-GPT on the Wikipedia text.

    python benchmarks/bench_training.py [--minutes 5] [--device cpu]

Trains notebook 08's CPU configuration (``course_utils.train.preset``) on ``wiki_text()`` at character level for
the budget (default 5 minutes, evaluations included), then scores it on the whole validation split of the
scoreboard (``scoreboard.wiki_char_data``) and prints: the validation loss in nats and bits per character,
training tokens (characters) per second, and the ratio of that loss to the bigram baseline computed in the same
run (``scoreboard.baseline_losses``). Target on a 2-core CPU: at most 1.60 nats per character in 5 minutes.
It prints figures only; nothing is asserted about time. Timings depend on what else the machine is doing.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from course_utils import runtime, scoreboard  # noqa: E402
from course_utils.model import MiniGPT  # noqa: E402
from course_utils.train import evaluate, preset, train  # noqa: E402

TARGET = 1.60


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--device", default="cpu", help="cpu (the benchmark's setting), cuda or mps")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    dev = runtime.device(args.device, verbose=False)
    print(f"device: {dev.type} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__})")
    tok, train_ids, val_ids = scoreboard.wiki_char_data()
    bigram = scoreboard.baseline_losses()["bigram"]
    cfg, st = preset(tok.vocab_size, "cpu")          # the CPU configuration, wherever it runs
    st = replace(st, minutes=args.minutes, seed=args.seed)
    runtime.seed_everything(args.seed)
    model = MiniGPT(cfg)
    print(f"config: d_model={cfg.d_model} n_layers={cfg.n_layers} n_heads={cfg.n_heads} block_size={cfg.block_size} "
          f"batch={st.batch_size} lr={st.lr} betas=({st.beta1}, {st.beta2}) weight_decay={st.weight_decay} "
          f"params={model.num_params():,}")
    res = train(model, train_ids, val_ids, st, device=dev, progress=False,
                log=lambda m: print("  " + m, flush=True))
    t0 = time.perf_counter()
    val = evaluate(res.model, val_ids, dev)
    eval_s = time.perf_counter() - t0
    print(f"trained {res.step} steps in {res.elapsed:.0f} s; full validation pass {eval_s:.0f} s")
    print(f"tokens per second (training): {res.tokens_per_second:,.0f}")
    print(f"validation loss: {val:.4f} nats/char = {val / math.log(2):.4f} bits/char "
          f"(target <= {TARGET:.2f} nats/char: {'met' if val <= TARGET else 'NOT met'})")
    print(f"bigram baseline: {bigram:.4f} nats/char; mini-GPT / bigram = {val / bigram:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
