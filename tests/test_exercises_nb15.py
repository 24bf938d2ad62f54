"""Notebook 15's exercises: the reference passes, plausible mistakes get the intended message, blanks are blanks."""

from __future__ import annotations

import torch
from helpers import assert_incorrect

from course_utils.exercises import ____, load
from course_utils.modern import NS_QUINTIC, RMSNorm, newton_schulz, swiglu_hidden

ex = load("15")


def test_references_pass_and_blanks_are_not_attempted():
    for q in ex:
        assert q.evaluate(q.reference()).status == "correct", q.key
        assert q.evaluate(____).status == "not attempted", q.key


def test_rms_normalize_matches_the_course_rmsnorm():
    f = ex.q1.reference()
    x = torch.randn(3, 16)
    torch.testing.assert_close(f(x, torch.ones(16), 1e-6), RMSNorm(16, eps=1e-6, fast=False)(x))


def test_rms_normalize_mistakes():
    assert_incorrect(ex.q1, lambda x, g, eps: torch.nn.functional.layer_norm(x, (x.shape[-1],), g, None, eps),
                     "that is LayerNorm")
    assert_incorrect(ex.q1, lambda x, g, eps: x / torch.sqrt((x ** 2).sum(-1, keepdim=True) + eps) * g, "SUM")
    assert_incorrect(ex.q1, lambda x, g, eps: x / ((x ** 2).mean(-1, keepdim=True) + eps) * g, "square root")
    assert_incorrect(ex.q1, lambda x, g, eps: x / torch.sqrt((x ** 2).mean(-1, keepdim=True) + eps), "gain g")
    assert_incorrect(ex.q1, lambda x, g, eps: x / (torch.sqrt((x ** 2).mean(-1, keepdim=True)) + eps) * g,
                     "inside the square root")
    assert_incorrect(ex.q1, lambda x, g, eps: x[..., :1], "wrong shape")


def test_swiglu_width_agrees_with_the_model_and_mistakes():
    f = ex.q2.reference()
    for d in (32, 128, 384):
        assert f(d, 8 * d * d) == swiglu_hidden(d)
    assert_incorrect(ex.q2, lambda d, budget: round(budget / (2 * d)), "THREE matrices")
    assert_incorrect(ex.q2, lambda d, budget: budget // d, "not budget / d")
    assert_incorrect(ex.q2, lambda d, budget: round(8 * d / 3), "8d/3")
    assert_incorrect(ex.q2, lambda d, budget: budget / (3 * d), "whole number")
    assert_incorrect(ex.q2, lambda d, budget: "h", "should be a number")


def test_ns_step_agrees_with_newton_schulz_and_mistakes():
    f = ex.q3.reference()
    G = torch.randn(3, 5, dtype=torch.float64)
    X = G / G.norm()
    for _ in range(5):
        X = f(X, *NS_QUINTIC)
    torch.testing.assert_close(X.float(), newton_schulz(G.float(), 5), atol=1e-4, rtol=1e-4)

    def left_gram_wrong(X, a, b, c):
        B = X.T @ X
        return a * X + b * B @ X + c * B @ B @ X

    def no_square(X, a, b, c):
        A = X @ X.T
        return a * X + b * A @ X + c * A @ X

    def normalised(X, a, b, c):
        A = X @ X.T
        Y = a * X + b * A @ X + c * A @ A @ X
        return Y / Y.norm()

    assert_incorrect(ex.q3, left_gram_wrong, "on the LEFT")
    assert_incorrect(ex.q3, no_square, "A squared")
    assert_incorrect(ex.q3, lambda X, a, b, c: a * X + b * (X @ X.T) @ X, "quintic term")
    assert_incorrect(ex.q3, normalised, "do not normalise")
    assert_incorrect(ex.q3, lambda X, a, b, c: X[:, :-1], "wrong shape")
