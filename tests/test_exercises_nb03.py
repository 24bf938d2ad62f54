"""Notebook 03's exercises: the reference passes, plausible mistakes get the intended message, blanks are blanks."""

from __future__ import annotations

import math

import torch
from helpers import assert_incorrect

from course_utils.exercises import load

ex = load("03")


def test_q1_mistakes():
    def naive(x):
        return torch.exp(x) / torch.exp(x).sum(-1, keepdim=True)

    def wrong_dim(x):
        e = torch.exp(x - x.max(dim=0, keepdim=True).values)
        return e / e.sum(dim=0, keepdim=True)

    def no_keepdim_sum(x):
        e = torch.exp(x - x.max(dim=-1, keepdim=True).values)
        return e / e.sum()

    def no_exp(x):
        return x / x.sum(-1, keepdim=True)

    assert_incorrect(ex.q1, naive, "Subtract each row's maximum")
    assert_incorrect(ex.q1, wrong_dim, "you normalised along dim 0")
    assert_incorrect(ex.q1, no_keepdim_sum, "rows do not sum to 1")
    assert_incorrect(ex.q1, no_exp, "without exponentiating")
    assert_incorrect(ex.q1, lambda x: x[..., :2], "wrong shape")


def test_q1_crash_is_feedback():
    def crashes(x):
        return torch.exp(x - x.max(dim=-1).values)  # shapes do not broadcast for 2-D inputs of this size

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
