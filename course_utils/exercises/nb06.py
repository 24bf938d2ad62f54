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


# ---- q1: the sinusoidal table ----------------------------------------------------------------------------------

def _check_sinusoidal(sinusoidal) -> None:
    for T, d in [(10, 8), (5, 16), (50, 32), (3, 4), (20, 2)]:
        got = as_tensor(call(sinusoidal, T, d))
        if tuple(got.shape) != (T, d):
            msg = f"wrong shape: expected {describe_shape((T, d), 'T d')}, got {tuple(got.shape)}"
            if tuple(got.shape) == (d, T):
                msg += ": one row per position, one column per dimension (transpose your table)."
            elif tuple(got.shape) == (T, d // 2):
                msg += ": each frequency gives two columns, a sine (column 2i) and a cosine (column 2i + 1)."
            raise Incorrect(msg)
        diagnose(got, _table(T, d), [
            (_table(T, d, swap=True), "sines and cosines are swapped: even columns (0, 2, 4, ...) hold the sine, "
                                      "odd columns the cosine, so row 0 is [0, 1, 0, 1, ...]."),
            (_table(T, d, halves=True), "you put all the sines first, then all the cosines. Here they are "
                                        "interleaved: column 2i is sin(p * omega_i), column 2i + 1 is "
                                        "cos(p * omega_i) (the same numbers, in another order)."),
            (_table(T, d, per_column=True), "the frequency belongs to the pair, not the column: columns 2i and "
                                            "2i + 1 share omega_i = 10000^(-2i/d). You gave column j its own "
                                            "10000^(-j/d); use the pair index i = j // 2 (or torch.arange(0, d, 2))."),
            (_table(T, d, start=1), "positions start at 0: row 0 must be the encoding of position 0, "
                                    "[sin 0, cos 0, ...] = [0, 1, 0, 1, ...]. Use torch.arange(T)."),
            (_table(T, d, multiply=True), "you multiplied the position by 10000^(2i/d); divide by it instead "
                                          "(omega_i = 10000^(-2i/d), so the later columns turn slowly)."),
        ], f"the table for T={T}, d={d}")


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
          per_column: bool = False) -> torch.Tensor:
    x = x.double()
    T, d = x.shape[-2:]
    p = torch.arange(start, start + T, dtype=torch.float64)[:, None]
    om = _omegas(d, per_column=True)[1::2] if per_column else _omegas(d)
    ang = sign * p * om[None, :]
    cos, sin = ang.cos(), ang.sin()
    if halves:
        a, b = x[..., : d // 2], x[..., d // 2:]
        return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)


def _check_rope(rope) -> None:
    g = torch.Generator().manual_seed(4)
    for shape in [(6, 8), (2, 5, 16), (2, 3, 7, 4), (9, 2), (1, 40, 32)]:
        x = torch.randn(*shape, generator=g, dtype=torch.float64)
        got = as_tensor(call(rope, x.clone()))
        if tuple(got.shape) != shape:
            raise Incorrect(f"wrong shape: expected {shape} (the same as x), got {tuple(got.shape)}")
        want = _rope(x)
        if is_close(got, want):
            continue
        diagnose(got, want, [
            (_rope(x, halves=True), "you paired coordinate i with i + d/2 (the 'rotate half' layout). In this "
                                    "course the pairs are neighbours, (0, 1), (2, 3), ..., like the sinusoidal "
                                    "table: use x[..., 0::2] and x[..., 1::2]."),
            (_rope(x, sign=-1.0), "you rotated by minus the angle: rotating the pair (a, b) by phi gives "
                                  "(a cos phi - b sin phi, a sin phi + b cos phi)."),
            (_rope(x, start=1), "positions start at 0: the first row (position 0) must come out unchanged."),
            (_rope(x, per_column=True), "pair i turns at omega_i = 10000^(-2i/d); you used the frequency of "
                                        "column 2i + 1 instead."),
        ], f"the rotated vectors for x of shape {shape}")
        norms_got, norms_x = got.double().norm(dim=-1), x.norm(dim=-1)
        if not torch.allclose(norms_got, norms_x, atol=1e-4):
            raise Incorrect("a rotation keeps lengths, but your output changes the norms of the rows: both "
                            "coordinates of a pair must be rotated by the same angle, with cos and sin.")


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
        key="q1", title="The sinusoidal table", answer="sinusoidal", checker=_check_sinusoidal,
        hints=["Positions as a column `p = torch.arange(T)[:, None]`, pair frequencies as a row "
               "`omega = 10000 ** (-torch.arange(0, d, 2) / d)`; their product is (T, d/2).",
               "Fill a (T, d) tensor: `pe[:, 0::2] = torch.sin(p * omega)` and `pe[:, 1::2] = torch.cos(p * omega)`."],
        solution='''
def sinusoidal(T, d):
    p = torch.arange(T, dtype=torch.float64)[:, None]                 # (T, 1)
    omega = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)   # (d/2,)
    pe = torch.zeros(T, d, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(p * omega)
    pe[:, 1::2] = torch.cos(p * omega)
    return pe
''',
        success="every row has the same length, sqrt(d/2), and nearby rows look alike."),
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
        key="q3", title="Rotary embeddings by hand", answer="rope", checker=_check_rope,
        hints=["Angles: positions `torch.arange(T)[:, None]` times `10000 ** (-torch.arange(0, d, 2) / d)`, shape "
               "(T, d/2). Take their cos and sin.",
               "With `a, b = x[..., 0::2], x[..., 1::2]`, the rotated pair is (a cos - b sin, a sin + b cos); "
               "interleave them back with `torch.stack([..., ...], dim=-1).flatten(-2)`."],
        solution='''
def rope(x):
    T, d = x.shape[-2], x.shape[-1]
    p = torch.arange(T, dtype=torch.float64)[:, None]
    angles = p * 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)   # (T, d/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)
''',
        success="queries and keys rotated this way give scores that depend on m - n only."),
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
