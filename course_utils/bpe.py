"""Byte-pair encoding (BPE), built by hand: train merges on a text, encode, decode (notebook 10).

Text -> UTF-8 bytes -> token ids. A tokenizer starts from the 256 byte values and learns *merges*: the most
frequent adjacent pair of tokens becomes one new token, again and again, until the vocabulary has the size you
asked for. Encoding applies the learned merges in the order they were learned (their rank), never across the
chunks that the pre-tokenizing regular expression cuts the text into.

The tie rule (documented, because it changes what is learned): the most frequent pair wins; among pairs with the
same count, the pair whose byte strings are lexicographically greater wins, comparing ``(bytes(a), bytes(b))`` as
Python compares tuples of bytes (the rule Stanford's CS336 assignment specifies).

    tok = train_bpe(text, vocab_size=1024)          # 256 bytes + 767 merges + <|endoftext|>
    ids = tok.encode("The cat sat")                 # list[int]
    tok.decode(ids)                                 # 'The cat sat'

Training counts pairs once, then after each merge updates only the counts of the pairs that the merged words
contain (``method="incremental"``); ``method="naive"`` recounts every pair of the corpus at every merge (the
same merges, much slower: the benchmark compares the two). ``BPETokenizer.from_tiktoken`` rebuilds the merges of
a real tokenizer (GPT-2, GPT-4) from its ranks, so the course's ``encode`` can be compared with tiktoken's.
"""

from __future__ import annotations

import heapq
import warnings
from collections.abc import Iterable, Sequence

import regex

ENDOFTEXT = "<|endoftext|>"

# GPT-2's pre-tokenizer: contractions, runs of letters / digits / other symbols with an optional leading space,
# then whitespace (a run of spaces keeps its last space for the next word).
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
# GPT-4's (cl100k_base): contractions in any case, at most three digits per chunk, newlines kept apart.
CL100K_PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
                  r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s""")

Pair = tuple[int, int]


# ---- the pieces of one merge step -------------------------------------------------------------------------------

def pretokenize(text: str, pattern: str = GPT2_PATTERN) -> list[str]:
    """Cut text into the chunks BPE works inside: ``"The cat's"`` -> ``['The', ' cat', "'s"]``.

    Joining the chunks gives the text back: no character is dropped.
    """
    if not isinstance(text, str):
        raise TypeError(f"text should be a str, got {type(text).__name__}")
    return regex.findall(pattern, text)


def pair_counts(ids: Sequence[int], counts: dict[Pair, int] | None = None, weight: int = 1) -> dict[Pair, int]:
    """Count adjacent pairs, overlapping ones included: ``[1, 1, 1, 2]`` -> ``{(1, 1): 2, (1, 2): 1}``.

    Adds ``weight`` per occurrence into ``counts`` (a new dict if None) and returns it.
    """
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:], strict=False):
        counts[pair] = counts.get(pair, 0) + weight
    return counts


def merge(ids: Sequence[int], pair: Pair, new_id: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids``, scanning left to right, by ``new_id``.

    ``merge([1, 1, 1, 2], (1, 1), 9)`` -> ``[9, 1, 2]`` (an overlapping occurrence is merged once, leftmost first).
    """
    a, b = pair
    out: list[int] = []
    i, n = 0, len(ids)
    while i < n:
        if i < n - 1 and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def best_pair(counts: dict[Pair, int], vocab: dict[int, bytes]) -> Pair:
    """The pair to merge next: the highest count; ties go to the lexicographically greater pair of byte strings."""
    if not counts:
        raise ValueError("there are no pairs to merge (every chunk is a single token)")
    return max(counts, key=lambda p: (counts[p], vocab[p[0]], vocab[p[1]]))


# ---- the tokenizer ----------------------------------------------------------------------------------------------

