"""Today's recipe for the mini-GPT (notebook 15): each change is an option of ``GPTConfig`` / ``TrainSettings``,
off by default, so notebooks 08-09 keep exactly the GPT-2-style model.

This module holds the training-side options (Muon and Newton-Schulz, the WSD schedule, the settings' checks,
the clocks) and the exact parameter count; the model's layers (RMSNorm, SwiGLU, ReLU2, ModernAttention,
ModernBlock, make_norm, make_mlp) live in ``course_utils.layers`` and GPTConfig's checks in
``course_utils.model``; they are re-exported here. It imports downward only (layers, model, errors).

Model (``GPTConfig`` fields)::

    pos="rope"         rotary position embeddings on queries and keys (course_utils.positional.apply_rope)
    norm="rmsnorm"     RMSNorm(x) = x / sqrt(mean(x^2) + eps) * g               (no mean, no bias)
    mlp="swiglu"       SwiGLU(x) = (SiLU(x W1) * (x W3)) W2, hidden ~ 8d/3: the same parameters as GELU at 4d
    mlp="relu2"        ReLU^2(x) = relu(x W1)^2 W2, hidden 4d
    qk_norm=True       RMSNorm on each head's queries and keys before the dot product
    tied=False         an output layer W_out of its own instead of the token embedding E^T
    zero_init=True     output projections (W_O, the FFN's W2, W_out) start at zero: every block starts as identity
    n_kv_heads=k       grouped-query attention: h query heads share k key/value heads (k divides h)
    bias=False         no biases in the linear layers
    rope_base=b        RoPE's base (10,000 by default; 100,000 in SmolLM2), norm_eps=e  every norm's eps,
    ffn_hidden=h       an explicit feed-forward width (published Llama-family models give theirs)

Training (``TrainSettings`` fields)::

    schedule="wsd"     warm-up, stable (constant lr), decay (linear to the floor over the last ``cooldown``)
    optimizer="muon"   Muon on the 2-D weight matrices of the blocks, AdamW on the rest
    cpu_bf16=True      on a CPU with bf16 instructions, the matrix products in bf16 (runtime.autocast); QK-norm,
                       RoPE and attention stay fp32 (ModernAttention), and so do the weights and evaluations

Muon: the update of a weight matrix is its momentum M orthogonalised, O = U V^T where M = U S V^T, computed with a
few Newton-Schulz iterations X <- a X + b (X X^T) X + c (X X^T)^2 X (no SVD needed) and scaled by
sqrt(max(1, rows/cols)).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from .errors import ShapeError
from .layers import ModernAttention, ModernBlock, ReLU2, RMSNorm, SwiGLU, ffn_width, make_mlp, make_norm, swiglu_hidden
from .model import MLPS, NORMS, POS, check_config, is_modern

# Re-exported: notebooks, tests and exercises import these names from course_utils.modern.
__all__ = ["ModernAttention", "ModernBlock", "ReLU2", "RMSNorm", "SwiGLU", "ffn_width", "make_mlp", "make_norm",
           "swiglu_hidden", "MLPS", "NORMS", "POS", "check_config", "is_modern", "param_count", "newton_schulz",
           "Muon", "muon_groups", "make_muon", "wsd_lr", "check_settings", "clock", "time_wall", "time_process",
           "bits", "NS_QUINTIC", "NS_CUBIC", "SCHEDULES", "OPTIMIZERS"]

SCHEDULES = ("cosine", "wsd")
OPTIMIZERS = ("adamw", "muon")

# Quintic Newton-Schulz coefficients of Muon (Jordan et al., 2024): they push every singular value of X into
# about [0.7, 1.2] in 5 steps, much faster than the cubic (1.5, -0.5, 0), which converges to exactly 1 but slowly.
NS_QUINTIC = (3.4445, -4.7750, 2.0315)
NS_CUBIC = (1.5, -0.5, 0.0)


# ---- model options (the layers live in course_utils.layers, GPTConfig and its checks in course_utils.model) ----

def param_count(c) -> int:
    """Exact parameter count of a MiniGPT with config c (any options), from the formulas of notebook 15.

    Feed-forward of hidden width h = ``ffn_width(c)`` (``c.ffn_hidden`` if set): 3 d h for SwiGLU, 2 d h else."""
    d, V, L = c.d_model, c.vocab_size, c.n_layers
    dh, kv = d // c.n_heads, c.n_kv_heads or c.n_heads
    b = 1 if c.bias else 0
    attn = d * d + 2 * d * kv * dh + d * d + b * (d + 2 * kv * dh + d)
    hdim = ffn_width(c)
    if c.mlp == "swiglu":
        mlp = 3 * d * hdim + b * (2 * hdim + d)
    else:
        mlp = 2 * d * hdim + b * (hdim + d)
    norm = d if c.norm == "rmsnorm" else 2 * d
    qk = 2 * (norm // d) * dh if c.qk_norm else 0
    block = attn + mlp + 2 * norm + qk
    emb = V * d + (c.block_size * d if c.pos == "learned" else 0)
    head = 0 if c.tied else V * d
    return emb + L * block + norm + head


# ---- Muon ------------------------------------------------------------------------------------------------------

def newton_schulz(G: torch.Tensor, steps: int = 5, coeffs: tuple[float, float, float] = NS_QUINTIC,
                  eps: float = 1e-7) -> torch.Tensor:
    """Approximately orthogonalise a matrix: G (m, n) -> O (m, n) with O ~ U V^T where G = U S V^T.

    X0 = G / ||G||_F (every singular value <= 1), then ``steps`` times X <- a X + b (X X^T) X + c (X X^T)^2 X,
    which maps each singular value s to a s + b s^3 + c s^5 and leaves the singular vectors alone.
    Works on the wide orientation (m <= n) so X X^T is the small Gram matrix.

    G may also be a stack of matrices of one shape, (k, m, n) -> (k, m, n): each is orthogonalised on its own
    (its own norm), in one batched matrix product per step instead of k small ones (how Muon's step uses it).
    """
    if not isinstance(G, torch.Tensor) or G.dim() not in (2, 3):
        raise ShapeError(f"newton_schulz expects a matrix (m, n) or a stack of them (k, m, n), got "
                         f"{tuple(G.shape) if isinstance(G, torch.Tensor) else type(G).__name__}")
    if steps < 0:
        raise ValueError(f"steps should be >= 0, got {steps}")
    a, b, c = coeffs
    X = G.float() if G.dim() == 3 else G.float().unsqueeze(0)          # (k, m, n)
    tall = X.shape[-2] > X.shape[-1]
    if tall:
        X = X.mT
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + eps)
    for _ in range(steps):
        A = X @ X.mT                                     # (k, m, m) Gram matrices
        B = torch.baddbmm(A, A, A, beta=b, alpha=c)      # b A + c A^2
        X = torch.baddbmm(X, B, X, beta=a)               # a X + (b A + c A^2) X
    if tall:
        X = X.mT
    return X if G.dim() == 3 else X[0]


class Muon(torch.optim.Optimizer):
    """Muon for 2-D weight matrices and AdamW for everything else, in one optimizer (one state_dict).

    Groups with ``muon=True``: M <- mu M + g; update = NS(g + mu M) (Nesterov) * sqrt(max(1, rows/cols));
    W <- W (1 - lr wd) - lr update. Other groups: AdamW with ``betas``, ``eps``, ``weight_decay``.
    """

    def __init__(self, params, lr: float = 0.02, momentum: float = 0.95, ns_steps: int = 5,
                 betas: tuple[float, float] = (0.9, 0.95), eps: float = 1e-8, weight_decay: float = 0.0):
        defaults = dict(lr=lr, momentum=momentum, ns_steps=ns_steps, betas=betas, eps=eps,
                        weight_decay=weight_decay, muon=False)
        super().__init__(params, defaults)
        for g in self.param_groups:
            if g["muon"] and any(p.dim() != 2 for p in g["params"]):
                raise ValueError("Muon orthogonalises matrices: a group with muon=True may hold only 2-D weights")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for g in self.param_groups:
            params = [p for p in g["params"] if p.grad is not None]
            if g["muon"]:
                self._muon_step(g, params)
            else:
                self._adamw_step(g, params)
        return loss

    def _muon_step(self, g: dict, params: list) -> None:
        """M <- mu M + grad, then every matrix moves by NS(grad + mu M); matrices of one shape share one batched
        Newton-Schulz (the same result as one call per matrix, in a few large products instead of many small)."""
        lr, wd, mu = g["lr"], g["weight_decay"], g["momentum"]
        by_shape: dict[tuple, list] = {}
        for p in params:
            state = self.state[p]
            if "momentum" not in state:
                state["momentum"] = torch.zeros_like(p)
            m = state["momentum"]
            m.mul_(mu).add_(p.grad)
            by_shape.setdefault(tuple(p.shape), []).append(p)
        for (rows, cols), ps in by_shape.items():
            nesterov = torch.stack([p.grad.add(self.state[p]["momentum"], alpha=mu) for p in ps])   # (k, rows, cols)
            updates = newton_schulz(nesterov, g["ns_steps"])
            scale = lr * max(1.0, rows / cols) ** 0.5
            for p, u in zip(ps, updates, strict=True):
                p.mul_(1 - lr * wd)
                p.add_(u.to(p.dtype), alpha=-scale)

    def _adamw_step(self, g: dict, params: list) -> None:
        """AdamW, the same update as torch.optim.AdamW (the step count a tensor in the state, as PyTorch keeps it)."""
        if not params:
            return
        lr, wd, eps = g["lr"], g["weight_decay"], g["eps"]
        b1, b2 = g["betas"]
        for p in params:
            state = self.state[p]
            if "step" not in state:
                state["step"] = torch.zeros(())
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
            state["step"] += 1
            t = state["step"].item()
            m, v = state["exp_avg"], state["exp_avg_sq"]
            m.lerp_(p.grad, 1 - b1)
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            denom = (v / (1 - b2 ** t)).sqrt_().add_(eps)
            p.mul_(1 - lr * wd)
            p.addcdiv_(m, denom, value=-lr / (1 - b1 ** t))


def muon_groups(model: nn.Module) -> tuple[list, list, list]:
    """Split parameters: (block matrices for Muon, other matrices (embeddings, output layer), vectors)."""
    muon, other, vectors = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.dim() == 2 and name.startswith("blocks."):
            muon.append(p)
        elif p.dim() >= 2:
            other.append(p)
        else:
            vectors.append(p)
    return muon, other, vectors


def make_muon(model: nn.Module, s) -> Muon:
    """The optimizer of ``TrainSettings(optimizer="muon")``: Muon at ``s.muon_lr`` for the blocks' matrices,
    AdamW at ``s.lr`` for the embedding / output layer (weight decay) and the vectors (none). Each group has an
    ``lr_scale`` = its lr / s.lr, so the schedule scales all of them together."""
    muon, other, vectors = muon_groups(model)
    groups = [{"params": muon, "muon": True, "lr": s.muon_lr, "lr_scale": s.muon_lr / s.lr,
               "weight_decay": s.weight_decay},
              {"params": other, "lr": s.lr, "lr_scale": 1.0, "weight_decay": s.weight_decay},
              {"params": vectors, "lr": s.lr, "lr_scale": 1.0, "weight_decay": 0.0}]
    return Muon([g for g in groups if g["params"]], momentum=s.muon_momentum, betas=(s.beta1, s.beta2))


# ---- the schedule and training settings -------------------------------------------------------------------------

def wsd_lr(step: int, progress: float, lr: float, warmup_steps: int, min_lr_ratio: float, cooldown: float) -> float:
    """Warm-up-stable-decay: linear warm-up over ``warmup_steps``, then lr constant until the last ``cooldown``
    fraction of the budget, then a straight line down to lr * min_lr_ratio at progress 1."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    p = min(max(progress, 0.0), 1.0)
    start = 1.0 - cooldown
    if p <= start:
        return lr
    floor = lr * min_lr_ratio
    return lr - (p - start) / cooldown * (lr - floor)


def check_settings(s) -> None:
    """Clear errors for TrainSettings values and combinations that do not make sense."""
    if s.schedule not in SCHEDULES:
        raise ValueError(f"schedule should be one of {', '.join(map(repr, SCHEDULES))}, got {s.schedule!r}")
    if s.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer should be one of {', '.join(map(repr, OPTIMIZERS))}, got {s.optimizer!r}")
    if not 0.0 < s.cooldown <= 1.0:
        raise ValueError(f"cooldown is the fraction of the budget spent decaying: in (0, 1], got {s.cooldown}")
    if s.optimizer == "muon" and (s.muon_lr <= 0 or not 0.0 <= s.muon_momentum < 1.0):
        raise ValueError(f"Muon needs muon_lr > 0 and 0 <= muon_momentum < 1, got {s.muon_lr}, {s.muon_momentum}")
    if s.clock not in ("wall", "process"):
        raise ValueError(f"clock should be 'wall' (time.perf_counter) or 'process' (CPU time of this process, "
                         f"time.process_time), got {s.clock!r}")


def clock(s):
    """The timer a budget in minutes is measured with: wall time, or the CPU time of this process."""
    return time_process if s.clock == "process" else time_wall


def time_wall() -> float:
    import time
    return time.perf_counter()


def time_process() -> float:
    import time
    return time.process_time()


def bits(nats: float) -> float:
    """nats per character -> bits per character (divide by ln 2)."""
    return nats / math.log(2)
