"""Today's recipe for the mini-GPT (notebook 15): each change is an option of ``GPTConfig`` / ``TrainSettings``,
off by default, so notebooks 08-09 keep exactly the GPT-2-style model.

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

Training (``TrainSettings`` fields)::

    schedule="wsd"     warm-up, stable (constant lr), decay (linear to the floor over the last ``cooldown``)
    optimizer="muon"   Muon on the 2-D weight matrices of the blocks, AdamW on the rest

Muon: the update of a weight matrix is its momentum M orthogonalised, O = U V^T where M = U S V^T, computed with a
few Newton-Schulz iterations X <- a X + b (X X^T) X + c (X X^T)^2 X (no SVD needed) and scaled by
sqrt(max(1, rows/cols)).
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import causal_mask
from .errors import ShapeError, check_shape
from .positional import apply_rope

POS = ("learned", "rope")
NORMS = ("layernorm", "rmsnorm")
MLPS = ("gelu", "swiglu", "relu2")
SCHEDULES = ("cosine", "wsd")
OPTIMIZERS = ("adamw", "muon")

# Quintic Newton-Schulz coefficients of Muon (Jordan et al., 2024): they push every singular value of X into
# about [0.7, 1.2] in 5 steps, much faster than the cubic (1.5, -0.5, 0), which converges to exactly 1 but slowly.
NS_QUINTIC = (3.4445, -4.7750, 2.0315)
NS_CUBIC = (1.5, -0.5, 0.0)


# ---- model options --------------------------------------------------------------------------------------------

def is_modern(config) -> bool:
    """True when any modern option of a GPTConfig is on (the model then uses :class:`ModernBlock`)."""
    return (config.pos != "learned" or config.norm != "layernorm" or config.mlp != "gelu" or config.qk_norm
            or not config.tied or config.zero_init or config.n_kv_heads not in (None, config.n_heads)
            or not config.bias)


def check_config(c) -> None:
    """Clear errors for GPTConfig values and combinations that do not make sense."""
    for name, value, allowed in (("pos", c.pos, POS), ("norm", c.norm, NORMS), ("mlp", c.mlp, MLPS)):
        if value not in allowed:
            raise ValueError(f"GPTConfig.{name} should be one of {', '.join(map(repr, allowed))}, got {value!r}")
    for name in ("vocab_size", "block_size", "d_model", "n_heads", "n_layers"):
        v = getattr(c, name)
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"GPTConfig.{name} should be a positive int, got {v!r}")
    if c.d_model % c.n_heads:
        raise ValueError(f"d_model={c.d_model} must be divisible by n_heads={c.n_heads}")
    if not 0.0 <= c.dropout < 1.0:
        raise ValueError(f"dropout should be in [0, 1), got {c.dropout}")
    if c.n_kv_heads is not None:
        if isinstance(c.n_kv_heads, bool) or not isinstance(c.n_kv_heads, int) or c.n_kv_heads < 1:
            raise ValueError(f"n_kv_heads should be a positive int (or None = n_heads), got {c.n_kv_heads!r}")
        if c.n_heads % c.n_kv_heads:
            raise ValueError(f"grouped-query attention shares each key/value head among n_heads / n_kv_heads query "
                             f"heads, so n_kv_heads={c.n_kv_heads} must divide n_heads={c.n_heads}")
    if c.pos == "rope" and (c.d_model // c.n_heads) % 2:
        raise ValueError(f"rotary embeddings rotate pairs of coordinates, so the head size d_model / n_heads = "
                         f"{c.d_model // c.n_heads} must be even")
    if is_modern(c) and not c.fast:
        raise ValueError("the modern options run through PyTorch's fused attention only; keep fast=True "
                         "(fast=False is the hand-built path of notebooks 03-08 for the GPT-2-style model)")


class RMSNorm(nn.Module):
    """RMSNorm(x) = x / sqrt(mean(x^2) + eps) * g over the last dim: (..., d) -> (..., d). Same as nn.RMSNorm."""

    def __init__(self, d: int, eps: float = 1e-6, fast: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))   # g
        self.eps = eps
        self.fast = fast

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.weight.shape[0]:
            raise ShapeError(f"RMSNorm expects (..., {self.weight.shape[0]}), got {tuple(x.shape)}")
        if self.fast:
            return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight


def swiglu_hidden(d: int, mult: int = 4) -> int:
    """Hidden width of a SwiGLU layer with the weights of a GELU layer of width mult*d: 3 d h = 2 mult d^2."""
    return round(2 * mult * d / 3)


class SwiGLU(nn.Module):
    """SwiGLU(x) = (SiLU(x W1) * (x W3)) W2: (B, T, d) -> (B, T, d), hidden width ``hidden`` (default 8d/3)."""

    def __init__(self, d: int, hidden: int | None = None, bias: bool = True, dropout: float = 0.0):
        super().__init__()
        h = hidden or swiglu_hidden(d)
        self.w1 = nn.Linear(d, h, bias=bias)    # gate
        self.w3 = nn.Linear(d, h, bias=bias)    # value
        self.w2 = nn.Linear(h, d, bias=bias)    # down projection (writes into the residual stream)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.w2(F.silu(self.w1(x)) * self.w3(x)))


class ReLU2(nn.Module):
    """ReLU^2(x) = relu(x W1)^2 W2 (the feed-forward of the speedrun records): (B, T, d) -> (B, T, d), width mult*d."""

    def __init__(self, d: int, mult: int = 4, bias: bool = True, dropout: float = 0.0):
        super().__init__()
        self.w1 = nn.Linear(d, mult * d, bias=bias)
        self.w2 = nn.Linear(mult * d, d, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.w2(F.relu(self.w1(x)).square()))


def make_norm(c, d: int | None = None) -> nn.Module:
    from .model import LayerNorm

    d = d or c.d_model
    return RMSNorm(d, fast=c.fast) if c.norm == "rmsnorm" else LayerNorm(d, fast=c.fast)


def make_mlp(c) -> nn.Module:
    from .model import FeedForward

    if c.mlp == "swiglu":
        return SwiGLU(c.d_model, bias=c.bias, dropout=c.dropout)
    if c.mlp == "relu2":
        return ReLU2(c.d_model, bias=c.bias, dropout=c.dropout)
    ffn = FeedForward(c.d_model, dropout=c.dropout)
    if not c.bias:
        ffn.w1 = nn.Linear(c.d_model, 4 * c.d_model, bias=False)
        ffn.w2 = nn.Linear(4 * c.d_model, c.d_model, bias=False)
    return ffn


class ModernAttention(nn.Module):
    """Causal attention with the modern options: RoPE, QK-norm, grouped-query heads.

    q = x W_Q: (B, h, T, d_h); k, v = x W_K, x W_V: (B, k, T, d_h) with k = n_kv_heads key/value heads, each
    shared by h / k query heads. forward(x: (B, T, d), cache=None) -> (B, T, d). ``cache`` as in
    MultiHeadAttention: a dict that keeps the (rotated) keys and values of earlier calls.
    """

    def __init__(self, c):
        super().__init__()
        d, h = c.d_model, c.n_heads
        self.n_heads, self.n_kv_heads, self.d_head, self.d_model = h, c.n_kv_heads or h, d // h, d
        self.rope, self.dropout = c.pos == "rope", c.dropout
        self.w_q = nn.Linear(d, d, bias=c.bias)
        self.w_k = nn.Linear(d, self.n_kv_heads * self.d_head, bias=c.bias)
        self.w_v = nn.Linear(d, self.n_kv_heads * self.d_head, bias=c.bias)
        self.w_o = nn.Linear(d, d, bias=c.bias)
        self.q_norm = make_norm(c, self.d_head) if c.qk_norm else None
        self.k_norm = make_norm(c, self.d_head) if c.qk_norm else None

    def forward(self, x: torch.Tensor, causal: bool = True, mask: torch.Tensor | None = None,
                cache: dict | None = None) -> torch.Tensor:
        check_shape(x, ("B", "T", self.d_model), "x (batch, time, d_model)")
        if mask is not None or not causal:
            raise ValueError("the modern attention is causal only (a language model); mask=None, causal=True")
        B, T, _ = x.shape
        q = self.w_q(x).view(B, T, self.n_heads, self.d_head).transpose(1, 2)       # (B, h, T, d_h)
        k = self.w_k(x).view(B, T, self.n_kv_heads, self.d_head).transpose(1, 2)    # (B, k, T, d_h)
        v = self.w_v(x).view(B, T, self.n_kv_heads, self.d_head).transpose(1, 2)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        past = cache["k"].shape[2] if cache is not None and "k" in cache else 0
        if self.rope:
            q, k = apply_rope(q, offset=past), apply_rope(k, offset=past)
        if cache is not None:
            if past:
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        p = self.dropout if self.training else 0.0
        gqa = self.n_kv_heads != self.n_heads
        if past == 0:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True, enable_gqa=gqa)
        else:
            m = None if T == 1 else causal_mask(T, x.device, offset=past)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=m, dropout_p=p, enable_gqa=gqa)
        return self.w_o(out.transpose(1, 2).reshape(B, T, self.d_model))


class ModernBlock(nn.Module):
    """A pre-norm block with the modern options: x + attn(norm1(x)), then x + mlp(norm2(x)). (B, T, d) -> (B, T, d)."""

    residual = True

    def __init__(self, c):
        super().__init__()
        self.ln1 = make_norm(c)
        self.attn = ModernAttention(c)
        self.ln2 = make_norm(c)
        self.ffn = make_mlp(c)
        self.resid_dropout = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, causal: bool = True, mask: torch.Tensor | None = None,
                cache: dict | None = None) -> torch.Tensor:
        x = x + self.resid_dropout(self.attn(self.ln1(x), causal=causal, mask=mask, cache=cache))
        return x + self.ffn(self.ln2(x))


def param_count(c) -> int:
    """Exact parameter count of a MiniGPT with config c (any options), from the formulas of notebook 15."""
    d, V, L = c.d_model, c.vocab_size, c.n_layers
    dh, kv = d // c.n_heads, c.n_kv_heads or c.n_heads
    b = 1 if c.bias else 0
    attn = d * d + 2 * d * kv * dh + d * d + b * (d + 2 * kv * dh + d)
    if c.mlp == "swiglu":
        hdim = swiglu_hidden(d)
        mlp = 3 * d * hdim + b * (2 * hdim + d)
    else:
        mlp = 8 * d * d + b * (4 * d + d)
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
    """
    if not isinstance(G, torch.Tensor) or G.dim() != 2:
        raise ShapeError(f"newton_schulz expects a matrix (m, n), got "
                         f"{tuple(G.shape) if isinstance(G, torch.Tensor) else type(G).__name__}")
    if steps < 0:
        raise ValueError(f"steps should be >= 0, got {steps}")
    a, b, c = coeffs
    X = G.float()
    tall = X.shape[0] > X.shape[1]
    if tall:
        X = X.T
    X = X / (X.norm() + eps)
    for _ in range(steps):
        A = X @ X.T
        X = a * X + (b * A + c * A @ A) @ X
    return X.T if tall else X


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
            lr, wd = g["lr"], g["weight_decay"]
            for p in g["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if g["muon"]:
                    if "momentum" not in state:
                        state["momentum"] = torch.zeros_like(p)
                    m = state["momentum"]
                    m.mul_(g["momentum"]).add_(p.grad)
                    u = newton_schulz(p.grad.add(m, alpha=g["momentum"]), g["ns_steps"])
                    p.mul_(1 - lr * wd)
                    p.add_(u.to(p.dtype), alpha=-lr * max(1.0, p.shape[0] / p.shape[1]) ** 0.5)
                else:
                    b1, b2 = g["betas"]
                    if "step" not in state:
                        state["step"] = torch.zeros(())
                        state["exp_avg"] = torch.zeros_like(p)
                        state["exp_avg_sq"] = torch.zeros_like(p)
                    state["step"] += 1
                    t = state["step"].item()
                    m, v = state["exp_avg"], state["exp_avg_sq"]
                    m.lerp_(p.grad, 1 - b1)
                    v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                    denom = (v / (1 - b2 ** t)).sqrt_().add_(g["eps"])
                    p.mul_(1 - lr * wd)
                    p.addcdiv_(m, denom, value=-lr / (1 - b1 ** t))
        return loss


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