class BPETokenizer:
    """A byte-level BPE tokenizer: ``vocab`` (id -> bytes), ``merges`` ((id, id) -> new id, applied in the order
    of the new ids), a pre-tokenizing ``pattern`` and ``special_tokens`` (str -> id, never split).

    ``byte_ids[b]`` is the id of the single byte ``b`` (``b`` itself for the course's tokenizers; GPT-2 and GPT-4
    number their bytes differently).
    """

    def __init__(self, vocab: dict[int, bytes], merges: dict[Pair, int], pattern: str = GPT2_PATTERN,
                 special_tokens: dict[str, int] | None = None, byte_ids: Sequence[int] | None = None):
        self.vocab = dict(vocab)
        self.merges = dict(merges)
        self.pattern = pattern
        self._regex = regex.compile(pattern)
        self.special_tokens = dict(special_tokens or {})
        self.byte_ids = list(range(256)) if byte_ids is None else list(byte_ids)
        if len(self.byte_ids) != 256:
            raise ValueError(f"byte_ids should give an id for each of the 256 byte values, got {len(self.byte_ids)}")
        for s, i in self.special_tokens.items():
            self.vocab[i] = s.encode("utf-8")
        self._special_ids = set(self.special_tokens.values())
        self._special_re = (regex.compile("(" + "|".join(regex.escape(s) for s in
                                                         sorted(self.special_tokens, key=len, reverse=True)) + ")")
                            if self.special_tokens else None)
        self._cache: dict[str, list[int]] = {}

    # -- sizes and views --
    @property
    def vocab_size(self) -> int:
        """Number of token ids: 256 bytes + merges + special tokens."""
        return len(self.vocab)

    def merge_list(self) -> list[tuple[Pair, int]]:
        """The merges in the order they are applied: [((a, b), new_id), ...]."""
        return sorted(self.merges.items(), key=lambda kv: kv[1])

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes one token stands for."""
        self._check_ids([token_id])
        return self.vocab[int(token_id)]

    def truncated(self, vocab_size: int) -> BPETokenizer:
        """The same tokenizer with only its first merges: ``vocab_size`` = 256 + merges kept + special tokens.

        BPE vocabularies are nested: the tokenizer trained to 512 tokens is the first merges of the one trained
        to 8,192, so one training run gives every smaller size.
        """
        n_merges = vocab_size - 256 - len(self.special_tokens)
        if not 0 <= n_merges <= len(self.merges):
            raise ValueError(f"vocab_size should be between {256 + len(self.special_tokens)} and {self.vocab_size} "
                             f"for this tokenizer, got {vocab_size}")
        if self.byte_ids != list(range(256)):
            raise ValueError("truncated() is for the course's own tokenizers (bytes numbered 0..255)")
        kept = self.merge_list()[:n_merges]
        renumber = {i: i for i in range(256)}               # the merged tokens follow the bytes, in merge order
        renumber.update({old_id: 256 + j for j, (_, old_id) in enumerate(kept)})
        vocab = {i: self.vocab[i] for i in range(256)}
        merges = {}
        for j, ((a, b), old_id) in enumerate(kept):
            merges[(renumber[a], renumber[b])] = 256 + j
            vocab[256 + j] = self.vocab[old_id]
        specials = {s: 256 + n_merges + k for k, s in enumerate(self.special_tokens)}
        return BPETokenizer(vocab, merges, self.pattern, specials)

    # -- encoding --
    def _encode_chunk(self, chunk: str) -> list[int]:
        cached = self._cache.get(chunk)
        if cached is not None:
            return cached
        ids = [self.byte_ids[b] for b in chunk.encode("utf-8")]
        merges = self.merges
        while len(ids) >= 2:
            best, rank = None, None
            for pair in zip(ids, ids[1:], strict=False):
                r = merges.get(pair)
                if r is not None and (rank is None or r < rank):
                    best, rank = pair, r
            if best is None:
                break
            ids = merge(ids, best, rank)
        if len(self._cache) < 500_000:
            self._cache[chunk] = ids
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode text, treating special-token strings such as ``<|endoftext|>`` as ordinary text."""
        if not isinstance(text, str):
            raise TypeError(f"encode takes a str, got {type(text).__name__}")
        out: list[int] = []
        for chunk in self._regex.findall(text):
            out.extend(self._encode_chunk(chunk))
        return out

    def encode(self, text: str, allow_special: bool = True) -> list[int]:
        """Text -> token ids. Special tokens in the text become their single id (``allow_special=False``: they
        are encoded as ordinary text); everything else is pre-tokenized, then merged chunk by chunk."""
        if not isinstance(text, str):
            raise TypeError(f"encode takes a str, got {type(text).__name__}")
        if not allow_special or self._special_re is None:
            return self.encode_ordinary(text)
        out: list[int] = []
        for k, part in enumerate(self._special_re.split(text)):
            if k % 2:
                out.append(self.special_tokens[part])
            elif part:
                out.extend(self.encode_ordinary(part))
        return out

    def tokens(self, text: str) -> list[bytes]:
        """The pieces ``encode`` cuts text into, as bytes: ``[b'The', b' cat', b' sat']``."""
        return [self.vocab[i] for i in self.encode(text)]

    # -- decoding --
    def _check_ids(self, ids: Iterable[int]) -> list[int]:
        ids = [int(i) for i in ids]
        unknown = sorted({i for i in ids if i not in self.vocab})
        if unknown:
            shown = ", ".join(map(str, unknown[:5])) + (", ..." if len(unknown) > 5 else "")
            raise ValueError(f"unknown token id(s) {shown}: this tokenizer's ids are 0..{max(self.vocab)}"
                             f" ({self.vocab_size} tokens)")
        return ids

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """Token ids -> the bytes they stand for (always possible, even when they are not valid UTF-8)."""
        return b"".join(self.vocab[i] for i in self._check_ids(ids))

    def decode(self, ids: Iterable[int], errors: str = "replace") -> str:
        """Token ids -> text. A cut through a multi-byte character (for example the first 2 of an emoji's 4
        bytes) decodes to U+FFFD '\ufffd' with ``errors="replace"``; ``errors="strict"`` raises instead."""
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    # -- real tokenizers --
    @classmethod
    def from_ranks(cls, ranks: dict[bytes, int], pattern: str,
                   special_tokens: dict[str, int] | None = None) -> BPETokenizer:
        """Rebuild the merges of a tokenizer given as byte string -> rank (tiktoken's format).

        A token of rank r and length > 1 was made by one merge of two tokens of lower rank: running BPE on its own
        bytes with only the ranks below r leaves exactly those two parts.
        """
        if not all(bytes([b]) in ranks for b in range(256)):
            raise ValueError("the ranks should include all 256 single bytes")
        vocab = {r: t for t, r in ranks.items()}
        merges: dict[Pair, int] = {}
        for token, rank in ranks.items():
            if len(token) < 2:
                continue
            parts = _bpe_parts(ranks, token, max_rank=rank)
            if len(parts) != 2:
                raise ValueError(f"token {token!r} (rank {rank}) cannot be made by one merge of lower-rank tokens")
            merges[(ranks[parts[0]], ranks[parts[1]])] = rank
        byte_ids = [ranks[bytes([b])] for b in range(256)]
        return cls(vocab, merges, pattern, special_tokens, byte_ids)

    @classmethod
    def from_tiktoken(cls, enc) -> BPETokenizer:
        """The course's tokenizer with the merges, pattern and special tokens of a ``tiktoken.Encoding``."""
        return cls.from_ranks(enc._mergeable_ranks, enc._pat_str, enc._special_tokens)

    def __repr__(self) -> str:
        return (f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
                f"special_tokens={list(self.special_tokens)})")


