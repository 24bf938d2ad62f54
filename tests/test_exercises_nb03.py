"""Notebook 03's exercises: the reference passes, plausible mistakes get the intended message, blanks are blanks."""

from __future__ import annotations

import math

import torch
from helpers import assert_incorrect

from course_utils.exercises import ____, load

ex = load("03")


def test_q1_reference_passes_and_blank_is_not_attempted():
    assert ex.q1.evaluate(ex.q1.reference()).passed
    assert ex.q1.evaluate(lambda w, g: ____).status == "not attempted"


def test_q1_mistakes():
    def direct_path_only(w, g):
        return w * g

    def diagonal_only(w, g):
        return w * (1 - w) * g

    def no_factor_w(w, g):
        return g - (g * w).sum(-1, keepdim=True)

    def wrong_dim(w, g):
        return w * (g - (g * w).sum(0, keepdim=True))

    def plain_sum(w, g):
        return w * (g - g.sum(-1, keepdim=True))

    assert_incorrect(ex.q1, direct_path_only, "every weight depends on every score")
    assert_incorrect(ex.q1, diagonal_only, "only the diagonal of the Jacobian")
    assert_incorrect(ex.q1, no_factor_w, "forgot to multiply by w_j")
    assert_incorrect(ex.q1, wrong_dim, "along the last dim")
    assert_incorrect(ex.q1, plain_sum, "*weighted* sum")
    assert_incorrect(ex.q1, lambda w, g: g[..., :2], "wrong shape")


def test_q1_crash_is_feedback():
    def crashes(w, g):
        return w @ g  # (3, 6) @ (3, 6) does not multiply

    fb = ex.q1.evaluate(crashes)
    assert fb.status == "incorrect"


def test_q2_mistakes():
    def unscaled(q, k):
        return torch.softmax(q @ k.transpose(-2, -1), dim=-1)

    def by_d(q, k):
        return torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1], dim=-1)

    def wrong_dim(q, k):
        return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-2)

    def transposed(q, k):
        return torch.softmax(k @ q.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-2)

    def outputs(q, k):
        return q

    assert_incorrect(ex.q2, unscaled, "forgot to divide by the square root of d")
    assert_incorrect(ex.q2, by_d, "you divided by d=")
    assert_incorrect(ex.q2, wrong_dim, "rows do not sum to 1")
    assert_incorrect(ex.q2, transposed, "transposed")
    assert_incorrect(ex.q2, outputs, "wrong shape: expected (B=2, T=5, T=5), got (2, 5, 16)")


def test_q3_mistakes():
    def weights_only(q, k, v):
        return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)

    def unscaled(q, k, v):
        return torch.softmax(q @ k.transpose(-2, -1), dim=-1) @ v

    def no_softmax(q, k, v):
        return (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])) @ v

    assert_incorrect(ex.q3, weights_only, "that is the shape of the weights")
    assert_incorrect(ex.q3, unscaled, "forgot to divide by the square root of d")
    assert_incorrect(ex.q3, no_softmax, "take their softmax first")


def test_q4_mistakes():
    assert_incorrect(ex.q4, lambda x, tau: torch.softmax(x * tau, dim=-1), "you multiplied by the temperature")
    assert_incorrect(ex.q4, lambda x, tau: torch.softmax(x, dim=-1), "changed nothing")
    assert_incorrect(ex.q4, lambda x, tau: torch.softmax(x, dim=-1) / tau, "before* the softmax")

    def unstable(x, tau):
        e = torch.exp(x / tau)
        return e / e.sum(-1, keepdim=True)

    assert_incorrect(ex.q4, unstable, "inf or NaN")
