"""Notebook 16's exercises: the reference passes, plausible mistakes get the intended message, blanks are blanks,
and each reference agrees with an independent implementation (the gguf package, transformers' rotary embedding,
a softmax over a real two-step computation)."""

from __future__ import annotations

import numpy as np
import torch
from gguf import GGMLQuantizationType
from gguf.quants import dequantize
from helpers import assert_incorrect

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


def test_halves_to_pairs_matches_transformers_rope():
    # transformers rotates halves of the rotate-half layout; the course (notebook 06) rotates neighbouring pairs of
    # the pairs layout. With the answer's weights, the rotated queries and keys must be the same vectors up to the
    # layout, and every score equal.
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    from course_utils.positional import apply_rope, rope_angles

    f = ex.q2.reference()
    g = torch.Generator().manual_seed(1)
    n_heads, d_head, d_in, T = 3, 16, 24, 7
    wq_h, wk_h = torch.randn(n_heads * d_head, d_in, generator=g), torch.randn(n_heads * d_head, d_in, generator=g)
    x = torch.randn(1, T, d_in, generator=g, dtype=torch.float64)

    def heads(w):                                  # (1, n_heads, T, d_head)
        return (x @ w.double().T).view(1, T, n_heads, d_head).transpose(1, 2)

    angles = rope_angles(T, d_head, 10_000.0)       # (T, d_head / 2)
    cos, sin = torch.cat([angles.cos()] * 2, -1)[None], torch.cat([angles.sin()] * 2, -1)[None]
    q_h, k_h = apply_rotary_pos_emb(heads(wq_h), heads(wk_h), cos, sin)
    q_p, k_p = apply_rope(heads(f(wq_h, n_heads))), apply_rope(heads(f(wk_h, n_heads)))
    evens_then_odds = torch.cat([torch.arange(0, d_head, 2), torch.arange(1, d_head, 2)])
    torch.testing.assert_close(q_p[..., evens_then_odds], q_h)
    torch.testing.assert_close(q_p @ k_p.mT, q_h @ k_h.mT)


def test_halves_to_pairs_mistakes():
    def unmoved(w, n):
        return w

    def evens_then_odds(w, n):
        dh = w.shape[0] // n
        order = torch.cat([torch.arange(0, dh, 2), torch.arange(1, dh, 2)])
        return w.reshape(n, dh, -1)[:, order].reshape(w.shape)

    def one_head(w, n):
        return ex.q2.reference()(w, 1)

    assert_incorrect(ex.q2, unmoved, "have not moved")
    assert_incorrect(ex.q2, evens_then_odds, "inverse")
    assert_incorrect(ex.q2, one_head, "EACH head")
    assert_incorrect(ex.q2, lambda w, n: w[:, :3], "keeps its shape")
    assert_incorrect(ex.q2, lambda w, n: w.flip(0), "halves_to_pairs")


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