def _bpe_parts(ranks: dict[bytes, int], token: bytes, max_rank: int) -> list[bytes]:
    parts = [bytes([b]) for b in token]
    while True:
        best, best_rank = None, None
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and r < max_rank and (best_rank is None or r < best_rank):
                best, best_rank = i, r
        if best is None:
            return parts
        parts = parts[:best] + [parts[best] + parts[best + 1]] + parts[best + 2:]


def greedy_longest_match(text: str, tok: BPETokenizer) -> list[int]:
    """A tokenizer that is *not* BPE, for comparison: inside each chunk, repeatedly take the longest vocabulary
    entry that starts here. Uses the same vocabulary as ``tok`` but ignores the order of its merges."""
    by_bytes = {b: i for i, b in tok.vocab.items() if i not in tok._special_ids}
    longest = max(len(b) for b in by_bytes)
    out: list[int] = []
    for chunk in pretokenize(text, tok.pattern):
        data = chunk.encode("utf-8")
        i = 0
        while i < len(data):
            for n in range(min(longest, len(data) - i), 0, -1):
                j = by_bytes.get(data[i:i + n])
                if j is not None:
                    out.append(j)
                    i += n
                    break
    return out


# ---- training ---------------------------------------------------------------------------------------------------

def _word_counts(text: str, pattern: str, special_tokens: Sequence[str]) -> dict[bytes, int]:
    parts = [text]
    if special_tokens:                                   # merges never cross or learn a special token
        splitter = regex.compile("|".join(regex.escape(s) for s in sorted(special_tokens, key=len, reverse=True)))
        parts = splitter.split(text)
    counts: dict[bytes, int] = {}
    compiled = regex.compile(pattern)
    for part in parts:
        for chunk in compiled.findall(part):
            b = chunk.encode("utf-8")
            counts[b] = counts.get(b, 0) + 1
    return counts


