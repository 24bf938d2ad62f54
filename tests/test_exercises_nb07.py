"""Notebook 07's exercises: the reference passes, plausible mistakes get the intended message, blanks are blanks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_utils.exercises import ____, load

ex = load("07")


def _incorrect(question, answer, fragment):
    fb = question.evaluate(answer)
    assert fb.status == "incorrect", fb
    assert fragment in fb.message, fb.message


@pytest.mark.parametrize("q", list(ex), ids=lambda q: q.key)
def test_reference_passes(q):
    fb = q.evaluate(q.reference())
    assert fb.status == "correct", fb


@pytest.mark.parametrize("q", list(ex), ids=lambda q: q.key)
def test_blank_is_not_attempted(q):
    assert q.evaluate(____).status == "not attempted"

    def returns_blank(*args):
        return ____

    assert q.evaluate(returns_blank).status == "not attempted"


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

    _incorrect(ex.q1, layer_norm, "subtracted the mean")
    _incorrect(ex.q1, no_gamma, "gamma is missing")
    _incorrect(ex.q1, length, "*sum* of squares")
    _incorrect(ex.q1, batch, "batch")
    _incorrect(ex.q1, no_eps, "add eps")


def test_feed_forward_mistakes():
    _incorrect(ex.q2, lambda x, W1, b1, W2, b2: torch.relu(x @ W1 + b1) @ W2 + b2, "ReLU")
    _incorrect(ex.q2, lambda x, W1, b1, W2, b2: (x @ W1 + b1) @ W2 + b2, "activation is missing")
    _incorrect(ex.q2, lambda x, W1, b1, W2, b2: F.gelu((x @ W1 + b1) @ W2 + b2), "after the second layer")
    _incorrect(ex.q2, lambda x, W1, b1, W2, b2: F.gelu(x @ W1) @ W2, "bias is missing")
    _incorrect(ex.q2, lambda x, W1, b1, W2, b2: F.gelu(x @ W1 + b1), "hidden layer")


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

    _incorrect(ex.q3, post_norm, "post-norm")
    _incorrect(ex.q3, no_residual, "residual connections are missing")
    _incorrect(ex.q3, parallel, "should see h")
    _incorrect(ex.q3, one_residual, "second residual")


def test_block_params_mistakes():
    _incorrect(ex.q4, lambda d: 12 * d * d, "weight matrices only")
    _incorrect(ex.q4, lambda d: 12 * d * d + 9 * d, "LayerNorms are missing")
    _incorrect(ex.q4, lambda d: 6 * d * d + 10 * d, "4 times wider")
    _incorrect(ex.q4, lambda d: 4 * d * d + 4 * d, "only one of the two sublayers")
    _incorrect(ex.q4, lambda d: 12 * d * d + 13 * d + 1, "should be")
