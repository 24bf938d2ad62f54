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


def test_q2_agrees_with_sizing_when_every_layer_is_global():
    l8 = sizing.PUBLISHED["Llama-3-8B"]
    got = ex.q2.reference()(l8.n_layers, 1, l8.kv_heads, l8.head_dim, 8192, 1024, 2)
    assert got == sizing.kv_cache_bytes(l8, 8192, precision="bf16")


def test_q2_mistakes():
    def cache(L, every, kv, hd, T, window, nb, factor=2, n_global=None, local=None):
        g = L // every if n_global is None else n_global(L, every)
        per_local = min(T, window) if local is None else local(T, window)
        return factor * kv * hd * nb * (g * T + (L - g) * per_local)

    assert_incorrect(ex.q2, lambda *a: cache(*a, factor=1), "keys AND values")
    assert_incorrect(ex.q2, lambda L, e, kv, hd, T, w, nb: 2 * kv * hd * nb * L * T, "every layer global")
    assert_incorrect(ex.q2, lambda *a: cache(*a, local=lambda T, w: w), "min(T, window)")
    assert_incorrect(ex.q2, lambda L, e, kv, hd, T, w, nb: 2 * kv * hd * nb * L * min(T, w), "global layers")
    assert_incorrect(ex.q2, lambda *a: cache(*a, n_global=lambda L, e: -(-L // e)), "n_layers // global_every")
    assert_incorrect(ex.q2, lambda *a: "big", "should be a number")


def test_q3_agrees_with_notebook_14s_accounting_without_sharding():
    from course_utils.lora import adam_training_bytes

    assert ex.q3.reference()(7_000_000_000, 8, 0) == adam_training_bytes(7_000_000_000)["total"]


def test_q3_mistakes():
    good = ex.q3.reference()

    def one_too_many(n, g, stage):
        return good(n, g, min(stage + 1, 3)) if stage in (1, 2) else good(n, g, stage)

    def one_too_few(n, g, stage):
        return good(n, g, stage - 1) if stage in (2, 3) else good(n, g, stage)

    def states8(n, g, stage):
        return {0: 12 * n, 1: 4 * n + 8 * n / g, 2: 2 * n + 10 * n / g, 3: 12 * n / g}[stage]

    assert_incorrect(ex.q3, one_too_many, "one part too many")
    assert_incorrect(ex.q3, one_too_few, "one part too few")
    assert_incorrect(ex.q3, lambda n, g, stage: 16 * n / g if stage else 16 * n, "only stage 3")
    assert_incorrect(ex.q3, states8, "12 bytes per parameter")
    assert_incorrect(ex.q3, lambda n, g, stage: 16 * n, "should be")


def test_q4_mistakes():
    def mfu(N, D, G, days, peak, flops_per=6, secs=86400, gpus=True):
        return flops_per * N * D / ((G if gpus else 1) * peak * days * secs)

    assert_incorrect(ex.q4, lambda *a: mfu(*a, flops_per=2), "forward pass only")
    assert_incorrect(ex.q4, lambda *a: mfu(*a, secs=1), "into seconds")
    assert_incorrect(ex.q4, lambda *a: mfu(*a, secs=3600), "into seconds")
    assert_incorrect(ex.q4, lambda *a: mfu(*a, gpus=False), "divide by all of them")
    assert_incorrect(ex.q4, lambda *a: 1 / mfu(*a), "upside down")
    assert_incorrect(ex.q4, lambda *a: 0.4, "should be")
