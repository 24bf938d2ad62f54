"""Speed of the scaling sweep: training tokens per second of each sweep size, as ratios against a baseline.

    python benchmarks/bench_scaling.py [--steps 20] [--threads N]

Runs ``--steps`` training steps (after 3 warm-up steps) of every shape of ``course_utils.scaling.SHAPES`` with the
sweep's settings (batch 64 x 64 characters, AdamW) and, in the same process, of the baseline: notebook 08's CPU
configuration (``course_utils.train.preset``). Prints characters per second, GFLOP/s by the 6N rule, and each shape's
speed as a ratio to the baseline; then the sweep grid's time estimated from these measured speeds against the
cost model of ``scaling.estimate_seconds`` (a ratio above 1: this machine is slower than the model assumes).
Timings depend on what else the machine is doing; nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from course_utils import runtime, scaling  # noqa: E402
from course_utils.data import get_batch  # noqa: E402
from course_utils.model import GPTConfig, MiniGPT  # noqa: E402
from course_utils.scoreboard import wiki_char_data  # noqa: E402
from course_utils.train import TrainSettings, make_optimizer, preset  # noqa: E402


def tokens_per_second(cfg: GPTConfig, batch: int, steps: int, train_ids: torch.Tensor) -> float:
    runtime.seed_everything(0)
    model = MiniGPT(cfg)
    opt = make_optimizer(model, TrainSettings(max_steps=steps, lr=1e-3))
    g = torch.Generator().manual_seed(0)
    for i in range(steps + 3):
        if i == 3:
            t0 = time.perf_counter()
        x, y = get_batch(train_ids, batch, cfg.block_size, generator=g)
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * batch * cfg.block_size / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(scaling.machine_description())
    tok, train_ids, _ = wiki_char_data()
    s = scaling.SweepSettings()
    base_cfg, base_st = preset(tok.vocab_size, "cpu")
    base_cfg = GPTConfig(**{**base_cfg.__dict__, "block_size": s.block_size})
    base = tokens_per_second(base_cfg, s.batch_size, args.steps, train_ids)
    print(f"baseline (notebook 08's CPU model, d={base_cfg.d_model}, L={base_cfg.n_layers}, batch {s.batch_size}): "
          f"{base:,.0f} characters/s")
    speed = {}
    for sh in scaling.SHAPES:
        tps = tokens_per_second(sh.config(tok.vocab_size, s.block_size), s.batch_size, args.steps, train_ids)
        speed[sh] = tps
        print(f"  N = {sh.N:>9,} (d={sh.d_model:>3}, L={sh.n_layers}): {tps:>9,.0f} characters/s = {tps / base:5.2f} x "
              f"baseline, {6 * sh.N * tps / 1e9:6.2f} GFLOP/s by 6N")
    grid = scaling.grid_for_minutes(5)
    measured = sum(r.tokens / speed[r.shape] for r in grid)
    print(f"grid of --minutes 5 ({len(grid)} runs): {measured / 60:.1f} min from these speeds = "
          f"{measured / scaling.estimate_seconds(grid):.2f} x the cost model's estimate (training only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
