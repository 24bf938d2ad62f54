"""Exercises for notebook 16 (a real LLM): decoding a Q4_0 block by hand, undoing the rotate-half layout of
W_Q and W_K, and the probability of a word the tokenizer cuts into two tokens."""

from __future__ import annotations

import numpy as np
import torch

from .core import ExerciseSet, Incorrect, Question, as_tensor, call, diagnose

# ---- q1: a Q4_0 block ----------------------------------------------------------------------------------------------

Q4_0_BLOCK_BYTES = 18   # 2 bytes of fp16 scale d + 16 bytes holding 32 four-bit integers


def q4_0_reference(block: bytes) -> np.ndarray:
    """One Q4_0 block (18 bytes) -> its 32 weights, float32: w_i = d * (q_i - 8).

    Bytes 0-1: d (fp16, little-endian). Byte 2 + j (j = 0..15) holds q_j in its low nibble and q_(j+16) in its
    high nibble.
    """
    raw = np.frombuffer(bytes(block), dtype=np.uint8)
    d = raw[:2].view(np.float16).astype(np.float32)[0]
    packed = raw[2:]
    q = np.concatenate([packed & 0x0F, packed >> 4]).astype(np.float32)   # (32,)
    return d * (q - 8)


def _q4_0_blocks() -> list[bytes]:
    rng = np.random.default_rng(16)
    blocks = []
    for d in (0.0125, -0.37, 2.0, 0.001):
        nibbles = rng.integers(0, 256, size=16, dtype=np.uint8)
        blocks.append(np.float16(d).tobytes() + nibbles.tobytes())
    blocks.append(np.float16(0.5).tobytes() + bytes(range(0, 256, 16)))   # low nibbles all 0: q_0..15 = 0
    return blocks


def _check_q4_0(q4_0_block_weights) -> None:
    for block in _q4_0_blocks():
        out = call(q4_0_block_weights, block)
        got = as_tensor(out, "your weights").reshape(-1).double()
        if got.numel() != 32:
            raise Incorrect(f"a Q4_0 block holds 32 weights (16 bytes, two per byte), got {got.numel()} numbers.")
        want = torch.from_numpy(q4_0_reference(block)).double()
        raw = np.frombuffer(block, dtype=np.uint8)
        d = float(raw[:2].view(np.float16)[0])
        lo, hi = (raw[2:] & 0x0F).astype(np.float64), (raw[2:] >> 4).astype(np.float64)
        interleaved = torch.from_numpy(np.stack([lo, hi], axis=1).reshape(-1))
        swapped = torch.from_numpy(np.concatenate([hi, lo]))
        q = torch.from_numpy(np.concatenate([lo, hi]))
        suspects = [
            (d * q, "you forgot to subtract 8: Q4_0 stores q in 0..15 and the weight is d * (q - 8), so the block "
                    "is centred on zero (Q4_1 adds a minimum m instead)."),
            (d * (interleaved - 8),
             "the order is not byte by byte: the LOW nibbles of the 16 bytes are weights 0..15, the HIGH nibbles "
             "weights 16..31 (concatenate, do not interleave)."),
            (d * (swapped - 8), "low and high nibbles are swapped: the low nibble (byte & 0x0F) is the first half."),
            (q - 8, "the scale d is missing: multiply by d (the first two bytes, read as float16)."),
            (d * q - 8, "subtract 8 before scaling: w = d * (q - 8), not d * q - 8."),
        ]
        diagnose(got, want, suspects, what="q4_0_block_weights(block)", atol=1e-6)


# ---- q2: back from the rotate-half layout to the pairs layout ----------------------------------------------------

