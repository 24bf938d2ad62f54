"""The building blocks of every decoder the course builds (notebooks 07 and 15): norms, feed-forward layers,
attention with today's options, and the transformer blocks made of them.

    LayerNorm(x) = (x - mean) / sqrt(var + eps) * gamma + beta        (GPT-2; notebook 07)
    RMSNorm(x)   = x / sqrt(mean(x^2) + eps) * g                      (Llama; notebook 15)
    FeedForward  = GELU(x W1 + b1) W2 + b2, hidden 4d                 (GPT-2)
    SwiGLU       = (SiLU(x W1) * (x W3)) W2, hidden 8d/3 by default   (Llama: W1 gate, W3 up, W2 down)
    ReLU2        = relu(x W1)^2 W2, hidden 4d

    Block         pre-norm: x + attn(ln1(x)), then x + ffn(ln2(x))   (MultiHeadAttention, LayerNorm, FeedForward)
    PostNormBlock the 2017 order: LN1(x + attn(x)), then LN2(h + ffn(h))
    ModernBlock   the pre-norm block with the options of a GPTConfig (make_norm, ModernAttention, make_mlp)

``course_utils.model`` assembles MiniGPT from these blocks; ``course_utils.modern`` holds the training-side options.
This module imports only attention, positional and errors (the modules below it), never model or modern: a config
``c`` is any object with GPTConfig's fields.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import MultiHeadAttention, causal_mask
from .errors import ShapeError, check_shape
from .positional import DEFAULT_BASE, apply_rope

LAYERNORM_EPS = 1e-5   # nn.LayerNorm's default, and GPT-2's
RMSNORM_EPS = 1e-6     # the course's RMSNorm default (notebook 15); Llama-family models publish their own


# ---- norms ------------------------------------------------------------------------------------------------------

class LayerNorm(nn.Module):
    """y = (x - mean) / sqrt(var + eps) * gamma + beta over the last dim (biased variance, as nn.LayerNorm)."""

    def __init__(self, d: int, eps: float = LAYERNORM_EPS, fast: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))   # gamma
        self.bias = nn.Parameter(torch.zeros(d))    # beta
        self.eps = eps
        self.fast = fast   # same function through PyTorch's fused kernel (faster training on a CPU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.weight.shape[0]:
            raise ShapeError(f"LayerNorm expects (..., {self.weight.shape[0]}), got {tuple(x.shape)}")
        if self.fast:
            return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, self.eps)
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class _RMSNormCPU(torch.autograd.Function):
    """RMSNorm with its derivative written out, for float32/float64 tensors on a CPU. The same function as
    ``F.rms_norm`` (tested equal, values and gradients), which on a CPU runs as a chain of small operations (square,
    mean, rsqrt, two products) that autograd then differentiates one by one: this version makes fewer passes over
    the activations and takes about half the time.

    With r = 1 / sqrt(mean(x^2) + eps) per row, x_hat = x r and y = x_hat * g:
        dL/dg = sum over rows of dy * x_hat
        dL/dx = r * (dy * g - x_hat * mean(dy * g * x_hat))      (the second term: r depends on x too)
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        d = x.shape[-1]
        rstd = torch.linalg.vector_norm(x, dim=-1, keepdim=True).square_().div_(d).add_(eps).rsqrt_()   # (..., 1)
        ctx.save_for_backward(x, rstd, weight)
        return torch.mul(x, rstd).mul_(weight)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x, rstd, weight = ctx.saved_tensors
        d = x.shape[-1]
        x_hat = x * rstd
        dy_x_hat = dy * x_hat                                            # (..., d)
        dweight = dy_x_hat.sum(dim=tuple(range(x.dim() - 1)))           # over every row, whatever the layout
        mean_term = (dy_x_hat @ weight).unsqueeze(-1).div_(d)            # mean(dy * g * x_hat) per row: (..., 1)
        dx = torch.addcmul(dy * weight, x_hat, mean_term, value=-1).mul_(rstd)
        return dx, dweight, None


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm of x (..., d) with gain ``weight`` (d,): ``F.rms_norm``'s function; on a CPU (float32/float64) through
    :class:`_RMSNormCPU`, elsewhere (a GPU, half precision) through PyTorch's own kernel."""
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and weight.dtype == x.dtype:
        return _RMSNormCPU.apply(x, weight, eps)
    return F.rms_norm(x, (x.shape[-1],), weight, eps)


class RMSNorm(nn.Module):
    """RMSNorm(x) = x / sqrt(mean(x^2) + eps) * g over the last dim: (..., d) -> (..., d). Same as nn.RMSNorm."""

    def __init__(self, d: int, eps: float = RMSNORM_EPS, fast: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))   # g
        self.eps = eps
        self.fast = fast   # the same function with its derivative written out (:func:`rms_norm`): faster training

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.weight.shape[0]:
            raise ShapeError(f"RMSNorm expects (..., {self.weight.shape[0]}), got {tuple(x.shape)}")
        if self.fast:
            return rms_norm(x, self.weight, self.eps)
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight


