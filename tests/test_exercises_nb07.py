"""Notebook 07's exercises: the reference passes, plausible mistakes get the intended message, blanks are blanks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from helpers import assert_incorrect

from course_utils.exercises import ____, load

ex = load("07")


def test_rms_norm_mistakes():
    def layer_norm(x, gamma, eps=1e-6):
        return F.layer_norm(x, (x.shape[-1],), eps=eps) * gamma

    def no_gamma(x, gamma, eps=1e-6):
        return x / torch.sqrt((x ** 2).mean(-1, keepdim=True) + eps)

    def length(x, gamma, eps=1e-6):
        return x / torch.sqrt((x ** 2).sum(-1, keepdim=True) + eps) * gamma

    def batch(x, gamma, eps=1e-6):
        return x / torch.sqrt((x ** 2).mean(0) + eps) * gamma

    def no_eps(x, gamma, eps=1e-6):
        return x / torch.sqrt((x ** 2).mean(-1, keepdim=True)) * gamma

    assert_incorrect(ex.q1, layer_norm, "subtracted the mean")
    assert_incorrect(ex.q1, no_gamma, "gamma is missing")
    assert_incorrect(ex.q1, length, "*sum* of squares")
    assert_incorrect(ex.q1, batch, "batch")
    assert_incorrect(ex.q1, no_eps, "add eps")


def test_swiglu_mistakes():
    assert ex.q2.evaluate(ex.q2.reference()).passed
    assert_incorrect(ex.q2, lambda x, g, u, w: (F.silu(x @ u) * (x @ g)) @ w, "gate branch")
    assert_incorrect(ex.q2, lambda x, g, u, w: (F.gelu(x @ g) * (x @ u)) @ w, "GELU")
    assert_incorrect(ex.q2, lambda x, g, u, w: (torch.sigmoid(x @ g) * (x @ u)) @ w, "gate of GLU")
    assert_incorrect(ex.q2, lambda x, g, u, w: (F.silu(x @ g) + (x @ u)) @ w, "not added")
    assert_incorrect(ex.q2, lambda x, g, u, w: F.silu(x @ g) @ w, "up branch is missing")
    assert_incorrect(ex.q2, lambda x, g, u, w: F.silu((x @ g) * (x @ u)) @ w, "before the product")
    assert_incorrect(ex.q2, lambda x, g, u, w: F.silu(x @ g) * (x @ u), "Project it back")
    assert ex.q2.evaluate(lambda x, g, u, w: ____).status == "not attempted"


def test_post_norm_block_mistakes():
    assert ex.q3.evaluate(ex.q3.reference()).passed

    def pre_norm(x, ln1, attn, ln2, ffn):
        h = x + attn(ln1(x))
        return h + ffn(ln2(h))

    def no_second_norm(x, ln1, attn, ln2, ffn):
        h = ln1(x + attn(x))
        return h + ffn(h)

    def no_residual(x, ln1, attn, ln2, ffn):
        return ln2(ffn(ln1(attn(x))))

    def swapped(x, ln1, attn, ln2, ffn):
        h = ln2(x + attn(x))
        return ln1(h + ffn(h))

    def parallel(x, ln1, attn, ln2, ffn):
        return ln2(x + attn(x) + ffn(x))

    assert_incorrect(ex.q3, pre_norm, "pre-norm block")
    assert_incorrect(ex.q3, no_second_norm, "second LayerNorm is missing")
    assert_incorrect(ex.q3, no_residual, "residual connections are missing")
    assert_incorrect(ex.q3, swapped, "swapped")
    assert_incorrect(ex.q3, parallel, "should see h")
    assert ex.q3.evaluate(lambda x, ln1, attn, ln2, ffn: ____).status == "not attempted"


def test_block_params_mistakes():
    assert_incorrect(ex.q4, lambda d: 12 * d * d, "weight matrices only")
    assert_incorrect(ex.q4, lambda d: 12 * d * d + 9 * d, "LayerNorms are missing")
    assert_incorrect(ex.q4, lambda d: 6 * d * d + 10 * d, "4 times wider")
    assert_incorrect(ex.q4, lambda d: 4 * d * d + 4 * d, "only one of the two sublayers")
    assert_incorrect(ex.q4, lambda d: 12 * d * d + 13 * d + 1, "should be")
