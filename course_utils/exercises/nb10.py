"""Exercises for notebook 10 (tokenization): one merge step, the next pair under the tie rule, BPE on a new
alphabet (DNA), and perplexities of different tokenizers made comparable."""

from __future__ import annotations

import math

from ..bpe import merge as _bpe_merge
from ..bpe import pair_counts as _bpe_pair_counts
from .core import ExerciseSet, Incorrect, Question, call, expect_number

# ---- q1: one merge step -----------------------------------------------------------------------------------------


def _as_id_list(value, what: str) -> list[int]:
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list):
        raise Incorrect(f"{what} should be a list of ints, got {type(value).__name__}")
    if not all(isinstance(v, int) for v in value):
        raise Incorrect(f"{what} should hold ints only (token ids), got {value!r:.80}")
    return value


def _check_merge(merge_pair_in) -> None:
    cases = [([5, 6, 7, 5, 6], (5, 6), 300), ([1, 1, 1], (1, 1), 9), ([1, 1, 1, 1], (1, 1), 9),
             ([4, 2, 4, 2, 4], (2, 4), 256), ([3, 3], (3, 4), 256), ([7], (7, 7), 256), ([], (1, 2), 256),
             ([9, 8, 9, 8], (9, 8), 257), ([2, 5, 2, 5, 5, 2], (5, 2), 400)]
    for ids, pair, new in cases:
        got = _as_id_list(call(merge_pair_in, list(ids), pair, new), "your result")
        want = _bpe_merge(ids, tuple(pair), new)
        if got == want:
            continue
        if got == ids and want != ids:
            raise Incorrect(f"merging {pair} in {ids} changed nothing: every occurrence of the pair should become "
                            f"{new}. Expected {want}.")
        first_only = _bpe_merge(ids[:ids_index(ids, pair) + 2], tuple(pair), new) + ids[ids_index(ids, pair) + 2:]
        if got == first_only:
            raise Incorrect(f"in {ids} you merged only the first occurrence of {pair}: a merge replaces every "
                            f"occurrence. Expected {want}, got {got}.")
        rev = _bpe_merge(ids[::-1], tuple(pair[::-1]), new)[::-1]
        if got == rev and rev != want:
            raise Incorrect(f"in {ids} you got {got}: when occurrences overlap (as in 1, 1, 1) scan from the left "
                            f"and skip the id you just used. Expected {want}.")
        if len(got) == len(want) - 1 and got == want[:-1]:
            raise Incorrect(f"the last id is missing: {ids} should give {want}, got {got}. When the loop reaches "
                            "the last position there is no pair left, but the id itself must still be copied.")
        raise Incorrect(f"merging {pair} -> {new} in {ids} should give {want}, got {got}.")


def ids_index(ids, pair) -> int:
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == tuple(pair):
            return i
    return len(ids)


# ---- q2: the next pair to merge, with the tie rule ---------------------------------------------------------------

def _ref_pick(ids, vocab):
    counts = {}
    for p in zip(ids, ids[1:], strict=False):
        counts[p] = counts.get(p, 0) + 1
    return max(counts, key=lambda p: (counts[p], vocab[p[0]], vocab[p[1]]))


