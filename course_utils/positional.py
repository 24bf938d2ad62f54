"""Telling attention where each token is: sinusoidal encodings, learned position embeddings, rotary embeddings.

Attention on its own treats a sentence as a bag of vectors: permute the tokens and the outputs are permuted the
same way. These are the reference implementations of notebook 06, which builds each one by hand first.

* :func:`sinusoidal_encoding` -- the fixed table of "Attention Is All You Need": (T, d), added to the embeddings.
* :class:`LearnedPositionalEmbedding` -- one trainable vector per position (as in GPT-2), added to the embeddings.
* :func:`rope_frequencies`, :func:`rope_angles`, :func:`apply_rope` -- rotary embeddings (RoPE): queries and keys
  are rotated by an angle proportional to their position, so that q_m . k_n depends only on m - n.

Pair convention for RoPE: coordinates (0, 1), (2, 3), ... form the 2-D planes that are rotated (the layout of the
RoFormer paper). Some libraries pair coordinate i with i + d/2 instead ("rotate half"); the two differ only by a
fixed permutation of the coordinates and have the same properties.
"""

from __future__ import annotations

import functools

import torch
import torch.nn as nn

from .errors import ShapeError, check_shape

DEFAULT_BASE = 10000.0


def _check_positive_int(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def sinusoidal_encoding(T: int, d: int, base: float = DEFAULT_BASE, dtype: torch.dtype = torch.float32,
                        device: torch.device | str | None = None) -> torch.Tensor:
    """The sinusoidal position table, shape (T, d): row p is the encoding of position p = 0, 1, ..., T - 1.

        PE[p, 2i]     = sin(p / base^(2i / d))
        PE[p, 2i + 1] = cos(p / base^(2i / d))

    Column pair i oscillates with angular frequency omega_i = base^(-2i/d): from 1 radian per position (i = 0)
    down to nearly 1/base. An odd ``d`` keeps the sine of the last pair and drops its cosine.
    """
    _check_positive_int(T, "T (the number of positions)")
    _check_positive_int(d, "d (the embedding size)")
    if base <= 1:
        raise ValueError(f"base must be greater than 1, got {base!r}")
    n_pairs = (d + 1) // 2
    angles = rope_angles(T, 2 * n_pairs, base=base)                        # (T, n_pairs), float64
    pe = torch.stack([angles.sin(), angles.cos()], dim=-1).reshape(T, 2 * n_pairs)[:, :d]
    return pe.to(dtype=dtype, device=device)


class LearnedPositionalEmbedding(nn.Module):
    """One trainable vector per position, added to the token embeddings (the way GPT-2 does it).

    forward(x: (B, T, d_model)) -> (B, T, d_model) = x + P[0:T], with P the (max_len, d_model) weight table.
    ``positions(T)`` returns the table's first T rows, (T, d_model). It knows only the positions it was
    built for: T > max_len is an error (unlike the sinusoidal table, which extends to any length).
    """

    def __init__(self, max_len: int, d_model: int, init_std: float = 0.02):
        super().__init__()
        _check_positive_int(max_len, "max_len")
        _check_positive_int(d_model, "d_model")
        self.max_len, self.d_model = max_len, d_model
        self.embedding = nn.Embedding(max_len, d_model)
        nn.init.normal_(self.embedding.weight, mean=0.0, std=init_std)

    def positions(self, T: int, offset: int = 0) -> torch.Tensor:
        """The vectors of positions offset, ..., offset + T - 1: shape (T, d_model)."""
        _check_positive_int(T, "T")
        if offset < 0 or offset + T > self.max_len:
            raise ValueError(f"positions {offset}..{offset + T - 1} asked for, but this embedding only has "
                             f"max_len={self.max_len} positions (0..{self.max_len - 1})")
        idx = torch.arange(offset, offset + T, device=self.embedding.weight.device)
        return self.embedding(idx)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """x: (B, T, d_model) token embeddings -> x + position vectors, (B, T, d_model)."""
        check_shape(x, ("B", "T", self.d_model), "x (batch, time, d_model)")
        return x + self.positions(x.shape[1], offset)


def rope_frequencies(d: int, base: float = DEFAULT_BASE) -> torch.Tensor:
    """The d/2 angular frequencies of rotary (and sinusoidal) embeddings: theta_i = base^(-2i/d), float64 (d/2,)."""
    _check_positive_int(d, "d")
    if d % 2:
        raise ValueError(f"rotary embeddings rotate pairs of coordinates, so d must be even, got d={d}")
    if base <= 1:
        raise ValueError(f"base must be greater than 1, got {base!r}")
    return base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)


