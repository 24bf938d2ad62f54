"""Exercises for notebook 10 (tokenization): one merge step, the next pair under the tie rule, decoding a cut
through a character, and a loss per token turned into bits per character."""

from __future__ import annotations

import math

from ..bpe import merge as _bpe_merge
from .core import ExerciseSet, Incorrect, LearnerCodeError, Question, call, expect_number

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


# ---- q3: decoding a cut through a character ----------------------------------------------------------------------

def _ref_decode(ids, vocab):
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")


def _check_decode(ids_to_text) -> None:
    vocab = {i: bytes([i]) for i in range(256)}
    vocab.update({256: "é".encode()[:1], 257: "é".encode()[1:], 258: "🙂".encode()[:2], 259: "🙂".encode()[2:],
                  260: b" caf", 261: b"hi"})
    cases = [[261, 32, 260, 256, 257], [258, 259], [260, 256], [258], [261, 258, 32, 261], [104, 105]]
    for ids in cases:
        try:
            got = call(ids_to_text, list(ids), dict(vocab))
        except LearnerCodeError as err:
            if "UnicodeDecodeError" in str(err):
                raise Incorrect(f"decoding {ids} raised UnicodeDecodeError: these ids end in the middle of a "
                                "character. Decode with errors='replace', which writes U+FFFD for broken bytes.") \
                    from None
            raise
        want = _ref_decode(ids, vocab)
        if not isinstance(got, str):
            raise Incorrect(f"return a str, got {type(got).__name__}")
        if got == want:
            continue
        per_token = "".join(vocab[i].decode("utf-8", errors="replace") for i in ids)
        if got == per_token:
            raise Incorrect(f"for {ids} you decoded token by token: a character whose bytes are split across two "
                            f"tokens breaks. Join all the bytes first, then decode once. Expected {want!r}.")
        if got == b"".join(vocab[i] for i in ids).decode("utf-8", errors="ignore"):
            raise Incorrect(f"for {ids} the broken bytes vanished (errors='ignore'): use errors='replace', so the "
                            f"reader sees a U+FFFD mark where the cut is. Expected {want!r}.")
        if got == b"".join(vocab[i] for i in ids).decode("latin-1"):
            raise Incorrect("you decoded as Latin-1: the bytes are UTF-8.")
        raise Incorrect(f"ids {ids} should decode to {want!r}, got {got!r}.")


# ---- q4: loss per token -> bits per character --------------------------------------------------------------------

def _check_bpc(to_bits_per_char) -> None:
    for loss, n_tok, n_char in [(3.0, 1000, 2800), (1.1, 500, 500), (5.5, 120, 517), (2.0, 10, 40)]:
        want = loss * n_tok / n_char / math.log(2)
        got = call(to_bits_per_char, loss, n_tok, n_char)
        if isinstance(got, int | float) and not math.isclose(float(got), want, rel_tol=1e-4):
            g = float(got)
            if math.isclose(g, loss * n_tok / n_char, rel_tol=1e-4):
                raise Incorrect("that is nats per character: divide by ln 2 to get bits.")
            if math.isclose(g, loss / math.log(2), rel_tol=1e-4) and n_tok != n_char:
                raise Incorrect("that is bits per *token*: multiply by the number of tokens and divide by the "
                                "number of characters, so that models with different tokenizers compare.")
            if math.isclose(g, loss * n_char / n_tok / math.log(2), rel_tol=1e-4):
                raise Incorrect("tokens and characters are swapped: the total loss is loss * n_tokens; spread it "
                                "over n_chars characters.")
            if math.isclose(g, loss * n_tok / n_char / math.log(10), rel_tol=1e-4):
                raise Incorrect("you divided by ln 10; bits are log base 2: divide by ln 2.")
        expect_number(got, want, what=f"bits per character for {loss} nats/token, {n_tok} tokens, {n_char} chars",
                      rel=1e-4)


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
    Question("q3", "Decoding a cut through a character", "ids_to_text", _check_decode,
             hints=["Look up each id's bytes in vocab and join them into one bytes object first.",
                    "Then .decode('utf-8', errors='replace')."],
             solution='''
def ids_to_text(ids, vocab):
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")
''', success="bytes first, one decode at the end: that is how every byte-level tokenizer decodes."),
    Question("q4", "Bits per character from a loss per token", "to_bits_per_char", _check_bpc,
             hints=["The total loss over the text is nats_per_token * n_tokens.",
                    "Divide it by n_chars, then by math.log(2) to turn nats into bits."],
             solution='''
def to_bits_per_char(nats_per_token, n_tokens, n_chars):
    return nats_per_token * n_tokens / n_chars / math.log(2)
''', success="now a character model and a BPE model stand on the same scoreboard."),
])
