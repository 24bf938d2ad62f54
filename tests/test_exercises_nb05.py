"""Notebook 05's exercises: the reference passes, plausible mistakes get the intended message, blanks are blanks."""

from __future__ import annotations

import math

import torch
from helpers import assert_incorrect

from course_utils.exercises import ____, load

ex = load("05")


def _gqa(q, k, v, tile=False, scale=True):
    r = q.shape[1] // k.shape[1]
    k, v = (k.repeat(1, r, 1, 1), v.repeat(1, r, 1, 1)) if tile else (k.repeat_interleave(r, 1),
                                                                      v.repeat_interleave(r, 1))
    s = q @ k.transpose(-2, -1) / (math.sqrt(q.shape[-1]) if scale else 1.0)
    return torch.softmax(s, dim=-1) @ v


def test_q1_grouped_query_attention():
    assert ex.q1.evaluate(ex.q1.reference()).passed
    assert ex.q1.evaluate(lambda q, k, v: _gqa(q, k, v)).passed
    assert_incorrect(ex.q1, lambda q, k, v: _gqa(q, k, v, tile=True), "repeat_interleave")
    assert_incorrect(ex.q1, lambda q, k, v: _gqa(q, k, v, scale=False), "sqrt(d_head)")

    def per_kv_head(q, k, v):
        return torch.softmax(k @ k.transpose(-2, -1), dim=-1) @ v

    assert_incorrect(ex.q1, per_kv_head, "one per K/V head")
    assert_incorrect(ex.q1, lambda q, k, v: q[..., :2], "wrong shape")
    assert ex.q1.evaluate(lambda q, k, v: ____).status == "not attempted"


def test_q2_gqa_param_count():
    def count(d, h, n_kv, bias=True, kv_bias=None):
        kv = n_kv * (d // h)
        return 2 * d * d + 2 * d * kv + ((2 * d + 2 * (kv if kv_bias is None else kv_bias)) if bias else 0)

    assert ex.q2.evaluate(ex.q2.reference()).passed
    assert ex.q2.evaluate(count).passed
    assert_incorrect(ex.q2, lambda d, h, n, bias=True: 4 * d * d + (4 * d if bias else 0), "ordinary multi-head")
    assert_incorrect(ex.q2, lambda d, h, n, bias=True: 4 * d * n * (d // h) + (4 * n * (d // h) if bias else 0),
                     "only K and V are shared")
    assert_incorrect(ex.q2, lambda d, h, n, bias=True: count(d, h, n, False), "off by the biases")
    assert_incorrect(ex.q2, lambda d, h, n, bias=True: count(d, h, n, True), "with bias=False")
    assert_incorrect(ex.q2, lambda d, h, n, bias=True: count(d, h, n, bias, kv_bias=d), "n_kv_heads * d_head")
    assert ex.q2.evaluate(lambda d, h, n, bias=True: ____).status == "not attempted"


def test_q3_mistakes():
    assert_incorrect(ex.q3, lambda d, h, bias=True: 4 * d * d, "off by the biases")
    assert_incorrect(ex.q3, lambda d, h, bias=True: 4 * d * d + 4 * d, "with bias=False there are no bias vectors")
    assert_incorrect(ex.q3, lambda d, h, bias=True: 3 * d * d + (3 * d if bias else 0), "not the output projection")
    assert_incorrect(ex.q3, lambda d, h, bias=True: 4 * h * (d // h) ** 2 + (4 * d if bias else 0),
               "h small d_head x d_head matrices")
    assert_incorrect(ex.q3, lambda d, h, bias=True: h * (4 * d * d + (4 * d if bias else 0)),
               "multiplied by the number of heads")
    assert_incorrect(ex.q3, lambda d, h, bias=True: "many", "whole number")
    assert_incorrect(ex.q3, lambda d, h, bias=True: 7, "not right")


def _mha(x, w_q, w_k, w_v, w_o, n_heads, scale=None, project=True, mix=False):
    B, T, d = x.shape
    dh = d // n_heads

    def split(t):
        return t.reshape(B, n_heads, T, dh) if mix else t.view(B, T, n_heads, dh).transpose(1, 2)

    q, k, v = split(x @ w_q), split(x @ w_k), split(x @ w_v)
    w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(scale or dh), dim=-1)
    out = (w @ v).transpose(1, 2).reshape(B, T, d)
    return out @ w_o if project else out


def test_q4_mistakes():
    assert_incorrect(ex.q4, lambda x, *w: _mha(x, *w[:4], w[4], scale=x.shape[-1]), "sqrt(d_model)")
    assert_incorrect(ex.q4, lambda x, *w: _mha(x, *w[:4], w[4], project=False), "forgot the output projection")
    assert_incorrect(ex.q4, lambda x, *w: _mha(x, *w[:4], 1), "one head over all of d_model")
    assert_incorrect(ex.q4, lambda x, *w: _mha(x, *w[:4], w[4], mix=True), "heads are mixed up")
    assert_incorrect(ex.q4, lambda x, *w: _mha(x, *w[:4], w[4]).transpose(1, 2)[..., :1], "wrong shape")


def test_learner_crash_is_feedback():
    def crashes(q, k, v):
        raise ValueError("oops")

    fb = ex.q1.evaluate(crashes)
    assert fb.status == "incorrect" and "ValueError" in fb.message
