"""The modern recipe as a preset of the training command (notebook 15): ``python -m course_utils.train --recipe
modern``.

* :data:`CHANGES` -- every change the ablation (``course_utils.ablation``) measures, as GPTConfig / TrainSettings
  changes; :func:`combine` adds several up.
* :func:`modern_preset` -- notebook 08's CPU sizes with the changes the ablation kept (``RECIPE``), and the dropout
  and weight decay chosen from the number of training tokens per parameter and the passes the budget makes over
  the text (:func:`regularisation`).
* :class:`KeepBest` -- a ``train`` callback that remembers the weights with the lowest validation loss;
  ``restore()`` puts them back at the end, so the final model is never one that got worse.

Imports downward only (settings, modern, model): ``course_utils.train`` imports this module for ``--recipe
modern`` and ``course_utils.ablation`` for the list of changes; neither is imported here.
"""

from __future__ import annotations

import copy
from dataclasses import replace

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


# A run that reads its text fewer times than this gets no dropout, whatever its tokens per parameter. Measured with
# ``benchmarks/bench_modern.py --train-chars``-style runs (5 minutes, 2 threads, Wikipedia text cut to 1,000,000 and
# 250,000 training characters): at 2.2 and 8.6 passes, dropout 0.1 and 0.2 lost to no dropout by 0.09 and 0.15
# nats/char, partly because dropout makes every step slower. Beyond 10 passes nothing was measured; the rule by
# tokens per parameter applies there.
DROPOUT_FROM_PASSES = 10.0


def regularisation(train_tokens: int, n_params: int, budget_tokens: int | None = None) -> tuple[float, float]:
    """(dropout, weight decay) from the training tokens per parameter r = train_tokens / n_params and, when the
    budget is known, from the passes the run will make over its text, budget_tokens / train_tokens.

    A text with many tokens per parameter is hardly repeated: no dropout. A small text is seen many times and the
    model starts to memorise it: dropout and stronger weight decay. Thresholds: r >= 3: (0.0, 0.1);
    1 <= r < 3: (0.1, 0.1); r < 1: (0.2, 0.2). But memorising takes repetition: a run that makes fewer than
    ``DROPOUT_FROM_PASSES`` passes over the text keeps the weight decay and drops the dropout.
    """
    if train_tokens < 1 or n_params < 1:
        raise ValueError(f"train_tokens and n_params should be positive, got {train_tokens}, {n_params}")
    if budget_tokens is not None and budget_tokens < 1:
        raise ValueError(f"budget_tokens should be positive (the tokens the run will train on), got {budget_tokens}")
    r = train_tokens / n_params
    dropout, wd = (0.0, 0.1) if r >= 3 else (0.1, 0.1) if r >= 1 else (0.2, 0.2)
    if budget_tokens is not None and budget_tokens / train_tokens < DROPOUT_FROM_PASSES:
        dropout = 0.0
    return dropout, wd


def modern_preset(vocab_size: int, train_tokens: int, device: torch.device | str = "cpu",
                  budget_tokens: int | None = None) -> tuple[GPTConfig, TrainSettings]:
    """Notebook 08's preset for ``device`` with the recipe's changes, regularised for ``train_tokens`` and, when
    given, for the ``budget_tokens`` the run will train on (see :func:`regularisation`)."""
    cfg, st = preset(vocab_size, device)
    cfg_ch, st_ch = combine(list(RECIPE))
    cfg = replace(cfg, **cfg_ch)
    st = replace(st, **st_ch, eval_batches=max(st.eval_batches, 8))
    dropout, wd = regularisation(train_tokens, param_count(cfg), budget_tokens)
    return replace(cfg, dropout=dropout), replace(st, weight_decay=wd)


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


