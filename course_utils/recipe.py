"""The modern recipe as a preset of the training command (notebook 15): ``python -m course_utils.train --recipe
modern``.

* :data:`CHANGES` -- every change the ablation (``course_utils.ablation``) measures, as GPTConfig / TrainSettings
  changes; :func:`combine` adds several up.
* :func:`modern_preset` -- notebook 08's CPU sizes with the changes the ablation kept (``RECIPE``), the dropout and
  weight decay chosen from the number of training tokens per parameter and the passes the budget makes over the
  text (:func:`regularisation`), and on a CPU a batch chosen from the budget (:func:`batch_for`), Muon's
  momentum tuned for a five-minute run (``MUON_MOMENTUM``) and bf16 matrix products where the CPU has bf16
  instructions (``cpu_bf16``, see :func:`course_utils.runtime.autocast`).
* :class:`KeepBest` -- a ``train`` callback that remembers the weights with the lowest validation loss;
  ``restore()`` puts them back at the end, so the final model is never one that got worse.

Imports downward only (settings, modern, model): ``course_utils.train`` imports this module for ``--recipe
modern`` and ``course_utils.ablation`` for the list of changes; neither is imported here.
"""

from __future__ import annotations

import copy
from dataclasses import fields, replace

import torch

from .model import GPTConfig
from .modern import param_count
from .settings import TrainSettings, preset

# name: (GPTConfig changes, TrainSettings changes, what it is)
CHANGES: dict[str, tuple[dict, dict, str]] = {
    "rope": (dict(pos="rope"), {}, "rotary position embeddings instead of learned positions"),
    "rmsnorm": (dict(norm="rmsnorm"), {}, "RMSNorm instead of LayerNorm"),
    "swiglu": (dict(mlp="swiglu"), {}, "SwiGLU feed-forward (hidden 8d/3, same parameters)"),
    "relu2": (dict(mlp="relu2"), {}, "ReLU^2 feed-forward"),
    "qk_norm": (dict(qk_norm=True), {}, "RMS/LayerNorm on queries and keys"),
    "untied": (dict(tied=False), {}, "an output layer of its own"),
    "zero_init": (dict(zero_init=True), {}, "output projections start at zero"),
    "gqa": (dict(n_kv_heads=2), {}, "grouped-query attention, 4 query heads share 2 key/value heads"),
    "no_bias": (dict(bias=False), {}, "no biases in the linear layers"),
    "wsd": ({}, dict(schedule="wsd", cooldown=0.3), "warm-up-stable-decay schedule (last 30% decays)"),
    "muon": ({}, dict(optimizer="muon", muon_lr=0.05), "Muon for the blocks' matrices, AdamW for the rest"),
}

# The changes of the recipe (names of CHANGES): the best combination of the stored ablation table
# (data/ablation_modern.csv, one CPU minute per run): every change, with ReLU^2 as the feed-forward.
RECIPE = ("rope", "rmsnorm", "relu2", "qk_norm", "untied", "zero_init", "gqa", "no_bias", "wsd", "muon")


def combine(names: list[str]) -> tuple[dict, dict]:
    """The GPTConfig and TrainSettings changes of several named changes together."""
    cfg, st = {}, {}
    for n in names:
        if n not in CHANGES:
            raise ValueError(f"unknown change {n!r}; known: {', '.join(CHANGES)}")
        cfg.update(CHANGES[n][0])
        st.update(CHANGES[n][1])
    return cfg, st


# The recipe's batch on a CPU depends on its budget, tuned after the ablation at the benchmark's protocol
# (data/recipe_tuning.csv, written by ``benchmarks/bench_modern.py --csv``: wall-clock minutes on 2 threads, Wikipedia
# text). Muon's Newton-Schulz costs the same per step whatever the batch, so a larger batch spreads it over more
# tokens; but a larger batch also means fewer steps. In five minutes (about 5 million tokens) batch 128 won (of 32,
# 64, 128 and 256 on seeds 0 and 1; confirmed against 32 on seeds 2 and 3); in one minute (about 1 million) batch 32
# beat 128. The rule below picks the winner at both budgets; between them it is not measured. A CUDA GPU keeps the
# preset's batch (not measured there), and so does a run whose budget is not known.
BATCH_SIZES = (32, 64, 128)
MIN_STEPS = 500
# Muon's momentum on a CPU, tuned at the same protocol (data/recipe_tuning.csv: 680 steps of batch 128, about five
# minutes on 2 threads, no weight decay). The momentum M <- mu M + g averages about the last 1 / (1 - mu) gradients:
# 20 steps at the ablation's 0.95, 10 at 0.9. On the Shakespeare text (seed 0) 0.9 and 0.85 beat 0.95 by 0.011
# bits/char and 0.8 by 0.005. On the Wikipedia text 0.9 beat 0.95 on seeds 0 and 1 by 0.021 bits/char (2 SE 0.011);
# on Shakespeare, seeds 0 and 1, by 0.004 (2 SE 0.010): noise, not worse. Longer runs and a GPU were not measured:
# they keep Muon's default.
MUON_MOMENTUM = 0.9
# Every evaluation of the recipe reads at least this many validation windows, at any batch (8 batches of 32, 2 of
# 128): the same estimate whatever the batch, and a larger batch does not spend 4 times as long evaluating.
EVAL_WINDOWS = 256


