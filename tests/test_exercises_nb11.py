"""Notebook 11's exercises: the reference passes, plausible mistakes get the intended message, blanks are blanks."""

from __future__ import annotations

from helpers import assert_incorrect

from course_utils import sizing
from course_utils.exercises import ____, load

ex = load("11")


def test_references_pass_and_blanks_are_not_attempted():
    for q in ex:
        assert q.evaluate(q.reference()).passed, q.key
        assert q.evaluate(____).status == "not attempted"
        assert q.evaluate(lambda *a: ____).status == "not attempted"


def test_q1_agrees_with_sizing():
    f = ex.q1.reference()
    c = sizing.PUBLISHED["Llama-3-8B"]
    p = sizing.param_breakdown(c)
    assert 32 * f(4096, 32, 8, 14336) == p["attention"] + p["feed-forward"] + p["norms"] - 4096


def test_q1_mistakes():
    assert_incorrect(ex.q1, lambda d, h, kv, f: 4 * d * d + 3 * d * f + 2 * d, "full d_model x d_model")
    assert_incorrect(ex.q1, lambda d, h, kv, f: 2 * d * d + 2 * d * kv * d + 3 * d * f + 2 * d,
                     "head_dim = d_model / n_heads")
    assert_incorrect(ex.q1, lambda d, h, kv, f: 2 * d * d + 2 * d * kv * (d // h) + 2 * d * f + 2 * d,
                     "SwiGLU has three")
    assert_incorrect(ex.q1, lambda d, h, kv, f: 2 * d * d + 2 * d * kv * (d // h) + 3 * d * f, "two RMSNorms")
    assert_incorrect(ex.q1, lambda d, h, kv, f: 2 * d * d + 2 * d * kv * (d // h) + 3 * d * f + 4 * d,
                     "RMSNorm has only")
    assert_incorrect(ex.q1, lambda d, h, kv, f: d * d + 2 * d * kv * (d // h) + 3 * d * f + 2 * d,
                     "attention matrices is missing")
    assert_incorrect(ex.q1, lambda d, h, kv, f: "many", "should be a number")


def test_q2_mistakes():
    assert_incorrect(ex.q2, lambda L, d, h, kv, T, B, nb: 2 * L * h * (d // h) * T * B * nb, "too big")
    assert_incorrect(ex.q2, lambda L, d, h, kv, T, B, nb: L * kv * (d // h) * T * B * nb, "keys AND values")
    assert_incorrect(ex.q2, lambda L, d, h, kv, T, B, nb: 2 * L * kv * (d // h) * T * nb, "batch=")
    assert_incorrect(ex.q2, lambda L, d, h, kv, T, B, nb: 2 * L * kv * (d // h) * T * B, "bytes per number")
    assert_incorrect(ex.q2, lambda L, d, h, kv, T, B, nb: 2 * L * kv * d * T * B * nb, "not d_model")
    assert_incorrect(ex.q2, lambda L, d, h, kv, T, B, nb: 2 * L * kv * (d // h) * T * T * B * nb, "T * T")


def test_q3_mistakes():
    assert_incorrect(ex.q3, lambda n: 12 * n, "one part is missing")
    assert_incorrect(ex.q3, lambda n: 8 * n, "moments are missing")
    assert_incorrect(ex.q3, lambda n: 2 * n, "inference")
    assert_incorrect(ex.q3, lambda n: 4 * n, "one fp32 copy")
    assert_incorrect(ex.q3, lambda n: 18 * n, "gradients are in bf16")
    assert_incorrect(ex.q3, lambda n: 16 * n / 1e9, "GB or GiB")
    assert_incorrect(ex.q3, lambda n: 15 * n, "should be")


def test_q4_mistakes():
    def days(N, D, G, peak, mfu, c=6, per_day=86400, gpus=True, util="mul"):
        eff = peak * mfu if util == "mul" else (peak / mfu if util == "div" else peak)
        return c * N * D / ((G if gpus else 1) * eff * per_day)

    assert_incorrect(ex.q4, lambda *a: days(*a, c=2), "forward pass only")
    assert_incorrect(ex.q4, lambda *a: days(*a, per_day=3600), "hours")
    assert_incorrect(ex.q4, lambda *a: days(*a, per_day=1), "seconds")
    assert_incorrect(ex.q4, lambda *a: days(*a, gpus=False), "one GPU")
    assert_incorrect(ex.q4, lambda *a: days(*a, util="div"), "divided the peak by the utilisation")
    assert_incorrect(ex.q4, lambda *a: days(*a, util="none"), "as if the GPUs reached it")
