"""Notebook 10's exercises: the reference passes, plausible mistakes get the intended message, blanks are blanks."""

from __future__ import annotations

import math

from helpers import assert_incorrect

from course_utils import bpe
from course_utils.exercises import ____, load
from course_utils.exercises.nb10 import _first_seen, _ref_learn

ex = load("10")


def test_references_pass_and_blanks_are_not_attempted():
    for q in ex:
        assert q.evaluate(q.reference()).status == "correct", q.key
        assert q.evaluate(____).status == "not attempted"
        assert q.evaluate(lambda *a: ____).status == "not attempted"


def test_q1_mistakes():
    def first_only(ids, pair, new):
        for i in range(len(ids) - 1):
            if (ids[i], ids[i + 1]) == pair:
                return ids[:i] + [new] + ids[i + 2:]
        return list(ids)

    def right_to_left(ids, pair, new):
        out, i = [], len(ids) - 1
        while i >= 0:
            if i > 0 and (ids[i - 1], ids[i]) == pair:
                out.append(new)
                i -= 2
            else:
                out.append(ids[i])
                i -= 1
        return out[::-1]

    def drops_last(ids, pair, new):
        out, i = [], 0
        while i < len(ids) - 1:
            if (ids[i], ids[i + 1]) == pair:
                out.append(new)
                i += 2
            else:
                out.append(ids[i])
                i += 1
        return out

    assert_incorrect(ex.q1, lambda ids, pair, new: list(ids), "changed nothing")
    assert_incorrect(ex.q1, first_only, "merged only the first occurrence")
    assert_incorrect(ex.q1, right_to_left, "scan from the left")
    assert_incorrect(ex.q1, drops_last, "the last id is missing")
    assert_incorrect(ex.q1, lambda ids, pair, new: "x", "should be a list of ints")


def test_q2_mistakes():
    def counts(ids):
        c = {}
        for p in zip(ids, ids[1:], strict=False):
            c[p] = c.get(p, 0) + 1
        return c

    def first_seen(ids, vocab):
        c = counts(ids)
        return max(c, key=c.get)

    def smallest_bytes(ids, vocab):
        c = counts(ids)
        return max(c, key=lambda p: (c[p], [-x for x in vocab[p[0]] + b"\xff"], [-x for x in vocab[p[1]] + b"\xff"]))

    def by_ids(ids, vocab):
        c = counts(ids)
        return max(c, key=lambda p: (c[p], p))

    def non_overlapping(ids, vocab):      # counts (a, a) in a, a, a once: like str.count
        c, i = {}, 0
        while i < len(ids) - 1:
            p = (ids[i], ids[i + 1])
            c[p] = c.get(p, 0) + 1
            i += 2 if p[0] == p[1] else 1
        return max(c, key=lambda p: (c[p], vocab[p[0]], vocab[p[1]]))

    assert_incorrect(ex.q2, first_seen, "took the first one seen")
    assert_incorrect(ex.q2, smallest_bytes, "lexicographically smallest")
    assert_incorrect(ex.q2, by_ids, "you compared the ids")
    assert_incorrect(ex.q2, non_overlapping, "overlapping occurrences count")
    assert_incorrect(ex.q2, lambda ids, vocab: 97, "tuple of two ids")


def test_q3_agrees_with_the_course_bpe_on_bytes():
    # on ASCII letters the string rule and the course's byte rule pick the same merges
    text = "GATTACAGATTACAGATTACACCA"
    tok = bpe.train_bpe(text, 256 + 6)                  # the special <|endoftext|> takes one id
    from_course = [(tok.vocab[a].decode(), tok.vocab[b].decode()) for a, b in tok.merges]
    assert len(from_course) >= 4 and ex.q3.reference()(list(text), len(from_course)) == from_course


def test_q3_mistakes():
    def no_rebuild(symbols, n):
        return _ref_learn(symbols, n, merge_each_step=False)

    def first_seen(symbols, n):
        return _ref_learn(symbols, n, tie=_first_seen(symbols))

    assert_incorrect(ex.q3, lambda s, n: ["".join(p) for p in _ref_learn(s, n)], "not the merged symbols")
    assert_incorrect(ex.q3, no_rebuild, "came back again")
    assert_incorrect(ex.q3, first_seen, "first pair seen")
    assert_incorrect(ex.q3, lambda s, n: _ref_learn(s, n - 1), "merges")
    assert_incorrect(ex.q3, lambda s, n: "GA", "list of the merged pairs")


def test_q4_mistakes():
    assert_incorrect(ex.q4, lambda ppl, cpt: ppl / cpt, "ROOT")
    assert_incorrect(ex.q4, lambda ppl, cpt: ppl ** cpt, "1 / chars_per_token")
    assert_incorrect(ex.q4, lambda ppl, cpt: math.log(ppl) / cpt, "loss per character")
    assert_incorrect(ex.q4, lambda ppl, cpt: ppl ** (1 / cpt) + 0.1, "should be")
