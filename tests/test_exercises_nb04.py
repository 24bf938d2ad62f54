"""Notebook 04's exercises: the reference passes, plausible mistakes get the intended message, blanks are blanks."""

from __future__ import annotations

import math

import torch
from helpers import assert_incorrect

from course_utils.exercises import ____, load

ex = load("04")


def _tri(T, diagonal, upper=True):
    m = torch.ones(T, T, dtype=torch.bool)
    return m.triu(diagonal) if upper else m.tril(diagonal)


def test_q1_mistakes():
    assert_incorrect(ex.q1, lambda s: s.masked_fill(_tri(s.shape[-1], 1), 0.0), "not -inf")
    assert_incorrect(ex.q1, lambda s: s.masked_fill(_tri(s.shape[-1], 0), float("-inf")), "the diagonal is masked")
    assert_incorrect(ex.q1, lambda s: s.masked_fill(_tri(s.shape[-1], -1, upper=False), float("-inf")),
               "you blocked the past")
    assert_incorrect(ex.q1, lambda s: s, "the future leaked into position 0")
    assert_incorrect(ex.q1, lambda s: s[0], "wrong shape: expected (B=2, T=5, T=5)")


def _scores(q, k, scale=True):
    return q @ k.transpose(-2, -1) / (math.sqrt(q.shape[-1]) if scale else 1.0)


def test_q2_mistakes():
    def no_mask(q, k, v):
        return torch.softmax(_scores(q, k), -1) @ v

    def mask_after_softmax(q, k, v):
        w = torch.softmax(_scores(q, k), -1)
        return (w * _tri(q.shape[-2], 0, upper=False)) @ v

    def unscaled(q, k, v):
        s = _scores(q, k, scale=False).masked_fill(_tri(q.shape[-2], 1), float("-inf"))
        return torch.softmax(s, -1) @ v

    def weights_only(q, k, v):
        return torch.softmax(_scores(q, k).masked_fill(_tri(q.shape[-2], 1), float("-inf")), -1)

    def masks_diagonal(q, k, v):
        s = _scores(q, k).masked_fill(_tri(q.shape[-2], 0), float("-inf"))
        return torch.softmax(s, -1) @ v

    assert_incorrect(ex.q2, no_mask, "the future leaked into position")
    assert_incorrect(ex.q2, mask_after_softmax, "rows do not sum to 1")
    assert_incorrect(ex.q2, unscaled, "forgot to divide by the square root of d")
    assert_incorrect(ex.q2, weights_only, "wrong shape: expected (B=2, T=6, d_v=8), got (2, 6, 6)")
    assert_incorrect(ex.q2, masks_diagonal, "NaN")


def _keys(lengths, T):
    return torch.arange(T)[None, :] < lengths[:, None]


def test_q3_mistakes():
    def causal_only(lengths, T):
        return _tri(T, 0, upper=False).expand(len(lengths), T, T)

    def padding_only(lengths, T):
        return _keys(lengths, T)[:, None, :].expand(len(lengths), T, T)

    def inverted(lengths, T):
        return ~(_keys(lengths, T)[:, None, :] & _tri(T, 0, upper=False))

    def also_queries(lengths, T):
        keys = _keys(lengths, T)
        return keys[:, None, :] & keys[:, :, None] & _tri(T, 0, upper=False)

    assert_incorrect(ex.q3, causal_only, "the padding is still visible")
    assert_incorrect(ex.q3, padding_only, "the future leaked into position 0")
    assert_incorrect(ex.q3, inverted, "inverted")
    assert_incorrect(ex.q3, also_queries, "padded *query* rows")
    assert_incorrect(ex.q3, lambda lengths, T: _keys(lengths, T), "that is the padding mask alone")
    assert_incorrect(ex.q3, lambda lengths, T: (_keys(lengths, T)[:, None, :] & _tri(T, 0, upper=False)).float(),
               "should be boolean")


def test_q4_sliding_window_mistakes():
    assert ex.q4.evaluate(ex.q4.reference()).passed

    def grid(T):
        return torch.arange(T)[:, None], torch.arange(T)[None, :]

    def whole_past(T, w):
        i, j = grid(T)
        return j <= i

    def one_too_many(T, w):
        i, j = grid(T)
        return (j <= i) & (i - j <= w)

    def one_too_few(T, w):
        i, j = grid(T)
        return (j <= i) & (i - j < w - 1)

    def both_ways(T, w):
        i, j = grid(T)
        return (i - j).abs() < w

    def transposed(T, w):
        i, j = grid(T)
        return (i <= j) & (j - i < w)

    def as_float(T, w):
        i, j = grid(T)
        return ((j <= i) & (i - j < w)).float()

    assert_incorrect(ex.q4, whole_past, "still sees the whole past")
    assert_incorrect(ex.q4, one_too_many, "w + 1 positions")
    assert_incorrect(ex.q4, one_too_few, "w - 1 positions")
    assert_incorrect(ex.q4, both_ways, "looks both ways")
    assert_incorrect(ex.q4, transposed, "transposed")
    assert_incorrect(ex.q4, as_float, "should be boolean")
    assert_incorrect(ex.q4, lambda T, w: torch.ones(T, T + 1, dtype=torch.bool), "wrong shape")
    assert ex.q4.evaluate(lambda T, w: ____).status == "not attempted"
