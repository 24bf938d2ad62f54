"""Weight quantization by hand (notebook 11): symmetric int8 per row, and group-wise int4.

Symmetric quantization with ``bits`` bits keeps integers q in [-(2^(bits-1) - 1), 2^(bits-1) - 1] (int8: -127..127,
int4: -7..7) and one scale per row or per group of ``group_size`` numbers along a row:

    scale = max |w| / q_max,    q = round(w / scale),    w ~ q * scale     (error at most scale / 2 per number)

    quantize(w, bits, group_size)       -> (q (out, in) int8, scales (out, in / group_size) float16)
    dequantize(q, scales)               -> w_hat (out, in) float32
    pack_int4(q) / unpack_int4(p)       -> two 4-bit numbers per byte, and back
    quantize_model(model, bits, ...)    -> a copy of the model with every weight matrix replaced by w_hat, and the
                                           bytes the quantized model takes (packed integers + scales + the rest)
"""

from __future__ import annotations

import copy

import torch

from .errors import ShapeError

__all__ = ["quantize", "dequantize", "pack_int4", "unpack_int4", "quantize_model"]


def _check(w: torch.Tensor, bits: int, group_size: int | None) -> int:
    if not isinstance(w, torch.Tensor) or w.dim() != 2 or not torch.is_floating_point(w):
        got = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
        raise ShapeError(f"w should be a floating-point weight matrix of shape (out, in), got {got}")
    if bits not in (4, 8):
        raise ValueError(f"bits should be 8 or 4, got {bits!r}")
    g = w.shape[1] if group_size is None else group_size
    if isinstance(g, bool) or not isinstance(g, int) or g < 1 or w.shape[1] % g:
        raise ValueError(f"group_size={group_size!r} should be a positive int that divides the row length "
                         f"in={w.shape[1]}")
    return g


def quantize(w: torch.Tensor, bits: int = 8, group_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric quantization of w (out, in): one scale per group of ``group_size`` numbers of a row (None: per
    row). Returns q (out, in) as int8 holding values in [-q_max, q_max], q_max = 2^(bits-1) - 1, and the scales
    (out, in / group_size) as float16. An all-zero group gets scale 1 (its q are 0)."""
    g = _check(w, bits, group_size)
    q_max = 2 ** (bits - 1) - 1
    out, n = w.shape
    groups = w.detach().float().reshape(out, n // g, g)
    scale = groups.abs().amax(-1) / q_max
    scale = torch.where(scale > 0, scale, torch.ones_like(scale)).half()
    q = torch.clamp(torch.round(groups / scale.float()[..., None]), -q_max, q_max).to(torch.int8)
    return q.reshape(out, n), scale


def dequantize(q: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """w_hat = q * scale, each scale repeated over its group: q (out, in), scales (out, groups) -> (out, in)."""
    if q.dim() != 2 or scales.dim() != 2 or scales.shape[0] != q.shape[0] or q.shape[1] % scales.shape[1]:
        raise ShapeError(f"q (out, in) and scales (out, groups) do not fit: {tuple(q.shape)}, {tuple(scales.shape)}")
    g = q.shape[1] // scales.shape[1]
    return (q.float().reshape(q.shape[0], -1, g) * scales.float()[..., None]).reshape(q.shape)


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """Two 4-bit numbers per byte: q (..., n) int8 in [-8, 7], n even -> (..., n / 2) uint8."""
    if q.shape[-1] % 2 or q.dtype != torch.int8:
        raise ValueError(f"pack_int4 needs an int8 tensor with an even last dim, got {q.dtype} {tuple(q.shape)}")
    if q.numel() and (q.min() < -8 or q.max() > 7):
        raise ValueError("pack_int4: values should lie in [-8, 7]")
    u = (q.to(torch.int16) & 0xF).to(torch.uint8)           # two's complement in 4 bits
    return u[..., 0::2] | (u[..., 1::2] << 4)


def unpack_int4(p: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`pack_int4`: (..., m) uint8 -> (..., 2 m) int8."""
    if p.dtype != torch.uint8:
        raise ValueError(f"unpack_int4 needs a uint8 tensor, got {p.dtype}")
    lo, hi = (p & 0xF).to(torch.int16), (p >> 4).to(torch.int16)
    both = torch.stack([lo, hi], dim=-1).reshape(*p.shape[:-1], 2 * p.shape[-1])
    return torch.where(both > 7, both - 16, both).to(torch.int8)


def quantize_model(model: torch.nn.Module, bits: int = 8, group_size: int | None = None
                   ) -> tuple[torch.nn.Module, int]:
    """A copy of ``model`` whose 2-D weights (linear layers and embeddings) are quantized and dequantized again,
    so it runs as usual but computes with the rounded weights; and the bytes the quantized model takes: its
    integers (int8: 1 byte each; int4: packed, half a byte), its float16 scales, and every other tensor (biases,
    norms) as stored. A tied weight is quantized and counted once."""
    new = copy.deepcopy(model)
    total, seen = 0, set()
    for p in new.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        if p.dim() == 2:
            q, s = quantize(p.data, bits, group_size)
            with torch.no_grad():
                p.copy_(dequantize(q, s).to(p.dtype))
            stored = pack_int4(q) if bits == 4 else q
            total += stored.numel() * stored.element_size() + s.numel() * s.element_size()
        else:
            total += p.numel() * p.element_size()
    return new, total
