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
    def r_of(A):
        return A.shape[0]

    assert_incorrect(ex.q1, lambda x, W, b, A, B, a: x @ W.T + b + x @ A.T @ B.T, "not scaled")
    assert_incorrect(ex.q1, lambda x, W, b, A, B, a: x @ W.T + b + a * x @ A.T @ B.T, "the scale is alpha / r")
    assert_incorrect(ex.q1, lambda x, W, b, A, B, a: x @ W.T + b + r_of(A) / a * x @ A.T @ B.T, "r / alpha")
    assert_incorrect(ex.q1, lambda x, W, b, A, B, a: x @ W.T + a / r_of(A) * x @ A.T @ B.T, "bias b is missing")
    assert_incorrect(ex.q1, lambda x, W, b, A, B, a: a / r_of(A) * x @ A.T @ B.T, "returned only the update")
    assert_incorrect(ex.q1, lambda x, W, b, A, B, a: x @ W.T + b, "frozen layer alone")
    assert_incorrect(ex.q1, lambda x, W, b, A, B, a: x @ W.T + b + a / r_of(A) * x @ B @ A, "order of the products")
    assert_incorrect(ex.q1, lambda x, W, b, A, B, a: (W @ x.T + b[:, None]), "use x @ W.T")
    assert_incorrect(ex.q1, lambda x, W, b, A, B, a: x @ W.T + b + a / r_of(A) * x @ A.T @ B.T + 0.1,
                     "the outputs are not right")


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
    def lora_layer_output(x, W, b, A, B, alpha):
        return ____

    def adapter_size(d_model, d_ff, n_layers, r):
        return ____

    def remove_adapter(W_merged, A, B, alpha):
        return ____

    assert ex.q1.evaluate(lora_layer_output).status == "not attempted"
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