def _check_pick(pick_pair) -> None:
    base = {i: bytes([i]) for i in range(256)}
    vocab = {**base, 256: b"ab", 257: b"th", 258: b"the"}
    a, b, c, t, h, e, sp = (ord(x) for x in "abcthe ")
    cases = [
        [a, b, a, b, c],                    # a clear winner: (a, b)
        [c, a, b, a],                       # three pairs once each: the greatest bytes win, (c, a)
        [b, a, c, a],                       # the same winner, though (b, a) comes first
        [256, a, b, a],                     # (b'ab', b'a') vs (b'b', b'a'): b'b' > b'ab', so (b, a)
        [a, a, a, b, b],                    # overlapping (a, a) counts twice
        [257, e, sp, 258, sp, t, h, e],     # ties between multi-byte tokens
        [b, a, a, b],
    ]
    for ids in cases:
        got = call(pick_pair, list(ids), dict(vocab))
        if isinstance(got, list):
            got = tuple(got)
        if not (isinstance(got, tuple) and len(got) == 2):
            raise Incorrect(f"return the pair as a tuple of two ids, e.g. (97, 98); got {got!r:.60}")
        want = _ref_pick(ids, vocab)
        if got == want:
            continue
        counts = {}
        for p in zip(ids, ids[1:], strict=False):
            counts[p] = counts.get(p, 0) + 1
        if got not in counts:
            raise Incorrect(f"{got} is not a pair of adjacent ids in {ids}.")
        if counts[got] < counts[want]:
            raise Incorrect(f"in {ids} the pair {got} occurs {counts[got]} time(s) but {want} occurs "
                            f"{counts[want]} times: take the most frequent pair (overlapping occurrences count).")
        top = [p for p in counts if counts[p] == counts[want]]
        by_ids = max(top, key=lambda p: p)
        first_seen = top[0]
        smallest = min(top, key=lambda p: (vocab[p[0]], vocab[p[1]]))
        if got == smallest:
            raise Incorrect(f"in {ids} the pairs {top} tie; you took the lexicographically smallest byte strings, "
                            f"the rule takes the greatest: {want}.")
        if got == by_ids and by_ids != want:
            raise Incorrect(f"in {ids} the pairs {top} tie; you compared the ids, but the rule compares the byte "
                            f"strings the ids stand for (vocab[a], vocab[b]): {want}.")
        if got == first_seen:
            raise Incorrect(f"in {ids} the pairs {top} tie and you took the first one seen: break ties by the "
                            f"greater pair of byte strings, which gives {want}.")
        raise Incorrect(f"in {ids} the next merge should be {want}, got {got}.")


# ---- q3: BPE on a new alphabet ------------------------------------------------------------------------------------

def _ref_learn(symbols: list[str], n_merges: int, tie=lambda p: p, merge_each_step: bool = True) -> list[tuple]:
    seq, merges = list(symbols), []
    for _ in range(n_merges):
        if len(seq) < 2:
            break
        counts = _bpe_pair_counts(seq)                # the course's BPE helpers work on any symbols
        best = max(counts, key=lambda p: (counts[p], tie(p)))
        merges.append(best)
        if merge_each_step:
            seq = _bpe_merge(seq, best, best[0] + best[1])
    return merges


def _first_seen(symbols):
    order = {p: -i for i, p in enumerate(zip(symbols, symbols[1:], strict=False))}
    return lambda p: order.get(p, 0)


def _check_learn_merges(learn_merges) -> None:
    cases = [(list("GATTACAGATTACAGATTACA"), 4), (list("ACGTACGTTTACGT"), 5), (list("AAAAAA"), 3),
             (list("TGCA"), 6), (list("CATGCATGCCAT"), 3)]
    for symbols, n in cases:
        what = f"learn_merges({''.join(symbols)!r} as a list, {n})"
        got = call(learn_merges, list(symbols), n)
        if not isinstance(got, list | tuple):
            raise Incorrect(f"{what}: return a list of the merged pairs, e.g. [('A', 'T'), ...]; got {got!r:.60}")
        got = [tuple(p) if isinstance(p, list | tuple) else p for p in got]
        want = _ref_learn(symbols, n)
        if got == want:
            continue
        if got == ["".join(p) for p in want]:
            raise Incorrect(f"{what}: return the pairs (a, b), not the merged symbols a + b.")
        if len(got) != len(want):
            extra = " (stop when fewer than 2 symbols are left)" if len(want) < n else ""
            raise Incorrect(f"{what}: expected {len(want)} merges{extra}, got {len(got)}.")
        if got == _ref_learn(symbols, n, merge_each_step=False):
            raise Incorrect(f"{what}: the same pair came back again: after choosing a pair, replace it in the "
                            "sequence before counting again.")
        if got == _ref_learn(symbols, n, tie=_first_seen(symbols)):
            raise Incorrect(f"{what}: ties broken by the first pair seen; the course's rule takes the greater pair "
                            "(here, of strings): max by (count, a, b).")
        if got == _ref_learn(symbols, n, tie=lambda p: (-ord(p[0][0]), -ord(p[1][0]))):
            raise Incorrect(f"{what}: ties broken by the smaller pair; the rule takes the greater one.")
        raise Incorrect(f"{what}: expected {want}, got {got}")


# ---- q4: perplexities over different tokenizers ------------------------------------------------------------------

