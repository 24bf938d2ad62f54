"""FLOP/s of the course's training run on this machine, from measured tokens per second (notebook 11).

    python benchmarks/bench_sizing.py [--steps 30] [--device cpu]

Trains notebook 08's CPU configuration (``course_utils.train.preset``) for ``--steps`` steps and turns its measured
training tokens per second into FLOP/s with ``sizing.training_flops_per_token`` (3x the forward, full attention
term included: the course's one convention). The baseline, measured in the same run: ``runtime.peak_flops_per_s``,
the best FLOP/s of a 1024 x 1024 fp32 matrix product on the same device, the course's one measure of the peak.
It prints the ratio of the two (the model FLOPs utilisation against
that baseline), and what GPT-3's 6ND would take at the measured speed. Nothing is asserted about time; the
figures depend on what else the machine is doing.
"""

from __future__ import annotations

import argparse
import platform
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from course_utils import runtime, scoreboard, sizing  # noqa: E402
from course_utils.model import MiniGPT  # noqa: E402
from course_utils.train import preset, train  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    dev = runtime.device(args.device, verbose=False)
    print(f"device: {dev.type} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__})")
    tok, train_ids, val_ids = scoreboard.wiki_char_data()
    cfg, st = preset(tok.vocab_size, "cpu")
    runtime.seed_everything(0)
    model = MiniGPT(cfg)
    res = train(model, train_ids, val_ids, replace(st, minutes=None, max_steps=args.steps, warmup_steps=1,
                                                  eval_interval=None, eval_seconds=None, eval_batches=1),
                device=dev, progress=False)
    per_token = sizing.training_flops_per_token(cfg)
    model_flops = res.tokens_per_second * per_token
    base = runtime.peak_flops_per_s(dev, repeats=10)
    print(f"model: {model.num_params():,} parameters, {per_token:,.0f} training FLOPs per token")
    print(f"training: {res.tokens_per_second:,.0f} tokens/s = {model_flops / 1e9:.2f} GFLOP/s")
    print(f"baseline, one 1024 x 1024 matrix product: {base / 1e9:.2f} GFLOP/s")
    print(f"ratio (model FLOPs utilisation against the baseline): {model_flops / base:.2f}")
    gpt3 = sizing.training_flops(sizing.param_count(sizing.PUBLISHED["GPT-3 175B"]), 300e9)
    print(f"GPT-3's 6ND = {gpt3:.3g} FLOPs would take {gpt3 / model_flops / 86400 / 365.25:,.0f} years at this speed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