# ---- feed-forward layers ----------------------------------------------------------------------------------------

class FeedForward(nn.Module):
    """FFN(x) = GELU(x W1 + b1) W2 + b2 applied at every position: (B, T, d) -> (B, T, d).

    Hidden width ``hidden`` if given, else ``mult * d`` (4 d by default)."""

    def __init__(self, d: int, mult: int = 4, dropout: float = 0.0, hidden: int | None = None):
        super().__init__()
        h = hidden or mult * d
        self.w1 = nn.Linear(d, h)
        self.w2 = nn.Linear(h, d)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.w2(F.gelu(self.w1(x))))


def swiglu_hidden(d: int, mult: int = 4) -> int:
    """Hidden width of a SwiGLU layer with the weights of a GELU layer of width mult*d: 3 d h = 2 mult d^2."""
    return round(2 * mult * d / 3)


class SwiGLU(nn.Module):
    """SwiGLU(x) = (SiLU(x W1) * (x W3)) W2: (B, T, d) -> (B, T, d), hidden width ``hidden`` (default 8d/3)."""

    def __init__(self, d: int, hidden: int | None = None, bias: bool = True, dropout: float = 0.0):
        super().__init__()
        h = hidden or swiglu_hidden(d)
        self.w1 = nn.Linear(d, h, bias=bias)    # gate
        self.w3 = nn.Linear(d, h, bias=bias)    # value ("up")
        self.w2 = nn.Linear(h, d, bias=bias)    # down projection (writes into the residual stream)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.w2(F.silu(self.w1(x)) * self.w3(x)))


class _ReLUSquared(torch.autograd.Function):
    """y = relu(h)^2 with its derivative written out: dy/dh = 2 relu(h). The same function as
    ``F.relu(h).square()`` (tested equal, values and gradients); autograd's version runs the ReLU's and the
    square's backward one after the other and allocates a new tensor at each, this one allocates one tensor each
    way and works in place on it (on a CPU a fresh activation-sized tensor costs more than the arithmetic)."""

    @staticmethod
    def forward(ctx, h: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(h)
        return torch.relu(h).square_()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (h,) = ctx.saved_tensors
        return torch.relu(h).mul_(grad).mul_(2)


def relu_squared(h: torch.Tensor) -> torch.Tensor:
    """relu(h)^2 elementwise, any shape (the activation of :class:`ReLU2`)."""
    return _ReLUSquared.apply(h)


class ReLU2(nn.Module):
    """ReLU^2(x) = relu(x W1)^2 W2 (the feed-forward of the speedrun records): (B, T, d) -> (B, T, d).

    Hidden width ``hidden`` if given, else ``mult * d``."""

    def __init__(self, d: int, mult: int = 4, bias: bool = True, dropout: float = 0.0, hidden: int | None = None):
        super().__init__()
        h = hidden or mult * d
        self.w1 = nn.Linear(d, h, bias=bias)
        self.w2 = nn.Linear(h, d, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.w2(relu_squared(self.w1(x))))


def ffn_width(c) -> int:
    """The feed-forward hidden width of config c: ``c.ffn_hidden`` if set, else 8d/3 (SwiGLU) or 4d."""
    if getattr(c, "ffn_hidden", None) is not None:
        return c.ffn_hidden
    return swiglu_hidden(c.d_model) if c.mlp == "swiglu" else 4 * c.d_model


def make_norm(c, d: int | None = None) -> nn.Module:
    """The norm of config c over width d (default d_model): RMSNorm or LayerNorm, eps = ``c.norm_eps`` if set."""
    d = d or c.d_model
    eps = getattr(c, "norm_eps", None)
    if c.norm == "rmsnorm":
        return RMSNorm(d, fast=c.fast) if eps is None else RMSNorm(d, eps=eps, fast=c.fast)
    return LayerNorm(d, fast=c.fast) if eps is None else LayerNorm(d, eps=eps, fast=c.fast)


def make_mlp(c) -> nn.Module:
    """The feed-forward layer of config c (``c.mlp``: gelu / swiglu / relu2), width :func:`ffn_width`."""
    h = ffn_width(c)
    if c.mlp == "swiglu":
        return SwiGLU(c.d_model, hidden=h, bias=c.bias, dropout=c.dropout)
    if c.mlp == "relu2":
        return ReLU2(c.d_model, bias=c.bias, dropout=c.dropout, hidden=h)
    ffn = FeedForward(c.d_model, dropout=c.dropout, hidden=h)
    if not c.bias:   # replaced after construction (as ever): the random stream, hence the initial weights, stay put
        ffn.w1 = nn.Linear(c.d_model, h, bias=False)
        ffn.w2 = nn.Linear(h, c.d_model, bias=False)
    return ffn


# ---- attention with today's options -------------------------------------------------------------------------------

class ModernAttention(nn.Module):
    """Causal attention with the modern options: RoPE, QK-norm, grouped-query heads.

    q = x W_Q: (B, h, T, d_h); k, v = x W_K, x W_V: (B, k, T, d_h) with k = n_kv_heads key/value heads, each
    shared by h / k query heads. forward(x: (B, T, d), cache=None) -> (B, T, d). ``cache`` as in
    MultiHeadAttention: a dict that keeps the (rotated) keys and values of earlier calls. RoPE's base is
    ``c.rope_base`` (10,000 unless the config says otherwise).
    """

    def __init__(self, c):
        super().__init__()
        d, h = c.d_model, c.n_heads
        self.n_heads, self.n_kv_heads, self.d_head, self.d_model = h, c.n_kv_heads or h, d // h, d
        self.rope, self.dropout = c.pos == "rope", c.dropout
        self.rope_base = float(getattr(c, "rope_base", DEFAULT_BASE))
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
        q = self.w_q(x).view(B, T, self.n_heads, self.d_head)        # (B, T, h, d_h)
        k = self.w_k(x).view(B, T, self.n_kv_heads, self.d_head)     # (B, T, k, d_h)
        v = self.w_v(x).view(B, T, self.n_kv_heads, self.d_head)
        # Under bf16 autocast on a CPU only the projections run in bf16: QK-norm, RoPE and attention run in fp32,
        # because the CPU's bf16 attention kernel is slower than its fp32 one (its backward 4.5 times, torch 2.13).
        cpu_bf16 = x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
        if cpu_bf16:
            q, k, v = q.float(), k.float(), v.float()
        if self.q_norm is not None:      # each head's vector on its own; normed here while the memory is contiguous
            q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)   # (B, h, T, d_h), (B, k, T, d_h) x 2
        past = cache["k"].shape[2] if cache is not None and "k" in cache else 0
        if self.rope:
            q = apply_rope(q, base=self.rope_base, offset=past)
            k = apply_rope(k, base=self.rope_base, offset=past)
        if cache is not None:
            if past:
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        p = self.dropout if self.training else 0.0
        gqa = self.n_kv_heads != self.n_heads
        m = None if past == 0 or T == 1 else causal_mask(T, x.device, offset=past)
        with torch.autocast("cpu", enabled=False) if cpu_bf16 else contextlib.nullcontext():
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=m, dropout_p=p, is_causal=past == 0,
                                                 enable_gqa=gqa)
        return self.w_o(out.transpose(1, 2).reshape(B, T, self.d_model))


