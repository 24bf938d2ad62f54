"""Looking inside a MiniGPT (notebook 17): record what each block computes, read the residual stream through the
output layer (the logit lens), recompute every head's attention pattern, and switch chosen parts off (ablation).

A pre-norm model is a sum of updates written into one residual stream:

    x_0 = embedding(tokens)
    x_{l+1} = x_l + a_l + f_l       a_l = attn_l(norm1(x_l)),  f_l = ffn_l(norm2(x_l + a_l))
    logits = ln_f(x_L) E^T          the logit lens reads ln_f(x_l) E^T at any l

    with record(model) as rec:      # forward hooks, removed on exit (even after an error)
        logits, _ = model(idx)
    rec.resid[l]                    # x_l: (B, T, d) for l = 0 (the embedding) .. n_layers
    rec.attn[l], rec.ffn[l]         # the updates a_l, f_l: (B, T, d)
    attention_pattern(model, rec, l)   # (B, h, T, T): softmax(q k^T / sqrt(d_h) + causal mask)

    with ablate(model, heads=[(3, 1)], ffn=[5]):   # zero (or mean) those parts during the forward passes inside
        logits, _ = model(idx)

The fused attention (``F.scaled_dot_product_attention``) returns no weights, so the patterns are recomputed from
the recorded input of the attention with the module's own weights: q = x W_Q, k = x W_K (QK-norm and RoPE applied
as the model does), each key/value head shared by n_heads / n_kv_heads query heads (grouped-query attention).
The tests prove pattern @ v equals the heads' outputs the model computed.

This module imports model, layers, positional and errors (below it); nothing in the package imports it except
widgets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .errors import ShapeError, check_shape
from .positional import apply_rope

__all__ = ["Recording", "record", "logit_lens", "attention_pattern", "head_outputs", "Means", "mean_updates",
           "ablate", "previous_token_score", "first_token_score", "duplicate_token_score", "induction_score",
           "check_layer", "check_head", "next_token_logprobs"]


# ---- checks ------------------------------------------------------------------------------------------------------

def _n_layers(model) -> int:
    return len(model.blocks)


def check_layer(model, layer, what: str = "layer") -> int:
    """``layer`` as a block index 0..n_layers-1 (negative counts from the end), or a ValueError naming it."""
    n = _n_layers(model)
    if isinstance(layer, bool) or not isinstance(layer, int) or not -n <= layer < n:
        raise ValueError(f"{what} {layer!r} is not a block of this model: it has {n} blocks, numbered 0..{n - 1}")
    return layer % n


def check_head(model, head, layer: int | None = None) -> int:
    """``head`` as a head index 0..n_heads-1, or a ValueError naming it (and its layer)."""
    h = model.blocks[0].attn.n_heads
    if isinstance(head, bool) or not isinstance(head, int) or not 0 <= head < h:
        where = f" in layer {layer}" if layer is not None else ""
        raise ValueError(f"head {head!r}{where} does not exist: each layer has {h} heads, numbered 0..{h - 1}")
    return head


def _layers(model, layers: Iterable[int] | None, what: str = "layer") -> list[int]:
    if layers is None:
        return list(range(_n_layers(model)))
    if isinstance(layers, int):
        layers = [layers]
    return sorted({check_layer(model, layer, what) for layer in layers})


# ---- recording ---------------------------------------------------------------------------------------------------

@dataclass
class Recording:
    """What one forward pass wrote, per block l (None for a block not recorded).

    resid: n_layers + 1 tensors (B, T, d): resid[0] the embedding x_0, resid[l + 1] the stream after block l.
    attn, ffn: n_layers tensors (B, T, d): the updates a_l and f_l each block adds to the stream.
    attn_in: n_layers tensors (B, T, d): the attention's input norm1(x_l) (for :func:`attention_pattern`).
    z: n_layers tensors (B, T, d): the heads' outputs side by side, before W_O (head i: columns i*d_h..(i+1)*d_h).
    """

    resid: list = field(default_factory=list)
    attn: list = field(default_factory=list)
    ffn: list = field(default_factory=list)
    attn_in: list = field(default_factory=list)
    z: list = field(default_factory=list)

    def stream(self) -> torch.Tensor:
        """All recorded residual streams stacked: (n_layers + 1, B, T, d) (every block must be recorded)."""
        if any(r is None for r in self.resid):
            raise ValueError("some blocks were not recorded (record(model, layers=...)); stack the ones you need")
        return torch.stack(self.resid)


@contextmanager
def record(model, layers: Iterable[int] | None = None, cpu: bool = False) -> Iterator[Recording]:
    """Record the residual stream, both updates, the attention's input and the heads' outputs of every block
    (or of ``layers``) during the forward passes inside the ``with``; the last pass wins. ``cpu=True`` keeps
    the copies in main memory. The hooks are removed on exit, even when the body raises."""
    chosen = _layers(model, layers)
    n = _n_layers(model)
    rec = Recording(resid=[None] * (n + 1), attn=[None] * n, ffn=[None] * n, attn_in=[None] * n, z=[None] * n)

    def keep(t: torch.Tensor) -> torch.Tensor:
        t = t.detach()
        return t.cpu() if cpu else t

    def store(lst, i):
        def hook(_module, _inputs, output):
            lst[i] = keep(output)
        return hook

    def store_input(lst, i):
        def hook(_module, inputs):
            lst[i] = keep(inputs[0])
        return hook

    handles = []
    try:
        if 0 in chosen:
            handles.append(model.blocks[0].register_forward_pre_hook(store_input(rec.resid, 0)))
        for i in chosen:
            block = model.blocks[i]
            handles.append(block.register_forward_hook(store(rec.resid, i + 1)))
            handles.append(block.attn.register_forward_hook(store(rec.attn, i)))
            handles.append(block.ffn.register_forward_hook(store(rec.ffn, i)))
            handles.append(block.attn.register_forward_pre_hook(store_input(rec.attn_in, i)))
            handles.append(block.attn.w_o.register_forward_pre_hook(store_input(rec.z, i)))
        yield rec
    finally:
        for h in handles:
            h.remove()


# ---- the logit lens ----------------------------------------------------------------------------------------------

def logit_lens(model, resid: torch.Tensor) -> torch.Tensor:
    """The model's output layer applied to a residual stream x_l: ln_f(x_l) E^T (or W_out).

    resid: (..., d) -> logits (..., vocab_size). Applied to the stream after the last block it gives exactly
    the model's logits."""
    d = model.config.d_model
    if not isinstance(resid, torch.Tensor) or resid.dim() < 1 or resid.shape[-1] != d:
        got = tuple(resid.shape) if isinstance(resid, torch.Tensor) else type(resid).__name__
        raise ShapeError(f"resid should be a residual stream of shape (..., d_model={d}), got {got}")
    h = model.ln_f(resid)
    return h @ model.tok_emb.weight.T if model.lm_head is None else model.lm_head(h)