def batch_for(budget_tokens: int, block_size: int) -> int:
    """The largest of ``BATCH_SIZES`` with which a run of ``budget_tokens`` tokens still makes at least
    ``MIN_STEPS`` steps of ``batch x block_size`` tokens; the smallest when none does."""
    if budget_tokens < 1 or block_size < 1:
        raise ValueError(f"budget_tokens and block_size should be positive, got {budget_tokens}, {block_size}")
    fits = [b for b in BATCH_SIZES if budget_tokens // (b * block_size) >= MIN_STEPS]
    return max(fits) if fits else min(BATCH_SIZES)


def probe(cfg: GPTConfig, st: TrainSettings, device: torch.device | str = "cpu") -> tuple[GPTConfig, TrainSettings]:
    """The model and settings to time a few steps with when estimating a run's budget in tokens
    (``train.expected_tokens``), before the budget decides the batch and the dropout:

    * on a CPU the largest batch :func:`batch_for` may pick, because the recipe's tokens per second grow with the
      batch (Newton-Schulz costs the same per step) and the rule asks whether *that* batch still makes enough steps
      (timed at batch 32, a five-minute budget looks about a quarter smaller than it is at batch 128);
    * no dropout: a run that reads its text fewer than ``REGULARISE_FROM_PASSES`` times trains without it, and dropout
      slows a step down (timed with it, a five-minute run on a small text looked a third shorter than it was). A run
      that does get dropout is then a little slower than timed.

    A GPU keeps the batch of ``st``."""
    if torch.device(device).type != "cuda":
        st = replace(st, batch_size=max(BATCH_SIZES), eval_batches=max(1, EVAL_WINDOWS // max(BATCH_SIZES)))
    return replace(cfg, dropout=0.0), st


# A run that reads its text fewer times than this gets neither dropout nor weight decay, whatever its tokens per
# parameter: memorising a text takes repetition. Dropout: measured with ``benchmarks/bench_modern.py
# --train-chars``-style runs (5 minutes, 2 threads, Wikipedia text cut to 1,000,000 and 250,000 training
# characters): at 2.2 and 8.6 passes, dropout 0.1 and 0.2 lost to no dropout by 0.09 and 0.15 nats/char, partly
# because dropout makes every step slower. Weight decay: at equal steps (680 steps of batch 128, about five minutes
# on 2 threads; data/recipe_tuning.csv), weight decay 0 beat 0.1 by 0.031 bits/char on the Wikipedia text (2.2
# passes) and by 0.021 on the Shakespeare text (5.3 passes), seeds 0 and 1, beyond 2 SE (0.2 lost to 0.1 on seed 0).
# Muon shrinks its matrices by lr x wd every step, and its lr is about 8 times AdamW's: in those five minutes the
# decay alone would multiply them by 0.055. Beyond 10 passes nothing was measured; the rule by tokens per parameter
# applies there.
REGULARISE_FROM_PASSES = 10.0


def regularisation(train_tokens: int, n_params: int, budget_tokens: int | None = None) -> tuple[float, float]:
    """(dropout, weight decay) from the training tokens per parameter r = train_tokens / n_params and, when the
    budget is known, from the passes the run will make over its text, budget_tokens / train_tokens.

    A text with many tokens per parameter is hardly repeated: no dropout. A small text is seen many times and the
    model starts to memorise it: dropout and stronger weight decay. Thresholds: r >= 3: (0.0, 0.1);
    1 <= r < 3: (0.1, 0.1); r < 1: (0.2, 0.2). But memorising takes repetition: a run that makes fewer than
    ``REGULARISE_FROM_PASSES`` passes over the text gets neither: (0.0, 0.0).
    """
    if train_tokens < 1 or n_params < 1:
        raise ValueError(f"train_tokens and n_params should be positive, got {train_tokens}, {n_params}")
    if budget_tokens is not None and budget_tokens < 1:
        raise ValueError(f"budget_tokens should be positive (the tokens the run will train on), got {budget_tokens}")
    if budget_tokens is not None and budget_tokens / train_tokens < REGULARISE_FROM_PASSES:
        return 0.0, 0.0
    r = train_tokens / n_params
    return (0.0, 0.1) if r >= 3 else (0.1, 0.1) if r >= 1 else (0.2, 0.2)


def modern_preset(vocab_size: int, train_tokens: int, device: torch.device | str = "cpu",
                  budget_tokens: int | None = None, world_size: int = 1) -> tuple[GPTConfig, TrainSettings]:
    """Notebook 08's preset for ``device`` with the recipe's changes, regularised for ``train_tokens``. When the
    ``budget_tokens`` the run will train on is given (all ``world_size`` processes together), the regularisation
    also depends on the passes over the text (see :func:`regularisation`), and on a CPU the batch on the steps each
    process will make (:func:`batch_for`) and Muon's momentum ``MUON_MOMENTUM``. On a CPU the recipe trains with
    bf16 matrix products (``cpu_bf16=True``; a no-op on a CPU without bf16 instructions)."""
    if world_size < 1:
        raise ValueError(f"world_size should be >= 1 (the processes training together), got {world_size}")
    cfg, st = preset(vocab_size, device)
    cfg_ch, st_ch = combine(list(RECIPE))
    cfg = replace(cfg, **cfg_ch)
    windows = max(st.eval_batches * st.batch_size, EVAL_WINDOWS)      # per evaluation, whatever the batch
    st = replace(st, **st_ch)
    if budget_tokens is not None and torch.device(device).type != "cuda":
        st = replace(st, batch_size=batch_for(budget_tokens // world_size, cfg.block_size),
                     muon_momentum=MUON_MOMENTUM)
    st = replace(st, eval_batches=-(-windows // st.batch_size), cpu_bf16=torch.device(device).type == "cpu")
    dropout, wd = regularisation(train_tokens, param_count(cfg), budget_tokens)
    return replace(cfg, dropout=dropout), replace(st, weight_decay=wd)


def override(cfg: GPTConfig, st: TrainSettings, specs: list[str]) -> tuple[GPTConfig, TrainSettings]:
    """``cfg`` and ``st`` with fields set from "name=value" strings (``bench_modern.py --set batch_size=64``): a
    name of GPTConfig or TrainSettings, the value converted to the type of the field's current value."""
    cfg_names, st_names = {f.name for f in fields(GPTConfig)}, {f.name for f in fields(TrainSettings)}
    cfg_ch, st_ch = {}, {}
    for spec in specs:
        name, eq, text = spec.partition("=")
        name, text = name.strip(), text.strip()
        if not eq or not name or not text:
            raise ValueError(f"{spec!r}: give name=value, e.g. batch_size=64")
        if name not in cfg_names | st_names:
            known = ", ".join(sorted(cfg_names | st_names))
            raise ValueError(f"{spec!r}: {name!r} is not a setting; settings: {known}")
        old = getattr(cfg, name) if name in cfg_names else getattr(st, name)
        try:
            if isinstance(old, bool):
                if text.lower() not in ("true", "false"):
                    raise ValueError
                value = text.lower() == "true"
            elif old is None:
                value = None if text.lower() == "none" else float(text) if "." in text or "e" in text else int(text)
            else:
                value = type(old)(text)
        except ValueError:
            raise ValueError(f"{spec!r}: {text!r} is not a {type(old).__name__} (the type of {name})") from None
        (cfg_ch if name in cfg_names else st_ch)[name] = value
    return replace(cfg, **cfg_ch), replace(st, **st_ch)


class KeepBest:
    """``train(..., callback=KeepBest(model))``: after each evaluation, copy the weights if the validation loss is
    the lowest so far. ``restore()`` loads the best copy into the model and returns (best loss, its step)."""

    def __init__(self, model: torch.nn.Module, chain=None):
        self.model, self.chain = model, chain
        self.best, self.step, self.state = float("inf"), None, None

    def __call__(self, history: dict) -> None:
        loss = history["val"][-1]
        if loss < self.best:
            self.best, self.step = loss, history["val_step"][-1]
            self.state = copy.deepcopy(self.model.state_dict())
        if self.chain is not None:
            self.chain(history)

    def restore(self) -> tuple[float, int | None]:
        if self.state is not None:
            self.model.load_state_dict(self.state)
        return self.best, self.step


