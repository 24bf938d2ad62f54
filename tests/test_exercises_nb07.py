"""Notebook 07's exercises: the reference passes, plausible mistakes get the intended message, blanks are blanks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from helpers import assert_incorrect

from course_utils.exercises import load

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


def test_feed_forward_mistakes():
    assert_incorrect(ex.q2, lambda x, W1, b1, W2, b2: torch.relu(x @ W1 + b1) @ W2 + b2, "ReLU")
    assert_incorrect(ex.q2, lambda x, W1, b1, W2, b2: (x @ W1 + b1) @ W2 + b2, "activation is missing")
    assert_incorrect(ex.q2, lambda x, W1, b1, W2, b2: F.gelu((x @ W1 + b1) @ W2 + b2), "after the second layer")
    assert_incorrect(ex.q2, lambda x, W1, b1, W2, b2: F.gelu(x @ W1) @ W2, "bias is missing")
    assert_incorrect(ex.q2, lambda x, W1, b1, W2, b2: F.gelu(x @ W1 + b1), "hidden layer")


def test_pre_norm_block_mistakes():
    def post_norm(x, ln1, attn, ln2, ffn):
        h = ln1(x + attn(x))
        return ln2(h + ffn(h))

    def no_residual(x, ln1, attn, ln2, ffn):
        return ffn(ln2(attn(ln1(x))))

    def parallel(x, ln1, attn, ln2, ffn):
        return x + attn(ln1(x)) + ffn(ln2(x))

    def one_residual(x, ln1, attn, ln2, ffn):
        h = x + attn(ln1(x))
        return ffn(ln2(h))

    assert_incorrect(ex.q3, post_norm, "post-norm")
    assert_incorrect(ex.q3, no_residual, "residual connections are missing")
    assert_incorrect(ex.q3, parallel, "should see h")
    assert_incorrect(ex.q3, one_residual, "second residual")


def test_block_params_mistakes():
    assert_incorrect(ex.q4, lambda d: 12 * d * d, "weight matrices only")
    assert_incorrect(ex.q4, lambda d: 12 * d * d + 9 * d, "LayerNorms are missing")
    assert_incorrect(ex.q4, lambda d: 6 * d * d + 10 * d, "4 times wider")
    assert_incorrect(ex.q4, lambda d: 4 * d * d + 4 * d, "only one of the two sublayers")
    assert_incorrect(ex.q4, lambda d: 12 * d * d + 13 * d + 1, "should be")
