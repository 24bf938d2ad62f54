"""Notebook 09's exercises: the reference passes, plausible mistakes get the intended message, blanks are blanks."""

from __future__ import annotations

import torch
from helpers import assert_incorrect

from course_utils.exercises import ____, load

ex = load("09")


def _min_p(z, m, strict=False, on_logits=False, absolute=False, one_minus=False, zero=False):
    p = torch.softmax(z, -1)
    top = (z if on_logits else p).amax(-1, keepdim=True)
    thr = (1 - m if one_minus else m) * (1 if absolute else top)
    x = z if on_logits else p
    keep = x > thr if strict else x >= thr
    return z.masked_fill(~keep, 0.0 if zero else float("-inf"))


def test_q1_min_p_mistakes():
    assert ex.q1.evaluate(ex.q1.reference()).passed
    assert ex.q1.evaluate(lambda z, m: _min_p(z, m)).passed
    assert_incorrect(ex.q1, lambda z, m: _min_p(z, m, absolute=True), "scales the threshold")
    assert_incorrect(ex.q1, lambda z, m: _min_p(z, m, on_logits=True), "you compared logits")
    assert_incorrect(ex.q1, lambda z, m: _min_p(z, m, one_minus=True), "not (1 - min_p)")
    assert_incorrect(ex.q1, lambda z, m: _min_p(z, m, zero=True), "not 0")
    assert_incorrect(ex.q1, lambda z, m: _min_p(z, m) * 2, "logits changed")
    assert ex.q1.evaluate(lambda z, m: ____).status == "not attempted"


def test_q2_mistakes():
    def kth_value_compare(logits, k):   # the classic version: keeps every token tied at the k-th value
        kth = torch.topk(logits, k, dim=-1).values[..., -1:]
        return logits.masked_fill(logits < kth, float("-inf"))

    def zeros_not_inf(logits, k):
        idx = torch.topk(logits, k, dim=-1).indices
        return torch.zeros_like(logits).scatter(-1, idx, logits.gather(-1, idx))

    def smallest(logits, k):
        idx = torch.topk(logits, k, dim=-1, largest=False).indices
        return torch.full_like(logits, float("-inf")).scatter(-1, idx, logits.gather(-1, idx))

    def off_by_one(logits, k):
        kth = torch.topk(logits, min(k + 1, logits.shape[-1]), dim=-1).values[..., -1:]
        return logits.masked_fill(logits < kth, float("-inf"))

    def probs(logits, k):
        idx = torch.topk(logits, k, dim=-1).indices
        p = torch.softmax(logits, -1)
        return torch.full_like(logits, float("-inf")).scatter(-1, idx, p.gather(-1, idx))

    assert_incorrect(ex.q2, kth_value_compare, "ties at the k-th largest value")
    assert_incorrect(ex.q2, kth_value_compare, "kept 3 tokens")
    assert_incorrect(ex.q2, zeros_not_inf, "not -inf")
    assert_incorrect(ex.q2, smallest, "k smallest")
    assert_incorrect(ex.q2, off_by_one, "kept 4 tokens in a row; it should keep exactly 3. An off-by-one?")
    assert_incorrect(ex.q2, probs, "you returned probabilities")


def test_q3_mistakes():
    def not_renormalised(probs, p):
        s, order = torch.sort(probs, dim=-1, descending=True)
        keep = torch.zeros_like(s, dtype=torch.bool).scatter(-1, order, (s.cumsum(-1) - s) < p)
        return probs * keep

    def drops_crossing_token(probs, p):
        s, order = torch.sort(probs, dim=-1, descending=True)
        keep = torch.zeros_like(s, dtype=torch.bool).scatter(-1, order, s.cumsum(-1) <= p)
        kept = probs * keep
        return kept / kept.sum(-1, keepdim=True)

    def one_too_many(probs, p):
        s, order = torch.sort(probs, dim=-1, descending=True)
        keep = torch.zeros_like(s, dtype=torch.bool).scatter(-1, order, (s.cumsum(-1) - s) <= p)
        kept = probs * keep
        return kept / kept.sum(-1, keepdim=True)

    def unsorted(probs, p):
        keep = (probs.cumsum(-1) - probs) < p
        kept = probs * keep
        return kept / kept.sum(-1, keepdim=True)

    def left_sorted(probs, p):
        s, _ = torch.sort(probs, dim=-1, descending=True)
        kept = s * ((s.cumsum(-1) - s) < p)
        return kept / kept.sum(-1, keepdim=True)

    assert_incorrect(ex.q3, not_renormalised, "don't sum to 1 after filtering")
    assert_incorrect(ex.q3, drops_crossing_token, "dropped the token that crosses p")
    assert_incorrect(ex.q3, one_too_many, "*smallest* set")
    assert_incorrect(ex.q3, unsorted, "vocabulary order")
    assert_incorrect(ex.q3, left_sorted, "sorted order")


def test_q4_mistakes():
    def first_position(model, idx, n):
        bs = model.config.block_size
        for _ in range(n):
            logits, _ = model(idx[:, -bs:])
            idx = torch.cat([idx, logits[:, 0].argmax(-1, keepdim=True)], 1)
        return idx

    def no_crop(model, idx, n):
        for _ in range(n):
            logits, _ = model(idx)
            idx = torch.cat([idx, logits[:, -1].argmax(-1, keepdim=True)], 1)
        return idx

    def only_new(model, idx, n):
        out = []
        bs = model.config.block_size
        for _ in range(n):
            logits, _ = model(idx[:, -bs:])
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            idx = torch.cat([idx, nxt], 1)
            out.append(nxt)
        return torch.cat(out, 1)

    def sampling(model, idx, n):
        bs = model.config.block_size
        for _ in range(n):
            logits, _ = model(idx[:, -bs:])
            nxt = torch.multinomial(torch.softmax(logits[:, -1] / 3.0, -1), 1)
            idx = torch.cat([idx, nxt], 1)
        return idx

    assert_incorrect(ex.q4, first_position, "logits[:, -1]")
    assert_incorrect(ex.q4, no_crop, "idx[:, -block_size:]")
    assert_incorrect(ex.q4, only_new, "return the prompt followed by them")
    assert_incorrect(ex.q4, sampling, "does not sample")


def test_q4_check_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    a = torch.rand(3)
    torch.manual_seed(123)
    ex.q4.evaluate(ex.q4.reference())
    assert torch.equal(torch.rand(3), a)


def test_q4_template_is_not_attempted():
    def greedy_generate(model, idx, max_new_tokens):   # the answer cell as the learner first sees it
        for _ in range(max_new_tokens):
            next_id = ____
            idx = torch.cat([idx, next_id], dim=1)
        return idx

    assert ex.q4.evaluate(greedy_generate).status == "not attempted"
