"""Supervised fine-tuning (notebook 18): notebook 08's cross-entropy, counted only where the labels say so.

    loss = - (1 / |S|) * sum_{t in S} log p(x_{t+1} | x_{<=t}),    S = the positions whose next token is trained

With labels from :func:`course_utils.chat.encode_chat`, S is the assistant's tokens: the model learns to write
the replies, not to predict the questions. ``masked_cross_entropy`` is that formula, written out; the tests prove
it equal to ``F.cross_entropy(..., ignore_index=-100)``.

    loss = masked_cross_entropy(logits, labels)       # logits (B, T, V), labels (B, T) aligned with the ids
    order = batch_order(n_examples, batch_size, steps, seed)
    history = train_adapters(model, loss_of_step, steps, lr, path=...)   # LoRA only; saved atomically
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from pathlib import Path

import torch

from .chat import IGNORE
from .errors import ShapeError
from .lora import lora_layers, save_adapters
from .probes import next_token_logprobs


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean of -log p(label) over the counted positions. logits: (B, T, V); labels: (B, T), aligned with the ids
    (the prediction at position t is scored against ``labels[:, t + 1]``), :data:`IGNORE` where not counted.

    Equal to ``F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=IGNORE)``.
    Raises ValueError when no position is counted (a batch without any assistant token)."""
    if not isinstance(logits, torch.Tensor) or logits.dim() != 3:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ShapeError(f"logits should be (B, T, V), got {got}")
    if not isinstance(labels, torch.Tensor) or tuple(labels.shape) != tuple(logits.shape[:2]):
        got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ShapeError(f"labels should be (B, T) = {tuple(logits.shape[:2])} like the logits, got {got}")
    n = int((labels[:, 1:] != IGNORE).sum())                 # the counted positions
    if n == 0:
        raise ValueError("no position is counted (every label is IGNORE): the batch has no assistant token")
    return -token_logprobs(logits, labels).sum() / n


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p(labels[:, t + 1]) at every position t: (B, T - 1), zero where the label is IGNORE.
    logits: (B, T, V); labels: (B, T) aligned with the ids (as in :mod:`course_utils.chat`)."""
    target = labels[:, 1:]                                    # (B, T-1): the token each position must predict
    picked = next_token_logprobs(logits[:, :-1], target.clamp(min=0))   # (B, T-1), log p(target)
    return picked * (target != IGNORE)


def all_tokens(idx: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Labels that count every real token of the conversation (system, user, template and assistant alike): the
    unmasked loss, for comparison. Padding (where ``labels`` is IGNORE after the last real token) stays IGNORE."""
    real = torch.zeros_like(labels, dtype=torch.bool)
    counted = labels != IGNORE
    for b in range(labels.shape[0]):
        last = int(counted[b].nonzero().max()) if counted[b].any() else -1
        real[b, :last + 1] = True
    return torch.where(real, idx, torch.full_like(idx, IGNORE))


def batch_order(n_examples: int, batch_size: int, steps: int, seed: int = 0) -> list[list[int]]:
    """Indices of the examples of each step: shuffled epochs, one after the other, ``steps`` batches in all."""
    for name, v in (("n_examples", n_examples), ("batch_size", batch_size), ("steps", steps)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} should be a whole number >= 1, got {v!r}")
    if batch_size > n_examples:
        raise ValueError(f"batch_size={batch_size} is larger than the {n_examples} examples")
    rng = random.Random(seed)
    order: list[int] = []
    out = []
    for _ in range(steps):
        if len(order) < batch_size:
            more = list(range(n_examples))
            rng.shuffle(more)
            order += more
        out.append(order[:batch_size])
        order = order[batch_size:]
    return out


def train_adapters(model, loss_of_step: Callable[[int], torch.Tensor], steps: int, lr: float,
                   path: str | Path | None = None, save_every: int = 10, warmup: int = 5,
                   log: Callable[[str], None] | None = print, log_every: int = 10) -> dict[str, list]:
    """Train the model's LoRA adapters (and nothing else) with AdamW for ``steps`` steps; returns the history
    ``{"step": [...], "loss": [...], "seconds": [...], "cpu_seconds": [...]}``.

    ``loss_of_step(step)`` returns the loss of that step's batch. The learning rate rises linearly over ``warmup``
    steps, then stays at ``lr``. With ``path`` the adapters are saved atomically every ``save_every`` steps and at
    the end (``lora.save_adapters``), so an interrupt (Kernel > Interrupt) keeps the last good file; the run then
    stops there and returns its history so far. The model is left in eval mode.
    """
    if not lora_layers(model):
        raise ValueError("the model has no LoRA adapters to train (add them with lora.add_lora)")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps should be a whole number >= 1, got {steps!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr should be a positive number, got {lr!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
    history: dict[str, list] = {"step": [], "loss": [], "seconds": [], "cpu_seconds": []}
    t0, c0 = time.perf_counter(), time.process_time()
    saved, updating, step, done = None, False, 0, 0

    def save(at: int) -> None:
        nonlocal saved
        if path is not None:
            save_adapters(path, model, extra={"step": at})
            saved = at

    model.train()
    try:
        for step in range(1, steps + 1):
            for group in opt.param_groups:
                group["lr"] = lr * min(1.0, step / max(1, warmup))
            loss = loss_of_step(step - 1)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"the loss is {loss.item()} at step {step}: lower the learning rate")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            updating = True
            opt.step()
            updating = False
            done = step
            history["step"].append(step)
            history["loss"].append(loss.item())
            history["seconds"].append(time.perf_counter() - t0)
            history["cpu_seconds"].append(time.process_time() - c0)
            if log is not None and (step % log_every == 0 or step == steps):
                log(f"step {step:4d}/{steps}  loss {loss.item():.4f}  {time.perf_counter() - t0:5.0f} s")
            if step % save_every == 0 or step == steps:
                save(step)
    except KeyboardInterrupt:
        if updating:                 # the adapters may be half-updated: keep the last file as it is
            msg = f"Interrupted during the update of step {step}"
        else:
            if done and done != saved:
                save(done)
            msg = f"Interrupted after step {done}"
        where = f"; the adapters saved at step {saved} are in {path}" if saved is not None else ""
        if log is not None:
            log(msg + where + ". The history so far is returned.")
    finally:
        model.eval()
    return history
