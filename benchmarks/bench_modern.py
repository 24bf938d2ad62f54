"""The modern recipe against notebook 08's preset, trained for the same minutes in the same run (notebook 15).

    python benchmarks/bench_modern.py [--minutes 5] [--clock wall|process] [--threads N] [--seed 0] [--profile-only]
                                      [--text wikipedia|shakespeare] [--train-chars N] [--set NAME=VALUE ...]
                                      [--no-preset] [--csv PATH]

Trains notebook 08's CPU preset (``train.preset``), then the modern recipe (``recipe.modern_preset``: the same
sizes with RoPE, RMSNorm, ReLU², QK-norm, untied output, zero-init, GQA, no biases, warm-up-stable-decay and
Muon, its dropout and batch chosen from the budget as ``--recipe modern`` does, its matrix products in bf16 where the
CPU has bf16 instructions), each for the same budget on the Wikipedia text, back to back in this process; scores
both in fp32 on the whole validation split of the scoreboard (``train.evaluate``) and prints:

* one training step of each, part by part (``train.profile_step``: data, forward, backward, clipping, optimizer,
  evaluation), in milliseconds, and the recipe's training tokens per second as a ratio to the preset's (target:
  at least 1.0), measured with the two trained in alternation (``train.speed_ratio``: 12 rounds of equal tokens,
  the median), because a shared machine's speed drifts more between two profiles than the difference measured;
* the recipe's validation loss as a ratio to the preset's (target: at most 0.93 in 5 minutes);
* training tokens per second, and the share of the CPU's peak FLOP/s that training reaches (the course's one
  convention, as in notebooks 11 and 15: ``sizing.training_flops_per_token``, 6 N + 12 L T d per token; the peak
  is ``runtime.peak_flops_per_s``, the best speed of a 1024 x 1024 fp32 matrix product on the same threads).

``--clock wall`` (default) measures the budget in wall-clock minutes, as notebook 08 does on an idle machine.
On a machine shared with other programs use ``--clock process --threads 1``: the budget is then the CPU time of
this process on one thread, which other programs do not take away. Nothing is asserted about time.
``--profile-only`` prints the step profile and stops (half a minute). ``--train-chars 1000000`` trains both on the
first million training characters only: a small text that a five-minute run reads two or three times (the regime
in which the recipe's regularisation rule matters). ``--text shakespeare`` trains and scores both on the course's
second text instead (``course_utils.shakespeare``: eight tragedies, 1.16 million characters, same split).

Tuning: ``--set batch_size=64`` changes a setting of the recipe (a field of GPTConfig or TrainSettings; repeat it
for several), ``--no-preset`` trains the recipe only, and ``--csv data/recipe_tuning.csv`` appends one row per
trained model (its settings, seed, budget, threads, steps, tokens per second, validation loss), the table notebook
15 reads.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import math
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from course_utils import runtime, scoreboard, shakespeare, sizing  # noqa: E402
from course_utils.model import MiniGPT  # noqa: E402
from course_utils.recipe import KeepBest, modern_preset, override, probe  # noqa: E402
from course_utils.train import evaluate, expected_tokens, preset, profile_step, speed_ratio, train  # noqa: E402

TARGET = 0.93          # the recipe's validation loss / the preset's, same minutes
SPEED_TARGET = 1.0     # the recipe's training tokens per second / the preset's


def profile(models: dict, train_ids, seed: int, steps: int = 30) -> dict[str, float]:
    """Print the step profile of each (name: (cfg, settings)) side by side; return tokens/s by name."""
    rows = {}
    for name, (cfg, st) in models.items():
        runtime.seed_everything(seed)
        rows[name] = profile_step(MiniGPT(cfg), train_ids, st, steps=steps)
    names = list(models)
    print(f"one training step, ms (mean of {steps} after 3 warm-up steps):")
    print(f"  {'part':<12}" + "".join(f"{n:>22}" for n in names))
    for part in rows[names[0]]:
        print(f"  {part:<12}" + "".join(f"{rows[n][part]:>22.1f}" for n in names))
    tps = {}
    for name, (cfg, st) in models.items():
        tps[name] = st.batch_size * cfg.block_size / (rows[name]["total"] / 1000)
    print(f"  {'tokens/s':<12}" + "".join(f"{tps[n]:>22,.0f}" for n in names))
    return tps


def run(name, cfg, st, train_ids, val_ids, seed, keep_best=False):
    runtime.seed_everything(seed)
    model = MiniGPT(cfg)
    keeper = KeepBest(model) if keep_best else None
    c0, w0 = time.process_time(), time.perf_counter()
    res = train(model, train_ids, val_ids, st, device="cpu", progress=False, callback=keeper)
    cpu_s, wall_s = time.process_time() - c0, time.perf_counter() - w0
    if keeper is not None and keeper.best < res.history["val"][-1]:
        keeper.restore()
        print(f"  {name}: kept the weights of step {keeper.step} (best validation estimate)")
    val = evaluate(res.model, val_ids, "cpu")
    tokens = res.step * st.batch_size * cfg.block_size
    print(f"  {name}: {model.num_params():,} params, {res.step} steps, {tokens:,} tokens in {cpu_s:.0f} CPU s "
          f"({wall_s:.0f} s wall); validation {val:.4f} nats/char = {val / math.log(2):.4f} bits/char", flush=True)
    return dict(val=val, tokens=tokens, cpu_s=cpu_s, wall_s=wall_s, train_s=res.elapsed, cfg=cfg, steps=res.step,
                weight_decay=st.weight_decay, batch=st.batch_size)


CSV_FIELDS = ["date", "text", "model", "settings", "seed", "minutes", "clock", "threads", "train_chars", "peak_gflops",
              "steps", "tokens", "train_s", "tokens_per_s", "dropout", "weight_decay", "val_nats", "val_bits", "batch",
              "code"]
# Which state of the training code made a row (the same model and settings can run at different speeds):
# 1: before the speed-ups below; 2: RMSNorm's derivative written out on a CPU, ReLU^2 in place, every evaluation
# reads 256 windows whatever the batch, and the budget timed at batch 128 without dropout (``recipe.probe``);
# 3: as 2, and a run that reads its text fewer than 10 times gets no weight decay either (``recipe.regularisation``);
# 4: as 3, and Muon's momentum 0.9 instead of 0.95 on a CPU whose budget is known (``recipe.MUON_MOMENTUM``);
# 5: as 4, and the recipe's matrix products in bf16 on a CPU with bf16 instructions (``cpu_bf16``; RoPE, attention,
# the weights, their updates and every evaluation stay fp32).
CODE = 5


def write_rows(path: Path, results: dict, args, threads: int, peak: float, train_chars: int) -> None:
    """Append one row per trained model to the CSV ``path`` (header written when the file is new)."""
    new_file = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, lineterminator="\n")
        if new_file:
            w.writeheader()
        for name, r in results.items():
            recipe = name == "modern recipe"
            w.writerow(dict(date=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), text=args.text,
                            model="recipe" if recipe else "preset",
                            settings=" ".join(args.set) if recipe and args.set else "-", seed=args.seed,
                            minutes=args.minutes, clock=args.clock, threads=threads, train_chars=train_chars,
                            peak_gflops=round(peak / 1e9, 1), steps=r["steps"], tokens=r["tokens"],
                            train_s=round(r["train_s"], 1), tokens_per_s=round(r["tokens"] / r["train_s"]),
                            dropout=r["cfg"].dropout, weight_decay=r["weight_decay"], val_nats=round(r["val"], 5),
                            val_bits=round(r["val"] / math.log(2), 5), batch=r["batch"], code=CODE))
    print(f"appended {len(results)} row(s) to {path}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=5.0, help="budget per model (default 5)")
    p.add_argument("--clock", choices=("wall", "process"), default="wall")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile-only", action="store_true", help="print the step profile only")
    p.add_argument("--text", choices=("wikipedia", "shakespeare"), default="wikipedia",
                   help="the Wikipedia text (default) or the second text, eight Shakespeare tragedies (make setup "
                        "caches it)")
    p.add_argument("--train-chars", type=int, default=None,
                   help="train on the first N characters of the training split only (the small-text regime)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="change a setting of the recipe, e.g. batch_size=64 or muon_lr=0.1 (repeatable)")
    p.add_argument("--no-preset", action="store_true", help="train the recipe only (no profile, no ratio)")
    p.add_argument("--csv", default=None, help="append one row per trained model to this CSV")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    peak = runtime.peak_flops_per_s("cpu", threads)
    print(f"device: cpu ({platform.processor() or platform.machine()}, {threads} threads, torch {torch.__version__})")
    print(f"peak: {peak / 1e9:.0f} GFLOP/s (the best 1024 x 1024 fp32 matrix product on {threads} threads)")
    print(f"budget: {args.minutes:g} min of {'wall-clock time' if args.clock == 'wall' else 'CPU time of this process'}"
          f" per model, back to back")
    try:
        tok, train_ids, val_ids = (scoreboard.wiki_char_data() if args.text == "wikipedia"
                                   else scoreboard.char_data(shakespeare.text()))
    except (FileNotFoundError, RuntimeError) as e:
        p.error(str(e))
    if args.train_chars is not None:
        if not 1_000 <= args.train_chars <= len(train_ids):
            p.error(f"--train-chars should be between 1,000 and {len(train_ids):,}, got {args.train_chars:,}")
        train_ids = train_ids[:args.train_chars]
    what = "the Wikipedia text" if args.text == "wikipedia" else "eight Shakespeare tragedies"
    print(f"text: {len(train_ids):,} training characters of {what}, all {len(val_ids):,} validation "
          f"characters scored")
    cfg0, st0 = preset(tok.vocab_size, "cpu")
    cfg1, st1 = modern_preset(tok.vocab_size, len(train_ids), "cpu")
    budget = expected_tokens(*probe(cfg1, st1), train_ids, args.minutes)   # as --recipe modern does
    cfg1, st1 = modern_preset(tok.vocab_size, len(train_ids), "cpu", budget_tokens=budget)
    try:
        cfg1, st1 = override(cfg1, st1, args.set)
    except ValueError as e:
        p.error(f"--set {e}")
    if args.set:
        print(f"recipe changed by --set: {', '.join(args.set)}")
    print(f"recipe: about {budget:,} tokens = {budget / len(train_ids):.1f} passes over the text -> dropout "
          f"{cfg1.dropout}, weight decay {st1.weight_decay}, batch {st1.batch_size}; "
          f"{runtime.precision('cpu', st1.cpu_bf16)} (the preset: {runtime.precision('cpu', st0.cpu_bf16)})")
    common = dict(minutes=args.minutes, clock=args.clock, seed=args.seed)
    if not args.no_preset:
        tps = profile({"notebook 08 preset": (cfg0, st0), "modern recipe": (cfg1, st1)}, train_ids, args.seed)
        print(f"modern / preset training tokens per second, profiled one after the other: "
              f"{tps['modern recipe'] / tps['notebook 08 preset']:.2f}x")
        speed = speed_ratio((cfg0, st0), (cfg1, st1), train_ids, seed=args.seed)
        print(f"modern / preset training tokens per second, trained in alternation (12 rounds of "
              f"{max(st0.batch_size, st1.batch_size) * cfg1.block_size:,} tokens each, median): {speed:.2f}x "
              f"(target >= {SPEED_TARGET}: {'met' if speed >= SPEED_TARGET else 'NOT met'})", flush=True)
    if args.profile_only:
        return 0
    results = {}
    if not args.no_preset:
        results["notebook 08 preset"] = run("notebook 08 preset", cfg0, replace(st0, **common), train_ids, val_ids,
                                            args.seed)
    results["modern recipe"] = run("modern recipe", cfg1, replace(st1, **common), train_ids, val_ids, args.seed,
                                   keep_best=True)
    if args.csv:
        write_rows(Path(args.csv), results, args, threads, peak, len(train_ids))
    if args.no_preset:
        return 0
    base, new = results["notebook 08 preset"], results["modern recipe"]
    ratio = new["val"] / base["val"]
    verdict = "met" if ratio <= TARGET else "NOT met"
    print(f"modern / preset validation loss: {ratio:.3f}x (target <= {TARGET}: {verdict})")
    # wall clock: tokens per second against the peak of `threads` cores; process clock: tokens per CPU-second
    # (one core busy for one second) against the peak of one core.
    per = peak if args.clock == "wall" else runtime.peak_flops_per_s("cpu", 1)
    unit = "tokens/s" if args.clock == "wall" else "tokens per CPU-second"
    rates = {}
    for name, r in (("notebook 08 preset", base), ("modern recipe", new)):
        tps = rates[name] = r["tokens"] / r["train_s"]   # train_s: the budget's clock, evaluations included
        per_token = sizing.training_flops_per_token(r["cfg"])
        flops = tps * per_token
        print(f"  {name}: {tps:,.0f} {unit}, {per_token / 1e6:.2f} MFLOP per token -> "
              f"{flops / 1e9:.2f} GFLOP/s = {flops / per:.1%} of the peak "
              f"({per / 1e9:.0f} GFLOP/s, fp32: bf16 products can go beyond it)")
    print(f"modern / preset {unit} over the whole budget: {rates['modern recipe'] / rates['notebook 08 preset']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
