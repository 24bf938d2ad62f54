"""Notebook 06's exercises: the reference passes, plausible mistakes get the intended message, blanks are blanks."""

from __future__ import annotations

import math

import torch
from helpers import assert_incorrect

from course_utils.exercises import ____, load
from course_utils.positional import apply_rope

ex = load("06")


def test_references_pass_and_blanks_are_blanks():
    assert ex.q1.evaluate(ex.q1.reference()).status == "correct"
    assert ex.q3.evaluate(ex.q3.reference()).status == "correct"
    # course_utils' rope with positions divided by the scale is the same thing
    assert ex.q3.evaluate(lambda x, s: apply_rope(x, positions=torch.arange(x.shape[-2]) / s)).status == "correct"
    assert ex.q1.evaluate(lambda T, h: ____).status == "not attempted"
    assert ex.q3.evaluate(lambda x, s: ____).status == "not attempted"


def _angles(T, d, start=0, per_column=False):
    p = torch.arange(start, start + T, dtype=torch.float64)[:, None]
    j = torch.arange(d, dtype=torch.float64) if per_column else torch.arange(0, d, 2, dtype=torch.float64)
    return p * 10000.0 ** (-j / d)


def _alibi(T, h, first=1, sign=-1.0, causal=True):
    m = 2.0 ** (-8.0 * torch.arange(first, first + h, dtype=torch.float64) / h)
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    bias = sign * m[:, None, None] * ((i - j) if causal else (i - j).abs()).double()
    return bias.masked_fill(j > i, float("-inf")) if causal else bias


def test_q1_alibi_mistakes():
    assert ex.q1.evaluate(lambda T, h: _alibi(T, h)).status == "correct"
    assert_incorrect(ex.q1, lambda T, h: _alibi(T, h, causal=False), "must stay blocked")
    assert_incorrect(ex.q1, lambda T, h: _alibi(T, h, sign=1.0), "must be penalised")
    assert_incorrect(ex.q1, lambda T, h: _alibi(T, h, first=0), "not 1")
    assert_incorrect(ex.q1, lambda T, h: _alibi(T, h)[0], "each head has its own slope")
    assert_incorrect(ex.q1, lambda T, h: _alibi(T, h).transpose(-2, -1), "transposed")
    assert_incorrect(ex.q1, lambda T, h: torch.zeros(h, T, T + 1), "wrong shape")


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


def test_q3_interpolation_mistakes():
    def pos(x, s, start=0):
        return torch.arange(start, start + x.shape[-2]) / s

    def halves(x, s):
        T, d = x.shape[-2:]
        a = (pos(x, s)[:, None].double() * 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)).to(x.dtype)
        u, v = x[..., : d // 2], x[..., d // 2:]
        return torch.cat([u * a.cos() - v * a.sin(), u * a.sin() + v * a.cos()], -1)

    assert_incorrect(ex.q3, lambda x, s: apply_rope(x), "changed nothing")
    assert_incorrect(ex.q3, lambda x, s: apply_rope(x, positions=torch.arange(x.shape[-2]) * s), "multiplied")
    assert_incorrect(ex.q3, halves, "rotate half")
    assert_incorrect(ex.q3, lambda x, s: apply_rope(x, positions=-pos(x, s)), "minus the angle")
    assert_incorrect(ex.q3, lambda x, s: apply_rope(x, positions=pos(x, s, start=1)), "positions start at 0")
    assert_incorrect(ex.q3, lambda x, s: 2 * apply_rope(x, positions=pos(x, s)), "not right")
    assert_incorrect(ex.q3, lambda x, s: x[..., :-1], "wrong shape")


def test_q4_mistakes():
    assert_incorrect(ex.q4, lambda t, tok, pos: tok[t], "only token embeddings")
    assert_incorrect(ex.q4, lambda t, tok, pos: tok[t] + pos[t % pos.shape[0]], "with the token ids")
    assert_incorrect(ex.q4, lambda t, tok, pos: tok[t] + pos[1:t.shape[1] + 1], "positions start at 0")
    assert_incorrect(ex.q4, lambda t, tok, pos: tok[t][:, :1] + pos, "first T rows")
