"""Notebook 06's exercises: the reference passes, plausible mistakes get the intended message, blanks are blanks."""

from __future__ import annotations

import math

import torch
from helpers import assert_incorrect

from course_utils.exercises import load
from course_utils.positional import apply_rope, sinusoidal_encoding

ex = load("06")


def test_course_utils_passes_q1_and_q3():
    assert ex.q1.evaluate(lambda T, d: sinusoidal_encoding(T, d)).status == "correct"
    assert ex.q3.evaluate(apply_rope).status == "correct"


def _angles(T, d, start=0, per_column=False):
    p = torch.arange(start, start + T, dtype=torch.float64)[:, None]
    j = torch.arange(d, dtype=torch.float64) if per_column else torch.arange(0, d, 2, dtype=torch.float64)
    return p * 10000.0 ** (-j / d)


def test_q1_mistakes():
    def swapped(T, d):
        a = _angles(T, d)
        return torch.stack([a.cos(), a.sin()], -1).reshape(T, d)

    def halves(T, d):
        a = _angles(T, d)
        return torch.cat([a.sin(), a.cos()], -1)

    def per_column(T, d):
        a = _angles(T, d, per_column=True)
        pe = a.sin()
        pe[:, 1::2] = a[:, 1::2].cos()
        return pe

    def from_one(T, d):
        a = _angles(T, d, start=1)
        return torch.stack([a.sin(), a.cos()], -1).reshape(T, d)

    assert_incorrect(ex.q1, swapped, "sines and cosines are swapped")
    assert_incorrect(ex.q1, halves, "all the sines first")
    assert_incorrect(ex.q1, per_column, "the frequency belongs to the pair")
    assert_incorrect(ex.q1, from_one, "positions start at 0")
    assert_incorrect(ex.q1, lambda T, d: _angles(T, d).sin(), "each frequency gives two columns")
    assert_incorrect(ex.q1, lambda T, d: torch.zeros(d, T), "one row per position")


def _ref_shift(k, d, transpose=False, scale=1):
    M = torch.zeros(d, d, dtype=torch.float64)
    for i in range(d // 2):
        w = 10000.0 ** (-2 * i / d)
        c, s = math.cos(scale * k * w), math.sin(scale * k * w)
        b = torch.tensor([[c, s], [-s, c]], dtype=torch.float64)
        M[2 * i:2 * i + 2, 2 * i:2 * i + 2] = b.T if transpose else b
    return M


def test_q2_mistakes():
    assert_incorrect(ex.q2, lambda k, d: _ref_shift(k, d, transpose=True), "shifts backwards")
    assert_incorrect(ex.q2, lambda k, d: _ref_shift(k, d) + 0.1, "block-diagonal")
    assert_incorrect(ex.q2, lambda k, d: _ref_shift(1, d), "shift of 1 position")
    assert_incorrect(ex.q2, lambda k, d: _ref_shift(k, d, scale=0.5), "should equal PE[p + k]")
    assert_incorrect(ex.q2, lambda k, d: torch.eye(d + 1), "wrong shape")


def test_q3_mistakes():
    def halves(x):
        T, d = x.shape[-2:]
        a = _angles(T, d).to(x.dtype)
        u, v = x[..., : d // 2], x[..., d // 2:]
        return torch.cat([u * a.cos() - v * a.sin(), u * a.sin() + v * a.cos()], -1)

    def backwards(x):
        return apply_rope(x, positions=-torch.arange(x.shape[-2]))

    def from_one(x):
        return apply_rope(x, offset=1)

    def scaled(x):
        return 2 * apply_rope(x)

    assert_incorrect(ex.q3, halves, "rotate half")
    assert_incorrect(ex.q3, backwards, "minus the angle")
    assert_incorrect(ex.q3, from_one, "positions start at 0")
    assert_incorrect(ex.q3, scaled, "not right")
    assert_incorrect(ex.q3, lambda x: x[..., :-1], "wrong shape")


def test_q4_mistakes():
    assert_incorrect(ex.q4, lambda t, tok, pos: tok[t], "only token embeddings")
    assert_incorrect(ex.q4, lambda t, tok, pos: tok[t] + pos[t % pos.shape[0]], "with the token ids")
    assert_incorrect(ex.q4, lambda t, tok, pos: tok[t] + pos[1:t.shape[1] + 1], "positions start at 0")
    assert_incorrect(ex.q4, lambda t, tok, pos: tok[t][:, :1] + pos, "first T rows")
