"""Exercises for notebook 06 (positional encoding): the sinusoidal table, the matrix that shifts it by k
positions, rotary embeddings, and adding learned position vectors to token embeddings."""

from __future__ import annotations

import math

import torch

from .core import ExerciseSet, Incorrect, Question, as_tensor, call, describe_shape, diagnose, expect_close, is_close

ATOL = 1e-5
BASE = 10000.0




def _omegas(d: int, per_column: bool = False) -> torch.Tensor:
    """Pair frequencies base^(-2i/d), (d/2,); or, the mistake, each column's own base^(-j/d), (d,)."""
    if per_column:
        return BASE ** (-torch.arange(d, dtype=torch.float64) / d)
    return BASE ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)


def _table(T: int, d: int, swap: bool = False, per_column: bool = False, halves: bool = False, start: int = 0,
           multiply: bool = False) -> torch.Tensor:
    """The sinusoidal table and its likely mistakes (d even)."""
    p = torch.arange(start, start + T, dtype=torch.float64)[:, None]
    if per_column:
        ang = p * _omegas(d, per_column=True)[None, :]
        pe = torch.empty(T, d, dtype=torch.float64)
        first, second = (ang.cos(), ang.sin()) if swap else (ang.sin(), ang.cos())
        pe[:, 0::2], pe[:, 1::2] = first[:, 0::2], second[:, 1::2]
        return pe
    om = _omegas(d)
    ang = p * (1.0 / om if multiply else om)[None, :]
    first, second = (ang.cos(), ang.sin()) if swap else (ang.sin(), ang.cos())
    if halves:
        return torch.cat([first, second], dim=-1)
    return torch.stack([first, second], dim=-1).reshape(T, d)


# ---- q1: ALiBi biases -------------------------------------------------------------------------------------------

def _alibi(T: int, h: int, first: int = 1, sign: float = -1.0, causal: bool = True) -> torch.Tensor:
    slopes = 2.0 ** (-8.0 * torch.arange(first, first + h, dtype=torch.float64) / h)     # (h,)
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    dist = i - j
    bias = sign * slopes[:, None, None] * (dist.abs() if not causal else dist).double()
    if causal:
        bias = bias.masked_fill(j > i, float("-inf"))
    return bias


def _check_alibi_bias(alibi_bias) -> None:
    for T, h in [(5, 4), (7, 8), (3, 2), (6, 1)]:
        got = as_tensor(call(alibi_bias, T, h))
        if tuple(got.shape) == (T, T):
            raise Incorrect(f"your bias has shape {(T, T)}: each head has its own slope, so the result is "
                            f"(n_heads={h}, T={T}, T={T}).")
        if tuple(got.shape) != (h, T, T):
            raise Incorrect(f"wrong shape: expected (n_heads={h}, T={T}, T={T}), got {tuple(got.shape)}")
        want = _alibi(T, h)
        future = torch.ones(T, T, dtype=torch.bool).triu(1)
        if T > 1 and not torch.isneginf(got.double()[:, future]).all():
            if is_close(got.double().masked_fill(future, 0.0), _alibi(T, h, causal=False).masked_fill(future, 0.0)):
                raise Incorrect("the future keys (j > i) must stay blocked: ALiBi is added to a causal model's "
                                "scores, so put -inf above the diagonal.")
            if torch.isneginf(got.double()[:, future.T]).all():
                raise Incorrect("your matrix is transposed: row i is the query, column j the key; the blocked "
                                "entries are those with j > i (above the diagonal).")
            raise Incorrect("entries with j > i (keys after the query) should be -inf.")
        got_past, want_past = got.double().masked_fill(future, 0.0), want.masked_fill(future, 0.0)
        diagnose(got_past, want_past, [
            (_alibi(T, h, sign=1.0).masked_fill(future, 0.0),
             "your biases grow with the distance: a key further back must be penalised, -m * (i - j), not +."),
            (_alibi(T, h, first=0).masked_fill(future, 0.0),
             f"the slopes are 2^(-8(k+1)/n_heads) for head k = 0 .. n_heads-1: head 0's slope is 2^(-8/{h}), "
             "not 1."),
        ], f"the biases for T={T}, n_heads={h} (below the diagonal)")


# ---- q2: the shift matrix --------------------------------------------------------------------------------------