def train_bpe(text: str, vocab_size: int, pattern: str = GPT2_PATTERN,
              special_tokens: Sequence[str] = (ENDOFTEXT,), method: str = "incremental") -> BPETokenizer:
    """Learn a byte-level BPE tokenizer of ``vocab_size`` ids (256 bytes + merges + special tokens) from ``text``.

    Pre-tokenizes with ``pattern`` (each distinct chunk is counted once with its frequency), then merges the most
    frequent pair (ties: the lexicographically greater pair of byte strings) until the vocabulary is full.
    ``method="incremental"`` updates only the pair counts of the words a merge touches; ``"naive"`` recounts all
    pairs every merge (same result, for comparison). Stops early, with a warning, if no pair is left to merge.
    """
    if not isinstance(text, str) or not text:
        raise ValueError("train_bpe needs a non-empty str of training text")
    specials = list(dict.fromkeys(special_tokens))
    if not isinstance(vocab_size, int) or vocab_size < 256 + len(specials):
        raise ValueError(f"vocab_size should be an int of at least 256 (the bytes) + {len(specials)} special "
                         f"token(s) = {256 + len(specials)}, got {vocab_size!r}")
    if method not in ("incremental", "naive"):
        raise ValueError(f"method should be 'incremental' or 'naive', got {method!r}")
    counts = _word_counts(text, pattern, specials)
    words = [list(w) for w in counts]
    freqs = list(counts.values())
    vocab = {i: bytes([i]) for i in range(256)}
    n_merges = vocab_size - 256 - len(specials)
    learn = _learn_incremental if method == "incremental" else _learn_naive
    merges = learn(words, freqs, vocab, n_merges)
    if len(merges) < n_merges:
        warnings.warn(f"the text ran out of pairs after {len(merges)} merges; the vocabulary has "
                      f"{256 + len(merges) + len(specials)} tokens, not {vocab_size}", stacklevel=2)
    special_ids = {s: 256 + len(merges) + k for k, s in enumerate(specials)}
    return BPETokenizer(vocab, merges, pattern, special_ids)


def _learn_naive(words: list[list[int]], freqs: list[int], vocab: dict[int, bytes], n_merges: int) -> dict:
    merges: dict[Pair, int] = {}
    for k in range(n_merges):
        counts: dict[Pair, int] = {}
        for w, f in zip(words, freqs, strict=False):
            pair_counts(w, counts, f)
        if not counts:
            break
        pair = best_pair(counts, vocab)
        new = 256 + k
        words[:] = [merge(w, pair, new) if len(w) > 1 else w for w in words]
        merges[pair] = new
        vocab[new] = vocab[pair[0]] + vocab[pair[1]]
    return merges


