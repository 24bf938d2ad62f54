"""Exercises for notebook 16 (a real LLM): decoding a Q4_0 block by hand, the key-value cache of a
grouped-query model, and the probability of a word the tokenizer cuts into two tokens."""

from __future__ import annotations

import math

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


# ---- q2: the key-value cache of a grouped-query model --------------------------------------------------------------

def kv_cache_reference(n_layers: int, d_model: int, n_heads: int, n_kv_heads: int, T: int,
                       bytes_per_number: float) -> float:
    """2 (keys and values) * layers * kv heads * head size * T * bytes per number."""
    return 2 * n_layers * n_kv_heads * (d_model // n_heads) * T * bytes_per_number


def _check_kv_cache(kv_cache_size) -> None:
    cases = [(16, 2048, 32, 8, 1000, 4), (30, 576, 9, 3, 8192, 2), (32, 4096, 32, 8, 4096, 2),
             (24, 1024, 16, 16, 512, 2), (40, 5120, 40, 8, 32768, 1)]
    for L, d, h, k, T, b in cases:
        got = call(kv_cache_size, L, d, h, k, T, b)
        if isinstance(got, torch.Tensor | np.ndarray) and got.size == 1 if isinstance(got, np.ndarray) else (
                isinstance(got, torch.Tensor) and got.numel() == 1):
            got = got.item()
        if isinstance(got, bool) or not isinstance(got, int | float | np.integer | np.floating):
            raise Incorrect(f"kv_cache_size{(L, d, h, k, T, b)} should be a number of bytes, got "
                            f"{type(got).__name__}")
        want = kv_cache_reference(L, d, h, k, T, b)
        if math.isclose(got, want, rel_tol=1e-9):
            continue
        if k != h and math.isclose(got, kv_cache_reference(L, d, h, h, T, b), rel_tol=1e-9):
            raise Incorrect(f"you stored keys and values for all {h} query heads; with grouped-query attention "
                            f"only the {k} key/value heads are cached (each is shared by {h // k} query heads).")
        if math.isclose(got, want / 2, rel_tol=1e-9):
            raise Incorrect("you counted only the keys (or only the values): the cache keeps both, a factor 2.")
        if math.isclose(got, want / b, rel_tol=1e-9) and b != 1:
            raise Incorrect("that is a number of numbers, not bytes: multiply by bytes_per_number.")
        if math.isclose(got, want / L, rel_tol=1e-9):
            raise Incorrect("that is one layer's cache: every layer keeps its own keys and values.")
        raise Incorrect(f"for {L} layers, d_model={d}, {h} heads, {k} key/value heads, T={T}, {b} bytes per number "
                        f"the cache holds {want:,.0f} bytes, got {got:,.0f}.")


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
        key="q2", title="The key-value cache of a grouped-query model", answer="kv_cache_size",
        checker=_check_kv_cache,
        hints=["Each layer caches one key and one value vector per token and per KEY/VALUE head.",
               "2 * n_layers * n_kv_heads * (d_model // n_heads) * T * bytes_per_number"],
        solution='''
def kv_cache_size(n_layers, d_model, n_heads, n_kv_heads, T, bytes_per_number):
    head_size = d_model // n_heads
    return 2 * n_layers * n_kv_heads * head_size * T * bytes_per_number
''',
        success="grouped-query attention divides the cache by n_heads / n_kv_heads: that is what it is for."),
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
