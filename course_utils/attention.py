"""Attention, built by hand: softmax, scaled dot-product attention, masks and multi-head attention.

These are the reference implementations of notebooks 03-05; the mini-GPT (``course_utils.model``) is built from
them. Each one is tested equal to PyTorch's own (``F.softmax``, ``F.scaled_dot_product_attention``,
``nn.MultiheadAttention``).

Mask convention (the same as PyTorch's boolean masks): ``True`` means "may attend", ``False`` means "blocked".
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import ShapeError, check_shape


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Numerically stable softmax: exp(x - max) / sum exp(x - max) along ``dim``. Any shape in, same shape out.

    Subtracting the maximum changes nothing mathematically but keeps exp() from overflowing. Entries equal
    to -inf get weight 0; a slice that is entirely -inf gives NaN, as torch.softmax does.
    """
    x_max = x.amax(dim=dim, keepdim=True)
    x_max = torch.where(torch.isfinite(x_max), x_max, torch.zeros_like(x_max))
    e = torch.exp(x - x_max)
    return e / e.sum(dim=dim, keepdim=True)


def causal_mask(T: int, device: torch.device | str | None = None, offset: int = 0) -> torch.Tensor:
    """Boolean (T, T + offset) mask, True where query i may look at key j, i.e. j <= i + offset.

    ``offset`` is the number of earlier keys already cached (generation with a key-value cache).
    """
    if T < 1 or offset < 0:
        raise ValueError(f"causal_mask needs T >= 1 and offset >= 0, got T={T}, offset={offset}")
    return torch.ones(T, T + offset, dtype=torch.bool, device=device).tril(diagonal=offset)


def padding_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """Boolean (B, T) mask, True at real tokens and False at padding, from each sequence's length (B,)."""
    lengths = torch.as_tensor(lengths)
    check_shape(lengths, ("B",), "lengths")
    if (lengths < 0).any() or (lengths > T).any():
        raise ValueError(f"every length must be between 0 and T={T}, got {lengths.tolist()}")
    return torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
              scale: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T / sqrt(d) + masked) v.

    q: (..., T_q, d), k: (..., T_k, d), v: (..., T_k, d_v); leading dims (batch, heads) must match.
    mask: boolean, broadcastable to (..., T_q, T_k); True = may attend.
    Returns (out, weights): out (..., T_q, d_v) and the attention weights (..., T_q, T_k), rows summing to 1.
    """
    if q.dim() < 2 or k.dim() != q.dim() or v.dim() != q.dim():
        raise ShapeError(f"q, k, v should all be (..., T, d) with the same number of dims; got "
                         f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ShapeError(f"q and k need the same last dim d: q is (..., T_q, {q.shape[-1]}), "
                         f"k is (..., T_k, {k.shape[-1]})")
    if k.shape[-2] != v.shape[-2]:
        raise ShapeError(f"k and v need the same number of positions T_k: k {tuple(k.shape)}, v {tuple(v.shape)}")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale                      # (..., T_q, T_k)
    if mask is not None:
        if mask.dtype != torch.bool:
            raise TypeError("mask should be a boolean tensor (True = may attend)")
        try:
            scores = scores.masked_fill(~mask, float("-inf"))
        except RuntimeError:
            raise ShapeError(f"mask of shape {tuple(mask.shape)} does not broadcast to the scores' shape "
                             f"(..., T_q, T_k) = {tuple(scores.shape)}") from None
    weights = softmax(scores, dim=-1)
    return weights @ v, weights


class MultiHeadAttention(nn.Module):
    """h heads of attention side by side, each of size d_head = d_model / h, then an output projection.

    MultiHead(x) = concat(head_1, ..., head_h) W_O,  head_i = attention(x W_Q^i, x W_K^i, x W_V^i).
    The four projections are ``w_q, w_k, w_v, w_o`` (each d_model x d_model): 4 d^2 weights (+ 4 d biases).

    forward(x: (B, T, d_model), mask=None, causal=False, cache=None) -> (B, T, d_model).
    ``fast=True`` computes the same function with ``F.scaled_dot_product_attention`` (proven equal in
    notebook 03); the hand-built path runs when ``fast=False`` or when the weights are asked for.
    After a call with ``keep_weights=True`` the weights are in ``self.last_weights`` (B, h, T, T_k).
    """

    def __init__(self, d_model: int, n_heads: int, bias: bool = True, dropout: float = 0.0, fast: bool = False):
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.w_q = nn.Linear(d_model, d_model, bias=bias)
        self.w_k = nn.Linear(d_model, d_model, bias=bias)
        self.w_v = nn.Linear(d_model, d_model, bias=bias)
        self.w_o = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = dropout
        self.fast = fast
        self.keep_weights = False
        self.last_weights: torch.Tensor | None = None

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, d_model) -> (B, h, T, d_head)."""
        B, T, _ = x.shape
        return x.view(B, T, self.n_heads, self.d_head).transpose(1, 2)

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, h, T, d_head) -> (B, T, d_model)."""
        B, _, T, _ = x.shape
        return x.transpose(1, 2).contiguous().view(B, T, self.d_model)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, causal: bool = False,
                cache: dict | None = None) -> torch.Tensor:
        """x: (B, T, d_model). mask: boolean, broadcastable to (B, h, T, T_k). causal: add the causal mask.

        cache: a dict holding this layer's keys and values from earlier calls ('k', 'v': (B, h, T_past, d_head));
        the new ones are appended to it, so generation need not recompute the past.
        """
        check_shape(x, ("B", "T", self.d_model), "x (batch, time, d_model)")
        q, k, v = self.split_heads(self.w_q(x)), self.split_heads(self.w_k(x)), self.split_heads(self.w_v(x))
        past = 0
        if cache is not None:
            if "k" in cache:
                past = cache["k"].shape[2]
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        T = x.shape[1]
        plain_causal = causal and mask is None and past == 0   # the fused kernel can build this mask itself
        # One new query (a generation step with a cache) may look at every key: the causal mask is all True,
        # so it is not built at all (this keeps each cached step cheap).
        single_query = causal and mask is None and T == 1
        if causal and not single_query:
            cm = causal_mask(T, x.device, offset=past)
            mask = cm if mask is None else (mask & cm)
        p = self.dropout if self.training else 0.0
        if self.fast and not self.keep_weights:
            if plain_causal:
                out = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
            else:
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        else:
            out, weights = attention(q, k, v, mask)
            if p > 0:
                out = F.dropout(weights, p) @ v
            if self.keep_weights:
                self.last_weights = weights.detach()
        return self.w_o(self.merge_heads(out))


def head_loop(mha: MultiHeadAttention, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``mha(x, mask=mask)`` computed one head at a time: x (B, T, d_model) -> (B, T, d_model).

    Head i uses rows i*d_head..(i+1)*d_head of W_Q, W_K, W_V; the head outputs are concatenated, then W_O.
    The same numbers as the batched forward (tested); notebook 05 and ``make bench`` compare their speed.
    """
    check_shape(x, ("B", "T", mha.d_model), "x (batch, time, d_model)")
    dh, outs = mha.d_head, []
    for i in range(mha.n_heads):
        rows = slice(i * dh, (i + 1) * dh)
        q, k, v = (F.linear(x, w.weight[rows], None if w.bias is None else w.bias[rows])
                   for w in (mha.w_q, mha.w_k, mha.w_v))
        outs.append(attention(q, k, v, mask)[0])
    return mha.w_o(torch.cat(outs, dim=-1))
