"""Notebook 16's exercises: the reference passes, plausible mistakes get the intended message, blanks are blanks,
and each reference agrees with an independent implementation (the gguf package, course_utils.sizing, a softmax
over a real two-step computation)."""

from __future__ import annotations

import numpy as np
import torch
from gguf import GGMLQuantizationType
from gguf.quants import dequantize
from helpers import assert_incorrect

from course_utils import sizing
from course_utils.exercises import ____, load
from course_utils.exercises.nb16 import _q4_0_blocks, q4_0_reference

ex = load("16")


def test_references_pass_and_blanks_are_not_attempted():
    for q in ex:
        assert q.evaluate(q.reference()).status == "correct", q.key
        assert q.evaluate(____).status == "not attempted", q.key


def test_q4_0_reference_is_bit_exact_against_gguf():
    f = ex.q1.reference()
    for block in _q4_0_blocks():
        want = dequantize(np.frombuffer(block, dtype=np.uint8), GGMLQuantizationType.Q4_0).reshape(-1)
        np.testing.assert_array_equal(q4_0_reference(block), want)
        np.testing.assert_array_equal(np.asarray(f(block), dtype=np.float32), want)


def _nibbles(block):
    raw = np.frombuffer(block, dtype=np.uint8)
    return float(raw[:2].view(np.float16)[0]), (raw[2:] & 0x0F).astype(np.float32), (raw[2:] >> 4).astype(np.float32)


def test_q4_0_mistakes():
    def no_offset(block):
        d, lo, hi = _nibbles(block)
        return d * np.concatenate([lo, hi])

    def interleaved(block):
        d, lo, hi = _nibbles(block)
        return d * (np.stack([lo, hi], axis=1).reshape(-1) - 8)

    def swapped(block):
        d, lo, hi = _nibbles(block)
        return d * (np.concatenate([hi, lo]) - 8)

    def no_scale(block):
        _, lo, hi = _nibbles(block)
        return np.concatenate([lo, hi]) - 8

    def offset_after(block):
        d, lo, hi = _nibbles(block)
        return d * np.concatenate([lo, hi]) - 8

    assert_incorrect(ex.q1, no_offset, "subtract 8")
    assert_incorrect(ex.q1, interleaved, "do not interleave")
    assert_incorrect(ex.q1, swapped, "swapped")
    assert_incorrect(ex.q1, no_scale, "scale d is missing")
    assert_incorrect(ex.q1, offset_after, "before scaling")
    assert_incorrect(ex.q1, lambda block: np.zeros(16), "32 weights")


def test_kv_cache_agrees_with_sizing():
    f = ex.q2.reference()
    cfg = sizing.ModelConfig(49152, 8192, 576, 30, 9, n_kv_heads=3)
    for T, precision, b in ((8192, "bf16", 2), (1000, "fp32", 4)):
        assert f(30, 576, 9, 3, T, b) == sizing.kv_cache_bytes(cfg, T, precision=precision)


def test_kv_cache_mistakes():
    assert_incorrect(ex.q2, lambda L, d, h, k, T, b: 2 * L * d * T * b, "all")
    assert_incorrect(ex.q2, lambda L, d, h, k, T, b: L * k * (d // h) * T * b, "factor 2")
    assert_incorrect(ex.q2, lambda L, d, h, k, T, b: 2 * L * k * (d // h) * T, "bytes_per_number")
    assert_incorrect(ex.q2, lambda L, d, h, k, T, b: 2 * k * (d // h) * T * b, "one layer")
    assert_incorrect(ex.q2, lambda L, d, h, k, T, b: 7, "got 7")
    assert_incorrect(ex.q2, lambda L, d, h, k, T, b: "bytes", "number of bytes")


def test_word_probability_is_the_chain_rule_on_a_tiny_model():
    # a 2-step "model": the second logits depend on the first token, as in a real forward pass
    f = ex.q3.reference()
    g = torch.Generator().manual_seed(0)
    E = torch.randn(6, 6, generator=g)
    z1 = torch.randn(6, generator=g)
    joint = torch.softmax(z1, -1)[:, None] * torch.softmax(E, -1)   # P(a, b) for all pairs
    assert torch.isclose(joint.sum(), torch.tensor(1.0))
    for a in range(6):
        for b in range(6):
            torch.testing.assert_close(f(z1, E[a], a, b), joint[a, b])


def test_word_probability_mistakes():
    sm = torch.softmax
    assert_incorrect(ex.q3, lambda z1, z2, a, b: sm(z1, -1)[a] + sm(z2, -1)[b], "added")
    assert_incorrect(ex.q3, lambda z1, z2, a, b: sm(z1, -1)[a], "only the first")
    assert_incorrect(ex.q3, lambda z1, z2, a, b: sm(z1, -1)[a] * sm(z1, -1)[b], "SECOND softmax")
    assert_incorrect(ex.q3, lambda z1, z2, a, b: z1[a] * z2[b], "logits into probabilities")
    assert_incorrect(ex.q3, lambda z1, z2, a, b: (sm(z1, -1)[a] * sm(z2, -1)[b]).log(), "log-probability")
    assert_incorrect(ex.q3, lambda z1, z2, a, b: sm(z1, -1)[b] * sm(z2, -1)[a], "swapped")
    assert_incorrect(ex.q3, lambda z1, z2, a, b: sm(z1, -1)[:2], "one number")