def _check_per_char(per_char_perplexity) -> None:
    for ppl, cpt in [(20.0, 4.0), (3.2, 1.0), (55.0, 3.6), (12.5, 2.5)]:
        what = f"per_char_perplexity({ppl}, {cpt})"
        got = call(per_char_perplexity, ppl, cpt)
        want = ppl ** (1 / cpt)
        if isinstance(got, int | float) and not isinstance(got, bool) and not math.isclose(got, want, rel_tol=1e-6):
            g = float(got)
            if math.isclose(g, ppl / cpt, rel_tol=1e-6):
                raise Incorrect(f"{what}: perplexity is exp(loss); the loss per token is shared among the characters "
                                "(divided by chars_per_token), so the perplexity is its chars_per_token-th ROOT, "
                                "not a quotient.")
            if math.isclose(g, ppl ** cpt, rel_tol=1e-6):
                raise Incorrect(f"{what}: the exponent is 1 / chars_per_token: a character is a fraction of a token.")
            if math.isclose(g, math.log(ppl) / cpt, rel_tol=1e-6) or math.isclose(g, math.log2(ppl) / cpt,
                                                                                   rel_tol=1e-6):
                raise Incorrect(f"{what}: that is the loss per character; its exponential is the perplexity.")
        expect_number(got, want, what=what, rel=1e-6)


EXERCISES = ExerciseSet("10", "Tokenization", [
    Question("q1", "One merge step", "merge_pair_in", _check_merge,
             hints=["Walk along the list with an index i. If ids[i], ids[i+1] is the pair, append new_id and jump "
                    "by 2; otherwise append ids[i] and move by 1.",
                    "Use a while loop (a for loop cannot skip ahead), and check i < len(ids) - 1 before looking at "
                    "ids[i + 1]."],
             solution='''
def merge_pair_in(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i < len(ids) - 1 and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out
''', success="that is one BPE merge; training repeats it thousands of times."),
    Question("q2", "The next pair, with the tie rule", "pick_pair", _check_pick,
             hints=["Count the pairs with zip(ids, ids[1:]) into a dict.",
                    "max(counts, key=...) with a key that is a tuple: the count first, then the byte strings "
                    "vocab[a] and vocab[b], so that equal counts are decided by the bytes."],
             solution='''
def pick_pair(ids, vocab):
    counts = {}
    for p in zip(ids, ids[1:]):
        counts[p] = counts.get(p, 0) + 1
    return max(counts, key=lambda p: (counts[p], vocab[p[0]], vocab[p[1]]))
''', success="with a written tie rule, two implementations learn the same merges."),
    Question("q3", "BPE on a new alphabet", "learn_merges", _check_learn_merges,
             hints=["Each step: count the adjacent pairs with zip(seq, seq[1:]), take max(counts, key=lambda p: "
                    "(counts[p], p)) (the course's tie rule: the greater pair wins), then rebuild the sequence "
                    "with every occurrence replaced by a + b, scanning from the left.",
                    "Repeat n_merges times (stop if fewer than 2 symbols are left) and return the list of pairs."],
             solution='''
def learn_merges(symbols, n_merges):
    seq, merges = list(symbols), []
    for _ in range(n_merges):
        if len(seq) < 2:
            break
        counts = {}
        for p in zip(seq, seq[1:]):
            counts[p] = counts.get(p, 0) + 1
        best = max(counts, key=lambda p: (counts[p], p))
        merges.append(best)
        out, i = [], 0
        while i < len(seq):
            if i < len(seq) - 1 and (seq[i], seq[i + 1]) == best:
                out.append(seq[i] + seq[i + 1])
                i += 2
            else:
                out.append(seq[i])
                i += 1
        seq = out
    return merges
''', success="the algorithm never looked at what the symbols mean: DNA, text or music notes, BPE finds the "
                "frequent chunks. Genomic language models such as DNABERT-2 use BPE on DNA."),
    Question("q4", "Perplexities over different tokenizers", "per_char_perplexity", _check_per_char,
             hints=["Perplexity = exp(loss per token). Per character the loss is loss per token / chars_per_token.",
                    "exp(log(ppl) / chars_per_token) = ppl ** (1 / chars_per_token)."],
             solution='''
def per_char_perplexity(ppl_per_token, chars_per_token):
    return ppl_per_token ** (1 / chars_per_token)
''', success="a token-level perplexity of 20 at 4 characters per token is 2.1 per character: comparable with "
                "a character model, which the two raw numbers are not."),
])