def halves_to_pairs_reference(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """w: (n_heads * d_head, d_in), each head's rows in the rotate-half layout (the pairs layout's even rows, then
    its odd rows). Returns the same weight in the pairs layout: row 2i of a head is its row i, row 2i + 1 its row
    d_head / 2 + i."""
    d_head = w.shape[0] // n_heads
    half = d_head // 2
    order = torch.stack([torch.arange(half), torch.arange(half) + half], dim=1).reshape(-1)   # 0, h, 1, h+1, ...
    return w.reshape(n_heads, d_head, -1)[:, order].reshape(w.shape)


def _evens_then_odds(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    d_head = w.shape[0] // n_heads
    order = torch.cat([torch.arange(0, d_head, 2), torch.arange(1, d_head, 2)])
    return w.reshape(n_heads, d_head, -1)[:, order].reshape(w.shape)


def _check_halves_to_pairs(halves_to_pairs) -> None:
    g = torch.Generator().manual_seed(161)
    for n_heads, d_head, d_in in ((2, 8, 5), (3, 16, 7), (9, 64, 12)):
        w = torch.randn(n_heads * d_head, d_in, generator=g)
        got = as_tensor(call(halves_to_pairs, w.clone(), n_heads), "your weight").double()
        if tuple(got.shape) != tuple(w.shape):
            raise Incorrect(f"the weight keeps its shape {tuple(w.shape)} (only its rows move), got "
                            f"{tuple(got.shape)}.")
        want = halves_to_pairs_reference(w, n_heads).double()
        suspects = [
            (w.double(), "the rows have not moved: inside each head, the rotate-half layout keeps the pairs "
                         "layout's even rows first, then its odd rows; undo that."),
            (_evens_then_odds(w, n_heads).double(),
             "that is the permutation the other way (pairs -> rotate half, evens first then odds); you need its "
             "inverse: row 2i comes from row i, row 2i + 1 from row d_head/2 + i."),
            (halves_to_pairs_reference(w, 1).double(),
             "you treated the whole matrix as one head: the rows are reordered inside EACH head of d_head rows."),
            (halves_to_pairs_reference(w.T.contiguous(), 1).T.double() if w.shape[1] % 2 == 0 else w.double(),
             "you moved the columns: the layout is a property of the output rows (the coordinates of q)."),
        ]
        diagnose(got, want, suspects, what="halves_to_pairs(w, n_heads)", atol=0)


# ---- q3: the probability of a two-token word -----------------------------------------------------------------------

def _two_token_cases() -> list[tuple[torch.Tensor, torch.Tensor, int, int]]:
    g = torch.Generator().manual_seed(160)
    cases = []
    for V, scale in ((50, 3.0), (200, 1.5), (10, 4.0)):
        z1, z2 = torch.randn(V, generator=g) * scale, torch.randn(V, generator=g) * scale
        a, b = (int(i) for i in torch.randint(0, V, (2,), generator=g))
        if a == b:
            b = (a + 1) % V
        cases.append((z1, z2, a, b))
    return cases


def _check_word_prob(word_probability) -> None:
    for z1, z2, a, b in _two_token_cases():
        out = call(word_probability, z1.clone(), z2.clone(), a, b)
        got = as_tensor(out, "your probability").double().reshape(-1)
        if got.numel() != 1:
            raise Incorrect(f"the answer is one number (a probability), got {got.numel()} numbers.")
        p1, p2 = torch.softmax(z1.double(), -1), torch.softmax(z2.double(), -1)
        want = (p1[a] * p2[b]).reshape(1)
        suspects = [
            ((p1[a] + p2[b]).reshape(1), "you added the two probabilities: both tokens must come, one after the "
                                         "other, so P(word) = P(first) * P(second | first), a product."),
            (p1[a].reshape(1), "that is only the first token's probability: multiply by the second's, read from "
                               "the logits computed after the first token."),
            ((p1[a] * p1[b]).reshape(1), "the second token's probability comes from the SECOND softmax (after the "
                                         "first token was appended), not from the first."),
            ((z1[a] * z2[b]).double().reshape(1), "turn the logits into probabilities first (softmax), then "
                                                  "multiply."),
            ((p1[a] * p2[b]).log().reshape(1), "that is the log-probability; the question asks for the probability "
                                               "(exponentiate)."),
            ((p1[b] * p2[a]).reshape(1), "the ids are swapped: first_id is read from the first softmax."),
        ]
        diagnose(got, want, suspects, what="word_probability(...)", atol=1e-9)


EXERCISES = ExerciseSet("16", "A real LLM", [
    Question(
        key="q1", title="Decode a Q4_0 block", answer="q4_0_block_weights", checker=_check_q4_0,
        hints=["np.frombuffer(block, dtype=np.uint8) gives the 18 bytes; raw[:2].view(np.float16) is d.",
               "q = np.concatenate([raw[2:] & 0x0F, raw[2:] >> 4]); the weights are d * (q - 8)."],
        solution='''
def q4_0_block_weights(block):
    raw = np.frombuffer(block, dtype=np.uint8)
    d = raw[:2].view(np.float16).astype(np.float32)[0]
    q = np.concatenate([raw[2:] & 0x0F, raw[2:] >> 4]).astype(np.float32)
    return d * (q - 8)
''',
        success="18 bytes for 32 weights: 4.5 bits per weight, with no minimum (the grid 0..15 is centred by -8)."),
    Question(
        key="q2", title="Back to the pairs layout", answer="halves_to_pairs", checker=_check_halves_to_pairs,
        hints=["Work head by head: w.reshape(n_heads, d_head, d_in). In the rotate-half layout, rows 0..d_head/2-1 "
               "of a head are the pairs layout's even rows, the rest its odd rows.",
               "order = [0, h, 1, h + 1, 2, h + 2, ...] with h = d_head // 2; "
               "w.reshape(n_heads, d_head, -1)[:, order].reshape(w.shape)"],
        solution='''
def halves_to_pairs(w, n_heads):
    d_head = w.shape[0] // n_heads
    h = d_head // 2
    order = torch.stack([torch.arange(h), torch.arange(h) + h], dim=1).reshape(-1)
    return w.reshape(n_heads, d_head, -1)[:, order].reshape(w.shape)
''',
        success="a permutation of the rows of W_Q and W_K (the same one for both) changes no score: q . k is "
                "unchanged when both vectors are permuted alike."),
    Question(
        key="q3", title="The probability of a two-token word", answer="word_probability", checker=_check_word_prob,
        hints=["The chain rule: P(a, b) = P(a) * P(b | a). Each factor is a softmax of its own logits.",
               "torch.softmax(logits_first, -1)[first_id] * torch.softmax(logits_second, -1)[second_id]"],
        solution='''
def word_probability(logits_first, logits_second, first_id, second_id):
    p_first = torch.softmax(logits_first, dim=-1)[first_id]
    p_second = torch.softmax(logits_second, dim=-1)[second_id]
    return p_first * p_second
''',
        success="a word cut into several tokens is as likely as the product of its pieces, each given the ones "
                "before it: that is why 'P(word)' needs one forward pass per piece."),
])
