"""Notebook 05's exercises: the reference passes, plausible mistakes get the intended message, blanks are blanks."""

from __future__ import annotations

import math

import torch
from helpers import assert_incorrect

from course_utils.exercises import load

ex = load("05")


def test_q1_mistakes():
    def no_transpose(x, n_heads):
        B, T, d = x.shape
        return x.view(B, T, n_heads, d // n_heads)

    def view_straight(x, n_heads):
        B, T, d = x.shape
        return x.view(B, n_heads, T, d // n_heads)

    def interleaved(x, n_heads):
        B, T, d = x.shape
        return x.view(B, T, d // n_heads, n_heads).permute(0, 3, 1, 2)

    assert_incorrect(ex.q1, no_transpose, "did you forget the transpose?")
    assert_incorrect(ex.q1, no_transpose, "expected (B=2, h=3, T=5, d_head=4), got (2, 5, 3, 4)")
    assert_incorrect(ex.q1, view_straight, "heads are mixed up: you used view")
    assert_incorrect(ex.q1, interleaved, "heads are interleaved")
    assert_incorrect(ex.q1, lambda x, n_heads: x, "you still have 3 dims")


def test_q2_mistakes():
    def no_transpose(x):
        B, h, T, dh = x.shape
        return x.reshape(B, T, h * dh)

    def view_after_transpose(x):
        B, h, T, dh = x.shape
        return x.transpose(1, 2).view(B, T, h * dh)

    def not_flattened(x):
        return x.transpose(1, 2)

    def interleaved(x):
        B, h, T, dh = x.shape
        return x.permute(0, 2, 3, 1).reshape(B, T, h * dh)

    assert_incorrect(ex.q2, no_transpose, "heads are mixed up")
    assert_incorrect(ex.q2, view_after_transpose, ".contiguous()")
    assert_incorrect(ex.q2, not_flattened, "did not flatten them")
    assert_incorrect(ex.q2, interleaved, "interleaved")


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
    def crashes(x, n_heads):
        raise ValueError("oops")

    fb = ex.q1.evaluate(crashes)
    assert fb.status == "incorrect" and "ValueError" in fb.message