def _shift(k: int, d: int, transpose: bool = False, per_column: bool = False) -> torch.Tensor:
    M = torch.zeros(d, d, dtype=torch.float64)
    om = _omegas(d, per_column=True)[0::2] if not per_column else None
    for i in range(d // 2):
        w = om[i] if not per_column else BASE ** (-(2 * i + 1) / d)
        c, s = math.cos(k * w), math.sin(k * w)
        block = torch.tensor([[c, s], [-s, c]], dtype=torch.float64)
        M[2 * i:2 * i + 2, 2 * i:2 * i + 2] = block.T if transpose else block
    return M


def _check_shift_matrix(shift_matrix) -> None:
    for k, d, T in [(1, 8, 12), (3, 16, 10), (10, 6, 5), (0, 4, 3), (25, 32, 8)]:
        got = as_tensor(call(shift_matrix, k, d))
        if tuple(got.shape) != (d, d):
            raise Incorrect(f"wrong shape for k={k}, d={d}: expected {describe_shape((d, d), 'd d')}, "
                            f"got {tuple(got.shape)}")
        want = _shift(k, d)
        if is_close(got, want):
            continue
        pe = _table(T + k, d)
        moved = (got.double() @ pe[:T].T).T                 # M @ PE[p] for every p, as rows
        if k and is_close(moved, _table(T, d, start=-k)):
            raise Incorrect(f"your matrix shifts backwards: M @ PE[p] gives PE[p - {k}], not PE[p + {k}]. Each "
                            "2 x 2 block acts on the pair (sin, cos): sin(a + b) = sin a cos b + cos a sin b and "
                            "cos(a + b) = cos a cos b - sin a sin b, so the block is [[cos, sin], [-sin, cos]] "
                            "(you have its transpose).")
        if not torch.allclose(got.double() - torch.diag(torch.diagonal(got.double())), _block_mask(d) *
                              got.double()):
            raise Incorrect("M should be block-diagonal: pair i (columns 2i, 2i + 1) only mixes with itself, "
                            "because the pairs turn at different frequencies.")
        if is_close(got, _shift(k, d, per_column=True)):
            raise Incorrect("use the pair frequency omega_i = 10000^(-2i/d) for block i (you used 10000^(-(2i+1)/d)).")
        if k and is_close(got, _shift(1, d)):
            raise Incorrect(f"you built the matrix for a shift of 1 position; the angle of block i is k * omega_i "
                            f"(here k={k}).")
        expect_close(moved, pe[k:k + T], what=f"M @ PE[p] should equal PE[p + k] (k={k}, d={d}), but the vectors",
                     atol=1e-4)


def _block_mask(d: int) -> torch.Tensor:
    mask = torch.zeros(d, d, dtype=torch.float64)
    for i in range(d // 2):
        mask[2 * i:2 * i + 2, 2 * i:2 * i + 2] = 1.0
    return mask - torch.eye(d, dtype=torch.float64)


# ---- q3: rotary embeddings -------------------------------------------------------------------------------------

def _rope(x: torch.Tensor, sign: float = 1.0, halves: bool = False, start: int = 0,
          per_column: bool = False, scale: float = 1.0) -> torch.Tensor:
    x = x.double()
    T, d = x.shape[-2:]
    p = torch.arange(start, start + T, dtype=torch.float64)[:, None] / scale
    om = _omegas(d, per_column=True)[1::2] if per_column else _omegas(d)
    ang = sign * p * om[None, :]
    cos, sin = ang.cos(), ang.sin()
    if halves:
        a, b = x[..., : d // 2], x[..., d // 2:]
        return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)


def _check_rope_interpolated(rope_interpolated) -> None:
    g = torch.Generator().manual_seed(4)
    for shape, scale in [((6, 8), 2.0), ((2, 5, 16), 4.0), ((2, 3, 7, 4), 2.0), ((9, 2), 8.0), ((1, 40, 32), 1.0)]:
        x = torch.randn(*shape, generator=g, dtype=torch.float64)
        got = as_tensor(call(rope_interpolated, x.clone(), scale))
        if tuple(got.shape) != shape:
            raise Incorrect(f"wrong shape: expected {shape} (the same as x), got {tuple(got.shape)}")
        want = _rope(x, scale=scale)
        if is_close(got, want):
            continue
        diagnose(got, want, [
            (_rope(x), f"scale={scale} changed nothing: divide the positions by the scale, m / scale, before "
                       "multiplying by the frequencies."),
            (_rope(x, scale=1 / scale), f"you multiplied the positions by the scale ({scale}); interpolation "
                                        "divides them, so that T * scale positions fit in the angles the model "
                                        "was trained on."),
            (_rope(x, halves=True, scale=scale), "you paired coordinate i with i + d/2 (the 'rotate half' layout). "
                                                 "In this course the pairs are neighbours, (0, 1), (2, 3), ..., as "
                                                 "in notebook 06's rope_by_hand: use x[..., 0::2] and x[..., 1::2]."),
            (_rope(x, sign=-1.0, scale=scale), "you rotated by minus the angle: rotating the pair (a, b) by phi "
                                               "gives (a cos phi - b sin phi, a sin phi + b cos phi)."),
            (_rope(x, start=1, scale=scale), "positions start at 0: the first row must come out unchanged."),
        ], f"the rotated vectors for x of shape {shape}, scale={scale}")


# ---- q4: token + position embeddings ---------------------------------------------------------------------------

def _check_embed(embed) -> None:
    g = torch.Generator().manual_seed(8)
    for B, T, V, L, d in [(2, 5, 11, 8, 6), (1, 7, 20, 7, 4), (3, 3, 9, 12, 10)]:
        tokens = torch.randint(0, V, (B, T), generator=g)
        tok_table = torch.randn(V, d, generator=g, dtype=torch.float64)
        pos_table = torch.randn(L, d, generator=g, dtype=torch.float64)
        got = as_tensor(call(embed, tokens.clone(), tok_table.clone(), pos_table.clone()))
        if tuple(got.shape) != (B, T, d):
            msg = f"wrong shape: expected {describe_shape((B, T, d), 'B T d')}, got {tuple(got.shape)}"
            if tuple(got.shape) == (B, L, d) or tuple(got.shape)[-2:] == (L, d):
                msg += ": take only the first T rows of the position table, pos_table[:T]."
            raise Incorrect(msg)
        want = tok_table[tokens] + pos_table[:T]
        suspects = [
            (tok_table[tokens], "only token embeddings: add the position vectors pos_table[:T] (one per position "
                                "0..T-1, the same for every sequence in the batch)."),
            (tok_table[tokens] + pos_table[tokens % L], "you looked up the position table with the token ids; "
                                                        "it is indexed by the position 0..T-1: pos_table[:T] "
                                                        "(or pos_table[torch.arange(T)])."),
        ]
        if T < L:
            suspects.append((tok_table[tokens] + pos_table[1:T + 1], "positions start at 0: use pos_table[:T], "
                                                                     "not pos_table[1:T+1]."))
        diagnose(got, want, suspects, f"the embeddings (B={B}, T={T}, d={d})")


EXERCISES = ExerciseSet("06", "Positional encoding", [
    Question(
        key="q1", title="ALiBi: distance as a bias", answer="alibi_bias", checker=_check_alibi_bias,
        hints=["Slopes: `m = 2 ** (-8 * torch.arange(1, n_heads + 1) / n_heads)`, shape (n_heads,). Distances: "
               "`i - j` with `i = torch.arange(T)[:, None]`, `j = torch.arange(T)[None, :]`, shape (T, T).",
               "`-m[:, None, None] * (i - j)` is (n_heads, T, T); then `.masked_fill(j > i, float('-inf'))`."],
        solution='''
def alibi_bias(T, n_heads):
    m = 2.0 ** (-8.0 * torch.arange(1, n_heads + 1, dtype=torch.float64) / n_heads)   # (h,) slopes
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]                           # query, key
    bias = -m[:, None, None] * (i - j).double()                                         # (h, T, T)
    return bias.masked_fill(j > i, float("-inf"))
''',
        success="no vector is added anywhere: the score simply drops by m per token of distance, a different "
                "amount in each head, so some heads look far back and others stay local."),
    Question(
        key="q2", title="Shifting positions is a rotation", answer="shift_matrix", checker=_check_shift_matrix,
        hints=["Pair i holds (sin(p w), cos(p w)) with w = 10000^(-2i/d). Expand sin(p w + k w) and "
               "cos(p w + k w) with the angle-addition formulas.",
               "The 2 x 2 block of pair i is [[cos(k w), sin(k w)], [-sin(k w), cos(k w)]], placed on the diagonal at "
               "rows and columns 2i, 2i + 1; everything else is 0."],
        solution='''
def shift_matrix(k, d):
    M = torch.zeros(d, d, dtype=torch.float64)
    for i in range(d // 2):
        w = 10000.0 ** (-2 * i / d)
        c, s = math.cos(k * w), math.sin(k * w)
        M[2 * i, 2 * i], M[2 * i, 2 * i + 1] = c, s
        M[2 * i + 1, 2 * i], M[2 * i + 1, 2 * i + 1] = -s, c
    return M
''',
        success="M depends on k only, not on p: moving k positions ahead is the same linear map everywhere."),
    Question(
        key="q3", title="Longer contexts: RoPE with position interpolation", answer="rope_interpolated",
        checker=_check_rope_interpolated,
        hints=["It is section 7's rotation with the position m replaced by m / scale: angles = "
               "(torch.arange(T)[:, None] / scale) * 10000 ** (-torch.arange(0, d, 2) / d), shape (T, d/2).",
               "With `a, b = x[..., 0::2], x[..., 1::2]`, the rotated pair is (a cos - b sin, a sin + b cos); "
               "interleave them back with `torch.stack([..., ...], dim=-1).flatten(-2)`."],
        solution='''
def rope_interpolated(x, scale):
    T, d = x.shape[-2], x.shape[-1]
    p = torch.arange(T, dtype=torch.float64)[:, None] / scale                          # squeezed positions
    angles = p * 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)          # (T, d/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)
''',
        success="the scores still depend only on the offset, now (n - m) / scale: a model trained on T positions "
                "sees T * scale tokens at angles it already knows (at the price of finer position steps)."),
    Question(
        key="q4", title="Token plus position embeddings", answer="embed", checker=_check_embed,
        hints=["Look up each token's row: `tok_table[tokens]` is (B, T, d).",
               "Add the first T rows of the position table, `pos_table[:T]` (T, d): broadcasting adds it to every "
               "sequence of the batch."],
        solution='''
def embed(tokens, tok_table, pos_table):
    T = tokens.shape[1]
    return tok_table[tokens] + pos_table[:T]
''',
        success="this is exactly how GPT-2 builds the input of its first block."),
])