def rope_angles(T: int, d: int, base: float = DEFAULT_BASE, offset: int = 0) -> torch.Tensor:
    """Angle of every (position, pair): (T, d/2), entry [p, i] = (offset + p) * theta_i, float64."""
    _check_positive_int(T, "T")
    positions = torch.arange(offset, offset + T, dtype=torch.float64)
    return positions[:, None] * rope_frequencies(d, base)[None, :]


def apply_rope(x: torch.Tensor, positions: torch.Tensor | None = None, base: float = DEFAULT_BASE,
               offset: int = 0) -> torch.Tensor:
    """Rotate each pair of coordinates (2i, 2i + 1) of x by the angle position * theta_i.

    x: (..., T, d) queries or keys, d even (e.g. (B, h, T, d_head)). positions: optional (T,) positions of the
    T rows; by default offset, offset + 1, ..., offset + T - 1 (offset = tokens already in a KV cache).
    Returns a tensor of the same shape and dtype. A rotation keeps every pair's length, so norms are unchanged,
    and (R_m q) . (R_n k) = q . (R_{n-m} k): the score depends on the positions only through n - m.
    """
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        raise ShapeError(f"x should be a tensor of shape (..., T, d) with d even, got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    T, d = x.shape[-2], x.shape[-1]
    if d % 2:
        raise ShapeError(f"x should have shape (..., T, d) with d even (pairs are rotated), got {tuple(x.shape)}")
    wide = torch.float64 if x.dtype == torch.float64 else torch.float32    # the precision the rotation runs in
    if positions is None:
        rotation = _rotation_table(T, d, float(base), offset, wide, x.device)
    else:
        positions = torch.as_tensor(positions)
        check_shape(positions, (T,), "positions (one per row of x)")
        angles = positions.to(torch.float64)[:, None].cpu() * rope_frequencies(d, base)[None, :]
        rotation = _unit_complex(angles, wide).to(x.device)
    if x.device.type == "mps":          # no complex numbers there: the same rotation in real arithmetic
        cos, sin = rotation.real.to(x.dtype), rotation.imag.to(x.dtype)
        x_even, x_odd = x[..., 0::2], x[..., 1::2]
        return torch.stack([x_even * cos - x_odd * sin, x_even * sin + x_odd * cos], dim=-1).flatten(-2)
    # pair (x_2i, x_2i+1) as the complex number z = x_2i + i x_2i+1: rotating it by the angle a is z e^(ia),
    # whose real and imaginary parts are x_2i cos a - x_2i+1 sin a and x_2i sin a + x_2i+1 cos a.
    # Contiguous first: the CPU's vectorised and scalar complex products round differently, and the same x should
    # give the same bits whatever its memory layout (attention passes transposed heads).
    z = torch.view_as_complex(x.to(wide).contiguous().view(*x.shape[:-1], d // 2, 2))
    return torch.view_as_real(z * rotation).flatten(-2).to(x.dtype)


def _unit_complex(angles: torch.Tensor, real_dtype: torch.dtype) -> torch.Tensor:
    """e^(i angle) for float64 angles, as complex64 (real_dtype float32) or complex128 (float64)."""
    table = torch.polar(torch.ones_like(angles), angles)               # complex128, cos and sin in float64
    return table.to(torch.complex128 if real_dtype == torch.float64 else torch.complex64)


@functools.lru_cache(maxsize=64)
def _rotation_table(T: int, d: int, base: float, offset: int, real_dtype: torch.dtype,
                    device: torch.device) -> torch.Tensor:
    """e^(i (offset + p) theta_j): (T, d/2) complex, computed once per (T, d, base, offset, precision, device);
    a training run asks for the same table at every call."""
    return _unit_complex(rope_angles(T, d, base, offset), real_dtype).to(device)