# ---- attention patterns --------------------------------------------------------------------------------------------

def _qkv(attn, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q (B, h, T, d_h), k and v (B, h, T, d_h) of an attention module for its input x, as its forward makes them
    (QK-norm, RoPE; key/value heads repeated for grouped-query attention)."""
    B, T, _ = x.shape
    h, d_h = attn.n_heads, attn.d_head
    kv = getattr(attn, "n_kv_heads", h)
    q = attn.w_q(x).view(B, T, h, d_h).transpose(1, 2)
    k = attn.w_k(x).view(B, T, kv, d_h).transpose(1, 2)
    v = attn.w_v(x).view(B, T, kv, d_h).transpose(1, 2)
    if getattr(attn, "q_norm", None) is not None:
        q, k = attn.q_norm(q), attn.k_norm(k)
    if getattr(attn, "rope", False):
        q = apply_rope(q, base=attn.rope_base)
        k = apply_rope(k, base=attn.rope_base)
    if kv != h:                                   # query head i reads key/value head i // (h / kv)
        k = k.repeat_interleave(h // kv, dim=1)
        v = v.repeat_interleave(h // kv, dim=1)
    return q, k, v


def _attn_input(model, rec: Recording, layer: int) -> torch.Tensor:
    layer = check_layer(model, layer)
    x = rec.attn_in[layer]
    if x is None:
        raise ValueError(f"layer {layer} was not recorded: record(model, layers=...) must include it")
    return x.to(model.tok_emb.weight.device)


@torch.no_grad()
def attention_pattern(model, rec: Recording, layer: int) -> torch.Tensor:
    """Every head's attention weights in block ``layer`` for the recorded pass: (B, n_heads, T, T).

    A = softmax(q k^T / sqrt(d_h) + causal mask): row i says how much position i reads from each j <= i."""
    attn = model.blocks[check_layer(model, layer)].attn
    q, k, _ = _qkv(attn, _attn_input(model, rec, layer))
    T = q.shape[2]
    scores = q @ k.transpose(-2, -1) / math.sqrt(attn.d_head)
    future = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)
    return torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)


@torch.no_grad()
def head_outputs(model, rec: Recording, layer: int, pattern: torch.Tensor | None = None) -> torch.Tensor:
    """pattern @ v for every head of block ``layer``, heads side by side: (B, T, d), the input of W_O
    (compare with ``rec.z[layer]``). ``pattern`` defaults to :func:`attention_pattern`."""
    attn = model.blocks[check_layer(model, layer)].attn
    _, _, v = _qkv(attn, _attn_input(model, rec, layer))
    if pattern is None:
        pattern = attention_pattern(model, rec, layer)
    B, h, T, d_h = v.shape
    check_shape(pattern, (B, h, T, T), "pattern (batch, heads, T, T)")
    return (pattern @ v).transpose(1, 2).reshape(B, T, h * d_h)


# ---- head scores ---------------------------------------------------------------------------------------------------

def _check_pattern(pattern: torch.Tensor) -> int:
    if not isinstance(pattern, torch.Tensor) or pattern.dim() < 2 or pattern.shape[-1] != pattern.shape[-2]:
        got = tuple(pattern.shape) if isinstance(pattern, torch.Tensor) else type(pattern).__name__
        raise ShapeError(f"pattern should have shape (..., T, T) (attention weights), got {got}")
    return pattern.shape[-1]


def previous_token_score(pattern: torch.Tensor) -> torch.Tensor:
    """Mean weight from each position i >= 1 to i - 1: pattern (..., T, T) -> (...)."""
    T = _check_pattern(pattern)
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1) if T > 1 else pattern.new_zeros(pattern.shape[:-2])


def first_token_score(pattern: torch.Tensor, start: int = 1) -> torch.Tensor:
    """Mean weight on position 0 (the "attention sink") from positions ``start``..T-1: (..., T, T) -> (...)."""
    T = _check_pattern(pattern)
    if not 0 <= start < T:
        raise ValueError(f"start={start} should be a position 0..{T - 1}")
    return pattern[..., start:, 0].mean(-1)


def _check_period(T: int, period: int, offset: int) -> None:
    if isinstance(period, bool) or not isinstance(period, int) or period < 1 or offset < 0 or offset + 2 * period > T:
        raise ValueError(f"a repeated sequence of period {period!r} starting at position {offset} needs "
                         f"{offset} + 2 x {period} <= T = {T} positions")


def duplicate_token_score(pattern: torch.Tensor, period: int, offset: int = 0) -> torch.Tensor:
    """For a sequence whose tokens offset..offset+period-1 repeat right after: the mean weight from each token of
    the second copy (position i) to the same token in the first copy (i - period). (..., T, T) -> (...)."""
    T = _check_pattern(pattern)
    _check_period(T, period, offset)
    i = torch.arange(offset + period, offset + 2 * period, device=pattern.device)
    return pattern[..., i, i - period].mean(-1)


def induction_score(pattern: torch.Tensor, period: int, offset: int = 0) -> torch.Tensor:
    """For a repeated sequence (as in :func:`duplicate_token_score`): the mean weight from each token of the
    second copy (position i) to the token that came AFTER its first copy (i - period + 1): what an induction head
    reads to predict the next token. (..., T, T) -> (...)."""
    T = _check_pattern(pattern)
    _check_period(T, period, offset)
    i = torch.arange(offset + period, offset + 2 * period, device=pattern.device)
    return pattern[..., i, i - period + 1].mean(-1)


# ---- ablations -----------------------------------------------------------------------------------------------------

@dataclass
class Means:
    """Mean values over a reference batch (all batch rows and positions), per block: z, attn, ffn (n_layers, d)."""

    z: torch.Tensor
    attn: torch.Tensor
    ffn: torch.Tensor


@torch.no_grad()
def mean_updates(model, idx: torch.Tensor) -> Means:
    """The mean heads' outputs z_l and updates a_l, f_l of every block over the tokens of idx (B, T): for
    mean ablation, which replaces a part by its typical value instead of zero."""
    with record(model) as rec:
        model(idx)
    mean = lambda xs: torch.stack([x.mean(dim=(0, 1)) for x in xs])   # noqa: E731
    return Means(z=mean(rec.z), attn=mean(rec.attn), ffn=mean(rec.ffn))


def _heads_by_layer(model, heads: Iterable[Sequence[int]]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for pair in heads:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"heads should be (layer, head) pairs, got {pair!r}")
        layer = check_layer(model, pair[0])
        out.setdefault(layer, []).append(check_head(model, pair[1], layer))
    return out


@contextmanager
def ablate(model, heads: Iterable[Sequence[int]] = (), attn: Iterable[int] = (), ffn: Iterable[int] = (),
           mode: str = "zero", means: Means | None = None) -> Iterator[None]:
    """Switch parts of the model off during the forward passes inside the ``with``.

    heads: (layer, head) pairs: that head's slice of the input of W_O is set to zero (or its mean);
    attn: layers whose attention update a_l is zero (or its mean); ffn: layers whose feed-forward update f_l is.
    mode: "zero", or "mean" with ``means`` from :func:`mean_updates`. The hooks are removed on exit."""
    if mode not in ("zero", "mean"):
        raise ValueError(f"mode should be 'zero' or 'mean', got {mode!r}")
    if mode == "mean" and not isinstance(means, Means):
        raise ValueError("mode='mean' needs means=mean_updates(model, reference_tokens)")
    by_layer = _heads_by_layer(model, heads)
    attn_layers, ffn_layers = _layers(model, attn, "attn layer"), _layers(model, ffn, "ffn layer")
    d_h = model.blocks[0].attn.d_head

    def heads_hook(layer, hs):
        def hook(_module, inputs):
            z = inputs[0].clone()
            for h in hs:
                cols = slice(h * d_h, (h + 1) * d_h)
                z[..., cols] = 0.0 if mode == "zero" else means.z[layer, cols].to(z)
            return (z, *inputs[1:])
        return hook

    def update_hook(layer, table):
        def hook(_module, _inputs, output):
            if mode == "zero":
                return torch.zeros_like(output)
            return table[layer].to(output).expand_as(output).clone()
        return hook

    handles = []
    try:
        for layer, hs in by_layer.items():
            handles.append(model.blocks[layer].attn.w_o.register_forward_pre_hook(heads_hook(layer, hs)))
        for layer in attn_layers:
            handles.append(model.blocks[layer].attn.register_forward_hook(
                update_hook(layer, means.attn if mode == "mean" else None)))
        for layer in ffn_layers:
            handles.append(model.blocks[layer].ffn.register_forward_hook(
                update_hook(layer, means.ffn if mode == "mean" else None)))
        yield
    finally:
        for h in handles:
            h.remove()


def next_token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log P(target) at each position: logits (B, T, V), targets (B, T) -> (B, T)."""
    check_shape(targets, tuple(logits.shape[:-1]), "targets (batch, time)")
    return F.log_softmax(logits.float(), dim=-1).gather(-1, targets[..., None]).squeeze(-1)