# ---- blocks -------------------------------------------------------------------------------------------------------

class Block(nn.Module):
    """A pre-norm transformer block: x + attn(ln1(x)), then x + ffn(ln2(x)). (B, T, d) -> (B, T, d).

    ``residual=False`` and ``norm=False`` exist for notebook 07's experiments on deep stacks.
    """

    def __init__(self, d: int, n_heads: int, dropout: float = 0.0, fast: bool = False,
                 residual: bool = True, norm: bool = True):
        super().__init__()
        self.ln1 = LayerNorm(d, fast=fast) if norm else nn.Identity()
        self.attn = MultiHeadAttention(d, n_heads, dropout=dropout, fast=fast)
        self.ln2 = LayerNorm(d, fast=fast) if norm else nn.Identity()
        self.ffn = FeedForward(d, dropout=dropout)
        self.resid_dropout = nn.Dropout(dropout)
        self.residual = residual

    def forward(self, x: torch.Tensor, causal: bool = True, mask: torch.Tensor | None = None,
                cache: dict | None = None) -> torch.Tensor:
        a = self.resid_dropout(self.attn(self.ln1(x), mask=mask, causal=causal, cache=cache))
        x = x + a if self.residual else a
        f = self.ffn(self.ln2(x))
        return x + f if self.residual else f


class PostNormBlock(nn.Module):
    """The post-norm block of the 2017 transformer: h = LN1(x + attn(x)), then LN2(h + ffn(h)). (B, T, d) -> (B, T, d).

    For notebook 07's comparison with the pre-norm :class:`Block` (same parameters, same count); not used by MiniGPT.
    """

    def __init__(self, d: int, n_heads: int):
        super().__init__()
        self.attn, self.ln1 = MultiHeadAttention(d, n_heads), LayerNorm(d)
        self.ffn, self.ln2 = FeedForward(d), LayerNorm(d)

    def forward(self, x: torch.Tensor, causal: bool = True) -> torch.Tensor:
        h = self.ln1(x + self.attn(x, causal=causal))
        return self.ln2(h + self.ffn(h))


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
