"""Notebook 13's exercises: the reference passes, plausible mistakes get the intended message, blanks are blanks."""

from __future__ import annotations

import math

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


def _attend(q, k, v, mask, scale):
    s = q @ k.transpose(-2, -1) * scale
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return torch.softmax(s, -1) @ v


def test_cross_attend_mistakes():
    def no_mask(x, m, Wq, Wk, Wv, pad):
        return _attend(x @ Wq, m @ Wk, m @ Wv, None, 1 / math.sqrt(Wq.shape[1]))

    def inverted(x, m, Wq, Wk, Wv, pad):
        return _attend(x @ Wq, m @ Wk, m @ Wv, ~pad[:, None, :], 1 / math.sqrt(Wq.shape[1]))

    def unscaled(x, m, Wq, Wk, Wv, pad):
        return _attend(x @ Wq, m @ Wk, m @ Wv, pad[:, None, :], 1.0)

    def scaled_by_d(x, m, Wq, Wk, Wv, pad):
        return _attend(x @ Wq, m @ Wk, m @ Wv, pad[:, None, :], 1 / math.sqrt(x.shape[-1]))

    def swapped(x, m, Wq, Wk, Wv, pad):                        # queries from the memory
        return _attend(m @ Wq, x @ Wk, x @ Wv, None, 1 / math.sqrt(Wq.shape[1]))

    def self_attention(x, m, Wq, Wk, Wv, pad):
        return _attend(x @ Wq, x @ Wk, x @ Wv, None, 1 / math.sqrt(Wq.shape[1]))

    def weights_only(x, m, Wq, Wk, Wv, pad):
        s = (x @ Wq) @ (m @ Wk).transpose(-2, -1) / math.sqrt(Wq.shape[1])
        return torch.softmax(s.masked_fill(~pad[:, None, :], float("-inf")), -1)

    def mask_queries(x, m, Wq, Wk, Wv, pad):
        s = (x @ Wq) @ (m @ Wk).transpose(-2, -1) / math.sqrt(Wq.shape[1])
        q_pad = torch.arange(s.shape[1])[None, :, None] < pad.sum(1)[:, None, None] - 3
        return torch.softmax(s.masked_fill(~q_pad, float("-inf")), -1) @ (m @ Wv)

    assert_incorrect(ex.q2, no_mask, "padding is not masked")
    assert_incorrect(ex.q2, inverted, "wrong way round")
    assert_incorrect(ex.q2, unscaled, "not scaled")
    assert_incorrect(ex.q2, scaled_by_d, "sqrt(d_k)")
    assert_incorrect(ex.q2, swapped, "*source* position")
    assert_incorrect(ex.q2, self_attention, "self-attention")
    assert_incorrect(ex.q2, weights_only, "attention weights")
    assert_incorrect(ex.q2, mask_queries, "NaN")


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
