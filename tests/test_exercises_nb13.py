"""Notebook 13's exercises: the reference passes, plausible mistakes get the intended message, blanks are blanks."""

from __future__ import annotations

import torch
from helpers import assert_incorrect

from course_utils.exercises import load

ex = load("13")


def test_references_pass():
    for q in ex:
        assert q.evaluate(q.reference()).passed, q.key


def test_whole_word_masking_mistakes():
    def naive_index(ids, word_ids, chosen, mask_id):          # -1 wraps around to the last word
        hit = chosen[word_ids]
        return torch.where(hit, mask_id, ids), torch.where(hit, ids, -100)

    def hit_of(word_ids, chosen):
        return (word_ids >= 0) & chosen[word_ids.clamp(min=0)]

    def zero_targets(ids, word_ids, chosen, mask_id):
        hit = hit_of(word_ids, chosen)
        return torch.where(hit, mask_id, ids), torch.where(hit, ids, 0)

    def all_targets(ids, word_ids, chosen, mask_id):
        hit = hit_of(word_ids, chosen)
        return torch.where(hit, mask_id, ids), ids

    def mask_targets(ids, word_ids, chosen, mask_id):
        hit = hit_of(word_ids, chosen)
        return torch.where(hit, mask_id, ids), torch.where(hit, mask_id, -100)

    def first_char_only(ids, word_ids, chosen, mask_id):
        hit = hit_of(word_ids, chosen)
        first = torch.cat([torch.tensor([True]), word_ids[1:] != word_ids[:-1]])
        return torch.where(hit & first, mask_id, ids), torch.where(hit, ids, -100)

    assert_incorrect(ex.q1, naive_index, "chosen_words[-1]")
    assert_incorrect(ex.q1, zero_targets, "0 is a real symbol")
    assert_incorrect(ex.q1, all_targets, "targets hold every character")
    assert_incorrect(ex.q1, mask_targets, "*original*")
    assert_incorrect(ex.q1, first_char_only, "only the first character")
    assert_incorrect(ex.q1, lambda ids, w, c, m: (ids, ids), "inputs are unchanged")
    assert_incorrect(ex.q1, lambda ids, w, c, m: ids, "two tensors")


def test_sentence_vectors_agree_with_torch_on_unpadded_sentences():
    h = torch.randn(2, 4, 3)
    assert torch.allclose(ex.q2.reference()(h, torch.ones(2, 4, dtype=torch.bool)), h.mean(1))


def test_sentence_vectors_mistakes():
    def m_of(pad, h):
        return pad[..., None].to(h.dtype)

    assert_incorrect(ex.q2, lambda h, pad: h.mean(1), "padded positions are in the average")
    assert_incorrect(ex.q2, lambda h, pad: (h * m_of(pad, h)).sum(1) / h.shape[1], "divided by S")
    assert_incorrect(ex.q2, lambda h, pad: (h * (1 - m_of(pad, h))).sum(1) / (h.shape[1] - m_of(pad, h).sum(1))
                     .clamp(min=1), "wrong way round")
    assert_incorrect(ex.q2, lambda h, pad: (h * m_of(pad, h)).sum(1), "that is the sum")
    assert_incorrect(ex.q2, lambda h, pad: (h * m_of(pad, h)).sum(1) / m_of(pad, h).sum(), "its own number")
    assert_incorrect(ex.q2, lambda h, pad: h * m_of(pad, h), "one vector per sentence")
    assert_incorrect(ex.q2, lambda h, pad: h.mean(2), "averages over the features")
    assert_incorrect(ex.q2, lambda h, pad: (h * m_of(pad, h)).sum(1, keepdim=True) / m_of(pad, h).sum(1, keepdim=True),
                     "drop the position axis")


def test_decoder_mask_mistakes():
    def causal(T):
        return torch.ones(T, T, dtype=torch.bool).tril()

    def real(lengths, T):
        return torch.arange(T)[None] < lengths[:, None]

    B = lambda lengths: len(lengths)   # noqa: E731
    assert_incorrect(ex.q3, lambda L, T: causal(T)[None].expand(B(L), T, T).clone(), "only the causal part")
    assert_incorrect(ex.q3, lambda L, T: real(L, T)[:, None, :].expand(B(L), T, T).clone(), "only the padding")
    assert_incorrect(ex.q3, lambda L, T: causal(T)[None] & real(L, T)[:, :, None], "rows (queries)")
    assert_incorrect(ex.q3, lambda L, T: causal(T).T[None] & real(L, T)[:, None, :], "wrong way round")
    assert_incorrect(ex.q3, lambda L, T: causal(T)[None] | real(L, T)[:, None, :], "OR")
    assert_incorrect(ex.q3, lambda L, T: causal(T), "(B, T, T)")
    assert_incorrect(ex.q3, lambda L, T: (causal(T)[None] & real(L, T)[:, None, :]).float(), "boolean")


def test_params_mistakes():
    def enc(d, f):
        return 4 * d * d + 4 * d + 2 * d * f + f + d + 4 * d

    assert_incorrect(ex.q4, lambda d, f, ne, nd: (ne + nd) * enc(d, f), "every layer counted as an encoder")
    assert_incorrect(ex.q4, lambda d, f, ne, nd: ne * enc(d, f) + nd * (enc(d, f) + 4 * d * d + 4 * d),
                     "third LayerNorm")
    assert_incorrect(ex.q4, lambda d, f, ne, nd: ne * enc(d, 4 * d) + nd * (enc(d, 4 * d) + 4 * d * d + 6 * d),
                     "4 d")
    assert_incorrect(ex.q4, lambda d, f, ne, nd: ne * (4 * d * d + 2 * d * f) + nd * (8 * d * d + 2 * d * f),
                     "only the weight matrices")
    assert_incorrect(ex.q4, lambda d, f, ne, nd: 1, "should be")


def test_torch_agrees_with_the_q4_reference():
    import torch.nn as nn

    n = lambda m: sum(p.numel() for p in m.parameters())   # noqa: E731
    d, f = 64, 96
    want = 2 * n(nn.TransformerEncoderLayer(d, 4, f)) + 3 * n(nn.TransformerDecoderLayer(d, 4, f))
    assert ex.q4.reference()(d, f, 2, 3) == want
