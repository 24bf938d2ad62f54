"""Direct preference optimisation (DPO, Rafailov et al. 2023), by hand (notebook 18).

For a prompt x with a chosen reply y_w and a rejected one y_l, a policy pi (the model being trained) and a frozen
reference pi_ref (here: the same model with its LoRA adapters switched off):

    r(y)  = beta * (log pi(y | x) - log pi_ref(y | x))            the implicit reward of a reply
    loss  = - log sigmoid( r(y_w) - r(y_l) )                       averaged over the pairs

log pi(y | x) is the sum of the log-probabilities of the reply's tokens (:func:`sequence_logprob`, counted by the
same labels as supervised fine-tuning). The loss falls when the policy raises the chosen reply relative to the
reference more than it raises the rejected one; beta sets how far from the reference that is worth going.

    lp = sequence_logprob(model, idx, labels)                              # (B,)
    loss, r_w, r_l = dpo_loss(lp_w, lp_l, ref_w, ref_l, beta=0.1)
    kl = kl_to_reference(model, idx, labels)                                # nats per counted token
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .chat import IGNORE
from .errors import ShapeError
from .lora import adapters_off
from .sft import token_logprobs


def _check_ids(idx: torch.Tensor, labels: torch.Tensor) -> None:
    if not isinstance(idx, torch.Tensor) or idx.dim() != 2:
        got = tuple(idx.shape) if isinstance(idx, torch.Tensor) else type(idx).__name__
        raise ShapeError(f"idx should be (B, T) token ids, got {got}")
    if not isinstance(labels, torch.Tensor) or labels.shape != idx.shape:
        got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ShapeError(f"labels should be (B, T) = {tuple(idx.shape)} like idx, got {got}")


def sequence_logprob(model, idx: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log pi(reply | prompt) for each row: the sum of the log-probabilities of the counted tokens, (B,).
    Gradients flow when called outside ``torch.no_grad``. Raises ValueError for a row with no counted token."""
    _check_ids(idx, labels)
    empty = ((labels[:, 1:] != IGNORE).sum(1) == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"row(s) {empty} have no counted token (no assistant reply): log pi(reply) is undefined")
    dev = next(model.parameters()).device
    logits, _ = model(idx.to(dev))
    return token_logprobs(logits, labels.to(dev)).sum(1)


def _check_logps(**named: torch.Tensor) -> int:
    sizes = {}
    for name, t in named.items():
        if not isinstance(t, torch.Tensor) or t.dim() != 1:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ShapeError(f"{name} should be a 1-D tensor (one log-probability per pair), got {got}")
        sizes[name] = len(t)
    if len(set(sizes.values())) != 1:
        raise ShapeError("chosen and rejected batches must hold the same pairs: got sizes "
                         + ", ".join(f"{k}={v}" for k, v in sizes.items()))
    return next(iter(sizes.values()))


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float = 0.1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The DPO loss of a batch of pairs from the sequence log-probabilities (each (B,)), and the implicit rewards.

    Returns (loss: scalar, mean over pairs of -log sigmoid(r_w - r_l); r_w: (B,); r_l: (B,)), where
    r = beta * (policy - reference). Only the policy's terms carry gradients (pass the reference's detached)."""
    _check_logps(policy_chosen=policy_chosen, policy_rejected=policy_rejected, ref_chosen=ref_chosen,
                 ref_rejected=ref_rejected)
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta <= 0:
        raise ValueError(f"beta should be a positive number, got {beta!r}")
    r_w = beta * (policy_chosen - ref_chosen.detach())
    r_l = beta * (policy_rejected - ref_rejected.detach())
    loss = -F.logsigmoid(r_w - r_l).mean()          # logsigmoid: no overflow for large margins
    return loss, r_w, r_l


@torch.no_grad()
def reference_logprob(model, idx: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """:func:`sequence_logprob` of the reference: the same model with its adapters switched off, (B,)."""
    with adapters_off(model):
        return sequence_logprob(model, idx, labels)


@torch.no_grad()
def kl_to_reference(model, idx: torch.Tensor, labels: torch.Tensor) -> float:
    """The mean KL divergence KL(pi || pi_ref) of the next-token distributions at the counted positions, in nats
    per token: how far the adapters moved the model on these texts (0 for the reference itself)."""
    _check_ids(idx, labels)
    dev = next(model.parameters()).device
    counted = (labels[:, 1:] != IGNORE).to(dev)
    if not counted.any():
        raise ValueError("no position is counted (every label is IGNORE)")
    logp = model(idx.to(dev))[0][:, :-1].float().log_softmax(-1)
    with adapters_off(model):
        logq = model(idx.to(dev))[0][:, :-1].float().log_softmax(-1)
    kl = (logp.exp() * (logp - logq)).sum(-1)                 # (B, T-1)
    return float(kl[counted].mean())
