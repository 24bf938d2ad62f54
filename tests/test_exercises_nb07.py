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


def test_layer_norm_equals_torch_when_right():
    layer_norm = ex.q1.reference()
    x, g, b = torch.randn(3, 4, 10), torch.randn(10), torch.randn(10)
    assert torch.allclose(layer_norm(x, g, b), F.layer_norm(x, (10,), g, b), atol=1e-5)


def test_layer_norm_mistakes():
    def unbiased(x, gamma, beta, eps=1e-5):
        return (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True) + eps) * gamma + beta

    def no_affine(x, gamma, beta, eps=1e-5):
        return (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + eps)

    def batch_norm(x, gamma, beta, eps=1e-5):
        return (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + eps) * gamma + beta

    def no_eps(x, gamma, beta, eps=1e-5):
        return (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True, unbiased=False) * gamma + beta

    _incorrect(ex.q1, unbiased, "unbiased variance")
    _incorrect(ex.q1, no_affine, "gamma and beta are missing")
    _incorrect(ex.q1, batch_norm, "batch norm")
    _incorrect(ex.q1, no_eps, "Add eps")


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
