"""How to train a MiniGPT (notebook 08): the settings, the learning-rate schedule, and the sizes the course uses
on each device.

    TrainSettings   the budget (steps and/or minutes), batch, learning rate, warm-up, weight decay, evaluations,
                    and notebook 15's options (schedule="wsd", optimizer="muon", clock="process")
    lr_at           the learning rate at a step: linear warm-up, then cosine decay to a floor (or WSD)
    preset          the GPTConfig and TrainSettings for a laptop CPU or a CUDA GPU

``course_utils.train`` (the loop and the command line) and ``course_utils.recipe`` (the modern preset) both build
on this module, and ``train`` imports ``recipe``, never the reverse. Everything here is importable from
``course_utils.train`` as before. Imports downward only: model, modern.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import modern
from .model import GPTConfig


@dataclass
class TrainSettings:
    """How to train. A budget of ``max_steps`` and/or ``minutes`` (whichever ends first) is required."""

    max_steps: int | None = None
    minutes: float | None = None
    batch_size: int = 32
    lr: float = 2e-3                 # peak learning rate, reached at the end of warm-up
    min_lr_ratio: float = 0.1        # the cosine decays to lr * min_lr_ratio
    warmup_steps: int = 50
    weight_decay: float = 0.1        # AdamW's decoupled weight decay, on matrices only
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0           # clip the global gradient norm to this (0 = no clipping)
    eval_interval: int | None = 200  # evaluate every this many steps ...
    eval_seconds: float | None = None  # ... or every this many seconds
    eval_batches: int = 8            # validation batches per evaluation (the same batches each time)
    seed: int = 0
    # Today's options (notebook 15, course_utils.modern); the defaults train as notebook 08 does.
    schedule: str = "cosine"         # "wsd": warm-up, stable, then a linear decay over the last `cooldown`
    cooldown: float = 0.3            # fraction of the budget the wsd schedule spends decaying
    optimizer: str = "adamw"         # "muon": Muon on the blocks' weight matrices, AdamW on the rest
    muon_lr: float = 0.05             # Muon's learning rate (chosen from 0.02 / 0.05 / 0.1 on a 20-CPU-second run)
    muon_momentum: float = 0.95
    clock: str = "wall"              # what `minutes` measures: "wall" time or "process" CPU time
    cpu_bf16: bool = False           # on a CPU with bf16 instructions, train with bf16 matrix products (autocast);
    #                                  evaluation stays fp32. A GPU always trains in bf16 (runtime.autocast)

    def __post_init__(self):
        modern.check_settings(self)
        if self.max_steps is None and self.minutes is None:
            raise ValueError("give a budget: max_steps=..., minutes=..., or both")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps should be >= 1, got {self.max_steps}")
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError(f"minutes should be > 0, got {self.minutes}")
        if self.batch_size < 1 or self.lr <= 0:
            raise ValueError("batch_size should be >= 1 and lr > 0")



def lr_at(step: int, progress: float, s: TrainSettings) -> float:
    """Learning rate at ``step``: linear warm-up over ``warmup_steps``, then cosine decay over ``progress`` in [0, 1]
    (the fraction of the budget used) from ``lr`` down to ``lr * min_lr_ratio``."""
    if s.schedule == "wsd":
        return modern.wsd_lr(step, progress, s.lr, s.warmup_steps, s.min_lr_ratio, s.cooldown)
    if step < s.warmup_steps:
        return s.lr * (step + 1) / s.warmup_steps
    p = min(max(progress, 0.0), 1.0)
    floor = s.lr * s.min_lr_ratio
    return floor + 0.5 * (1.0 + math.cos(math.pi * p)) * (s.lr - floor)


# ---- sizes that fit each device ---------------------------------------------------------------------------------

def preset(vocab_size: int, device: torch.device | str = "cpu") -> tuple[GPTConfig, TrainSettings]:
    """The model and training settings the course uses on ``device``: sized for a laptop CPU (tuned for 2 cores
    and a 5-minute budget), larger on a CUDA GPU. Add the budget with ``replace(settings, minutes=...)``."""
    if torch.device(device).type == "cuda":
        cfg = GPTConfig(vocab_size=vocab_size, block_size=256, d_model=384, n_heads=6, n_layers=6, dropout=0.1)
        st = TrainSettings(minutes=5, batch_size=64, lr=1e-3, warmup_steps=200, weight_decay=0.1, beta2=0.99,
                           eval_interval=None, eval_seconds=30, eval_batches=20)
        return cfg, st
    cfg = GPTConfig(vocab_size=vocab_size, block_size=64, d_model=128, n_heads=4, n_layers=4)
    st = TrainSettings(minutes=5, batch_size=32, lr=6e-3, warmup_steps=30, weight_decay=0.1, beta2=0.95,
                       eval_interval=None, eval_seconds=30, eval_batches=4)
    return cfg, st