def _learn_incremental(words: list[list[int]], freqs: list[int], vocab: dict[int, bytes], n_merges: int) -> dict:
    counts: dict[Pair, int] = {}
    where: dict[Pair, set[int]] = {}              # pair -> words that contain it (or did: checked on use)
    for wi, (w, f) in enumerate(zip(words, freqs, strict=False)):
        for pair in zip(w, w[1:], strict=False):
            counts[pair] = counts.get(pair, 0) + f
            where.setdefault(pair, set()).add(wi)
    heap = [(-c, p) for p, c in counts.items()]   # max-heap on the count; stale entries are skipped on pop
    heapq.heapify(heap)
    merges: dict[Pair, int] = {}
    for k in range(n_merges):
        top = None
        while heap:                                # the highest valid count ...
            c, p = heap[0]
            if counts.get(p, 0) == -c and c < 0:
                top = -c
                break
            heapq.heappop(heap)
        if top is None:
            break
        tied = set()                               # ... and every pair that shares it: the tie rule picks one
        while heap and heap[0][0] == -top:
            _, p = heapq.heappop(heap)
            if counts.get(p, 0) == top:
                tied.add(p)
        pair = max(tied, key=lambda q: (vocab[q[0]], vocab[q[1]]))
        for q in tied:
            if q != pair:
                heapq.heappush(heap, (-top, q))
        new = 256 + k
        merges[pair] = new
        vocab[new] = vocab[pair[0]] + vocab[pair[1]]
        a, b = pair
        changed: dict[Pair, int] = {}
        for wi in where.pop(pair, ()):
            w = words[wi]
            if len(w) < 2:
                continue
            i, found = 0, False
            while i < len(w) - 1:                  # is the pair still in this word?
                if w[i] == a and w[i + 1] == b:
                    found = True
                    break
                i += 1
            if not found:
                continue
            f = freqs[wi]
            for q in zip(w, w[1:], strict=False):
                changed[q] = changed.get(q, 0) - f
            w = merge(w, pair, new)
            words[wi] = w
            for q in zip(w, w[1:], strict=False):
                changed[q] = changed.get(q, 0) + f
                if new in q:
                    where.setdefault(q, set()).add(wi)
        for q, d in changed.items():
            if d:
                c = counts.get(q, 0) + d
                if c > 0:
                    counts[q] = c
                    heapq.heappush(heap, (-c, q))
                else:
                    counts.pop(q, None)
        counts.pop(pair, None)
    return merges


# ---- showing tokens ---------------------------------------------------------------------------------------------

TOKEN_COLOURS = ("#cfe8ff", "#ffe0b3", "#d5f5d0", "#f9d0e0", "#e6dcff", "#fff3a8")


def token_pieces(tok, text: str) -> list[tuple[int, bytes]]:
    """(id, bytes) for every token of ``text``; ``tok`` is a :class:`BPETokenizer` or a ``tiktoken.Encoding``."""
    if isinstance(tok, BPETokenizer):
        return [(i, tok.vocab[i]) for i in tok.encode(text)]
    return [(i, tok.decode_single_token_bytes(i)) for i in tok.encode(text, allowed_special="all")]


def tokens_html(pieces: Sequence[tuple[int, bytes]], name: str = "") -> str:
    """Coloured boxes, one per token, each with its id underneath (hover shows the bytes). A token that is only
    part of a character shows U+FFFD; spaces show as a middle dot and newlines as an arrow."""
    import html

    boxes = []
    for k, (i, b) in enumerate(pieces):
        shown = b.decode("utf-8", errors="replace").replace(" ", "\u00b7").replace("\n", "\u21b5")
        boxes.append(f'<span title="{html.escape(repr(b))}" style="display:inline-block;margin:1px;padding:0 2px;'
                     f'background:{TOKEN_COLOURS[k % len(TOKEN_COLOURS)]};border-radius:3px;text-align:center;'
                     f'font-family:monospace">{html.escape(shown)}<br><small style="color:#555">{i}</small></span>')
    head = f"<b>{html.escape(name)}</b>: {len(pieces)} tokens<br>" if name else ""
    return f"<div style='margin:4px 0'>{head}{''.join(boxes)}</div>"
