"""course_utils.bpe: every public function, bad input included; the incremental trainer equals the naive one."""

from __future__ import annotations

import pytest

from course_utils import bpe, data

BYTES = {i: bytes([i]) for i in range(256)}


def test_pretokenize_keeps_every_character_and_splits_like_gpt2():
    s = "The cat's 3 mats   cost $12.50!\n\nNext"
    chunks = bpe.pretokenize(s)
    assert "".join(chunks) == s
    assert chunks[:4] == ["The", " cat", "'s", " 3"]
    assert "  " in chunks                      # a run of spaces keeps its last space for the next word
    assert bpe.pretokenize("12345", bpe.CL100K_PATTERN) == ["123", "45"]
    assert bpe.pretokenize("") == []
    with pytest.raises(TypeError, match="should be a str"):
        bpe.pretokenize(b"bytes")


def test_pair_counts_count_overlaps_and_accumulate():
    assert bpe.pair_counts([1, 1, 1, 2]) == {(1, 1): 2, (1, 2): 1}
    assert bpe.pair_counts([7]) == {} and bpe.pair_counts([]) == {}
    acc = bpe.pair_counts([1, 2], weight=3)
    assert bpe.pair_counts([1, 2, 1], acc, weight=2) == {(1, 2): 5, (2, 1): 2}


def test_merge_left_to_right():
    assert bpe.merge([1, 1, 1, 2], (1, 1), 9) == [9, 1, 2]
    assert bpe.merge([1, 1, 1, 1], (1, 1), 9) == [9, 9]
    assert bpe.merge([5, 6, 7, 5, 6], (5, 6), 300) == [300, 7, 300]
    assert bpe.merge([5, 6], (6, 5), 300) == [5, 6]
    assert bpe.merge([], (1, 2), 3) == []


def test_best_pair_tie_rule_compares_bytes_not_ids():
    vocab = dict(BYTES) | {256: b"aa"}
    # the textbook example after its first merge: 'Za' and 'ab' tie with 2 each; b"aa" > b"a" decides
    counts = {(256, 97): 2, (97, 98): 2, (98, 100): 1}
    assert bpe.best_pair(counts, vocab) == (256, 97)
    vocab2 = dict(BYTES) | {256: b"ab"}
    assert bpe.best_pair({(256, 97): 1, (98, 97): 1}, vocab2) == (98, 97)   # b"b" > b"ab", though 256 > 98
    assert bpe.best_pair({(97, 98): 3, (99, 100): 2}, BYTES) == (97, 98)
    with pytest.raises(ValueError, match="no pairs to merge"):
        bpe.best_pair({}, BYTES)


def test_train_textbook_example_follows_the_tie_rule():
    tok = bpe.train_bpe("aaabdaaabac", vocab_size=259, special_tokens=())
    assert [tok.vocab[new] for _, new in tok.merge_list()] == [b"aa", b"aaa", b"aaab"]


def test_train_incremental_equals_naive_on_wikipedia():
    text = data.wiki_text()[:30_000]
    fast = bpe.train_bpe(text, 400, method="incremental")
    slow = bpe.train_bpe(text, 400, method="naive")
    assert fast.merges == slow.merges and fast.vocab == slow.vocab
    assert fast.vocab_size == 400 and fast.special_tokens == {bpe.ENDOFTEXT: 399}


def test_train_bad_input():
    with pytest.raises(ValueError, match="non-empty"):
        bpe.train_bpe("", 300)
    with pytest.raises(ValueError, match="at least 256"):
        bpe.train_bpe("hello", 255, special_tokens=())
    with pytest.raises(ValueError, match="= 257"):
        bpe.train_bpe("hello", 256)                      # 256 bytes + <|endoftext|> do not fit in 256
    with pytest.raises(ValueError, match="method"):
        bpe.train_bpe("hello", 300, method="fast")
    with pytest.warns(UserWarning, match="ran out of pairs"):
        tok = bpe.train_bpe("ab ab", 300, special_tokens=())
    assert tok.vocab_size == 258                         # 'ab', then ' ' + 'ab': nothing else to merge


def test_special_tokens_are_never_learned_or_split():
    text = ("hello world<|endoftext|>" * 50)
    tok = bpe.train_bpe(text, 265)
    assert all(b"<|" not in v for i, v in tok.vocab.items() if i != tok.special_tokens[bpe.ENDOFTEXT])
    ids = tok.encode("hello<|endoftext|>world")
    assert tok.special_tokens[bpe.ENDOFTEXT] in ids
    assert tok.special_tokens[bpe.ENDOFTEXT] not in tok.encode("hello<|endoftext|>world", allow_special=False)
    assert tok.encode_ordinary("<|endoftext|>") == tok.encode("<|endoftext|>", allow_special=False)


@pytest.fixture(scope="module")
def wiki_tok():
    return bpe.train_bpe(data.wiki_text()[:200_000], 1024)


@pytest.mark.parametrize("s", ["", "The cat sat on the mat.", "naïve café 🙂👍🏽", "  \n\n\t x", "日本語",
                               "<|endoftext|>", "a" * 500, "don't 1234567 $3.50"])
