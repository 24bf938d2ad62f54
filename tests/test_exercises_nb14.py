"""Notebook 14's exercises: the reference passes, plausible mistakes get the intended message, blanks are blanks."""

from __future__ import annotations

import torch
from helpers import assert_incorrect

from course_utils.exercises import ____, load

ex = load("14")


def test_references_pass():
    for q in ex:
        assert q.evaluate(q.reference()).passed, q.key


def test_q1_mistakes():
    def energy(s):
        return torch.sort(torch.as_tensor(s, dtype=torch.float64), descending=True).values ** 2

    def count_below(kept, share):
        return int((kept < share - 1e-12).sum()) + 1

    def no_square(s, share):
        v = torch.sort(s, descending=True).values
        return count_below(v.cumsum(0) / v.sum(), share)

    def unsorted(s, share):
        e = s ** 2
        return count_below(e.cumsum(0) / e.sum(), share)

    def strict(s, share):
        e = energy(s)
        return int((e.cumsum(0) / e.sum() <= share + 1e-12).sum()) + 1

    def index(s, share):
        e = energy(s)
        return count_below(e.cumsum(0) / e.sum(), share) - 1

    assert_incorrect(ex.q1, no_square, "singular value squared")
    assert_incorrect(ex.q1, unsorted, "sort them largest first")
    assert_incorrect(ex.q1, strict, "at least")
    assert_incorrect(ex.q1, index, "counted from 0")
    assert_incorrect(ex.q1, lambda s, share: len(s), "expected rank")
    assert_incorrect(ex.q1, lambda s, share: share * len(s), "whole number")
    assert_incorrect(ex.q1, lambda s, share: "four", "whole number")


def test_q2_mistakes():
    assert_incorrect(ex.q2, lambda d, f, L, r: L * (2 * d * d + 2 * d * f), "size of the full matrices")
    assert_incorrect(ex.q2, lambda d, f, L, r: r * (6 * d + 2 * f), "count for one block")
    assert_incorrect(ex.q2, lambda d, f, L, r: L * r * 8 * d, "counted every matrix as d x d")
    assert_incorrect(ex.q2, lambda d, f, L, r: L * r * (3 * d + f), "only one of A and B")
    assert_incorrect(ex.q2, lambda d, f, L, r: L * r * 4 * d, "counts only W_Q and W_V")
    assert_incorrect(ex.q2, lambda d, f, L, r: L * r * (10 * d + 2 * f), "all four attention matrices")
    assert_incorrect(ex.q2, lambda d, f, L, r: L * r * r * (6 * d + 2 * f), "not with r squared")
    assert_incorrect(ex.q2, lambda d, f, L, r: L * r * (6 * d + 2 * f) + 1, "should be")
    assert_incorrect(ex.q2, lambda d, f, L, r: "many", "should be a number")


def test_q3_mistakes():
    def r_of(A):
        return A.shape[0]

    assert_incorrect(ex.q3, lambda Wm, A, B, a: Wm + a / r_of(A) * B @ A, "a second time")
    assert_incorrect(ex.q3, lambda Wm, A, B, a: Wm - B @ A, "not scaled")
    assert_incorrect(ex.q3, lambda Wm, A, B, a: Wm - a * B @ A, "the scale is alpha / r")
    assert_incorrect(ex.q3, lambda Wm, A, B, a: Wm, "unchanged")
    assert_incorrect(ex.q3, lambda Wm, A, B, a: a / r_of(A) * B @ A, "the update itself")
    assert_incorrect(ex.q3, lambda Wm, A, B, a: Wm - a / r_of(A) * A.T @ B.T, "wrong shape")
    assert_incorrect(ex.q3, lambda Wm, A, B, a: Wm - a / r_of(A) * A @ B, "order of the products")


def test_blank_templates_are_not_attempted():
    def rank_for_share(s, share):
        return ____

    def adapter_size(d_model, d_ff, n_layers, r):
        return ____

    def remove_adapter(W_merged, A, B, alpha):
        return ____

    assert ex.q1.evaluate(rank_for_share).status == "not attempted"
    assert ex.q2.evaluate(adapter_size).status == "not attempted"
    assert ex.q3.evaluate(remove_adapter).status == "not attempted"
    assert ex.q1.evaluate(____).status == "not attempted"


def test_checks_leave_the_global_rng_alone():
    torch.manual_seed(5)
    a = torch.rand(3)
    torch.manual_seed(5)
    for q in ex:
        q.evaluate(q.reference())
    assert torch.equal(torch.rand(3), a)
