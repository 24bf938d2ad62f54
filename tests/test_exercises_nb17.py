"""Notebook 17's exercises: the reference passes, plausible mistakes get the intended message, blanks are blanks."""

from __future__ import annotations

import statistics

import torch
from helpers import assert_incorrect

from course_utils import probes
from course_utils.exercises import ____, load
from course_utils.exercises.nb17 import CASES

ex = load("17")


def test_references_pass_and_blanks_are_not_attempted():
    for q in ex:
        assert q.evaluate(q.reference()).status == "correct", q.key
        assert q.evaluate(____).status == "not attempted", q.key


def test_induction_strength_agrees_with_probes_and_mistakes():
    f = ex.q1.reference()
    A = torch.softmax(torch.randn(2, 3, 9, 9).masked_fill(torch.ones(9, 9, dtype=torch.bool).triu(1), -1e9), -1)
    torch.testing.assert_close(f(A, 4, 1), probes.induction_score(A, 4, offset=1))

    def dup(A, n, start):
        i = torch.arange(start + n, start + 2 * n)
        return A[..., i, i - n].mean(-1)

    def too_far(A, n, start):
        i = torch.arange(start + n, start + 2 * n)
        return A[..., i, i - n - 1].mean(-1)

    def short(A, n, start):
        i = torch.arange(start + n, start + 2 * n - 1)
        return A[..., i, i - n + 1].mean(-1)

    def per_query(A, n, start):
        i = torch.arange(start + n, start + 2 * n)
        return A[..., i, i - n + 1]

    assert_incorrect(ex.q1, dup, "DUPLICATE-token")
    assert_incorrect(ex.q1, too_far, "one step too far")
    assert_incorrect(ex.q1, short, "left out the last position")
    assert_incorrect(ex.q1, per_query, "wrong shape")
    assert_incorrect(ex.q1, lambda A, n, start: A.sum(), "wrong shape")


def test_lens_readout_agrees_with_the_model_and_mistakes():
    from course_utils.model import GPTConfig, MiniGPT

    torch.manual_seed(0)
    m = MiniGPT(GPTConfig(vocab_size=19, d_model=16, n_heads=2, n_layers=1, norm="rmsnorm", bias=False,
                          norm_eps=1e-5)).eval()
    with torch.no_grad():
        m.ln_f.weight.add_(torch.rand(16))
        x = torch.randn(16) * 3
        torch.testing.assert_close(ex.q2.reference()(x, m.ln_f.weight, 1e-5, m.tok_emb.weight),
                                   probes.logit_lens(m, x))

    def rms(x, eps):
        return x / torch.sqrt(x.pow(2).mean() + eps)

    assert_incorrect(ex.q2, lambda x, g, eps, E: E @ x, "skipped the final norm")
    assert_incorrect(ex.q2, lambda x, g, eps, E: E @ torch.nn.functional.layer_norm(x, x.shape, g, None, eps),
                     "LayerNorm")
    assert_incorrect(ex.q2, lambda x, g, eps, E: E @ rms(x, eps), "gain g")
    assert_incorrect(ex.q2, lambda x, g, eps, E: torch.softmax(E @ (rms(x, eps) * g), -1), "not the probabilities")
    assert_incorrect(ex.q2, lambda x, g, eps, E: E @ (x / (x.pow(2).mean().sqrt() + eps) * g), "inside the square")
    assert_incorrect(ex.q2, lambda x, g, eps, E: E.T @ E @ (rms(x, eps) * g), "wrong shape")


def test_verdict_rule_and_mistakes():
    f = ex.q3.reference()
    assert [f(t, d) for t, d in CASES] == [True, True, False, False, False, False, False]
    # the cases separate the rule from each plausible mistake
    assert_incorrect(ex.q3, lambda t, d: t > statistics.mean(d), "MEAN")
    assert_incorrect(ex.q3, lambda t, d: t > max(d), "above every random draw")
    assert_incorrect(ex.q3, lambda t, d: t > statistics.mean(d) + 2 * statistics.pstdev(d), "sample standard")
    assert_incorrect(ex.q3, lambda t, d: t > statistics.mean(d) + statistics.stdev(d), "mean + 2 x standard deviation")
    assert_incorrect(ex.q3, lambda t, d: "holds", "True or False")