def test_decode_inverts_encode(wiki_tok, s):
    assert wiki_tok.decode(wiki_tok.encode(s)) == s
    assert wiki_tok.decode_bytes(wiki_tok.encode(s)) == s.encode("utf-8")


def test_encode_applies_merges_in_rank_order(wiki_tok):
    w = " understanding"
    ids = [wiki_tok.byte_ids[b] for b in w.encode()]
    while True:                                          # apply merges one at a time, lowest new id first
        ranks = [(wiki_tok.merges[p], p) for p in zip(ids, ids[1:], strict=False) if p in wiki_tok.merges]
        if not ranks:
            break
        r, p = min(ranks)
        ids = bpe.merge(ids, p, r)
    assert wiki_tok.encode(w) == ids
    with pytest.raises(TypeError, match="takes a str"):
        wiki_tok.encode(b"bytes")
    with pytest.raises(TypeError, match="takes a str"):
        wiki_tok.encode_ordinary(None)


def test_decode_partial_utf8_and_unknown_ids(wiki_tok):
    emoji = wiki_tok.encode("🙂")
    assert len(emoji) == 4                               # an ASCII training text learned no merge for it
    assert wiki_tok.decode(emoji[:2]) == "\ufffd"
    with pytest.raises(UnicodeDecodeError):
        wiki_tok.decode(emoji[:2], errors="strict")
    with pytest.raises(ValueError, match="unknown token id.*99999"):
        wiki_tok.decode([1, 99999])
    with pytest.raises(ValueError, match="unknown token id.*-1"):
        wiki_tok.token_bytes(-1)


def test_tokens_token_bytes_and_merge_list(wiki_tok):
    assert b"".join(wiki_tok.tokens("The cat")) == b"The cat"
    assert wiki_tok.token_bytes(65) == b"A"
    merges = wiki_tok.merge_list()
    assert [new for _, new in merges] == list(range(256, 256 + len(merges)))
    assert all(wiki_tok.vocab[new] == wiki_tok.vocab[a] + wiki_tok.vocab[b] for (a, b), new in merges)


def test_truncated_equals_training_to_the_smaller_size():
    text = data.wiki_text()[:50_000]
    big = bpe.train_bpe(text, 600)
    small = bpe.train_bpe(text, 400)
    cut = big.truncated(400)
    assert cut.merges == small.merges and cut.vocab == small.vocab and cut.special_tokens == small.special_tokens
    assert cut.encode(text[:2000]) == small.encode(text[:2000])
    with pytest.raises(ValueError, match="between 257 and 600"):
        big.truncated(700)
    with pytest.raises(ValueError, match="between 257 and 600"):
        big.truncated(200)


def test_from_ranks_recovers_merges_and_checks_input():
    ranks = {bytes([i]): i for i in range(256)} | {b"ab": 256, b"abc": 257, b"bc": 258}
    tok = bpe.BPETokenizer.from_ranks(ranks, bpe.GPT2_PATTERN)
    assert tok.merges == {(97, 98): 256, (256, 99): 257, (98, 99): 258}
    assert tok.encode("abc") == [257] and tok.encode("bcd") == [258, 100]
    with pytest.raises(ValueError, match="all 256 single bytes"):
        bpe.BPETokenizer.from_ranks({b"a": 0}, bpe.GPT2_PATTERN)
    with pytest.raises(ValueError, match="cannot be made by one merge"):
        bpe.BPETokenizer.from_ranks({bytes([i]): i for i in range(256)} | {b"abc": 256}, bpe.GPT2_PATTERN)
    with pytest.raises(ValueError, match="256 byte values"):
        bpe.BPETokenizer(BYTES, {}, byte_ids=[0, 1])


def test_greedy_longest_match_differs_from_bpe():
    # merges in rank order: 'bc' (256), 'ab' (257), 'cd' (258)
    ranks = {bytes([i]): i for i in range(256)} | {b"bc": 256, b"ab": 257, b"cd": 258}
    tok = bpe.BPETokenizer({r: t for t, r in ranks.items()}, {(98, 99): 256, (97, 98): 257, (99, 100): 258})
    # BPE: 'abcd' -> a|bc|d (bc merges first; then nothing); greedy takes 'ab' then 'cd'
    assert tok.encode("abcd") == [97, 256, 100]
    assert bpe.greedy_longest_match("abcd", tok) == [257, 258]
    assert bpe.greedy_longest_match("", tok) == []


def test_token_pieces_and_html(wiki_tok):
    pieces = bpe.token_pieces(wiki_tok, "The cat <&>")
    assert b"".join(b for _, b in pieces) == b"The cat <&>"
    html = bpe.tokens_html(pieces, "mine")
    assert "mine</b>: " + str(len(pieces)) + " tokens" in html and "&lt;&amp;&gt;" in html or "&lt;" in html
    assert html.count("<span") == len(pieces)


def test_repr(wiki_tok):
    assert "vocab_size=1024" in repr(wiki_tok)
