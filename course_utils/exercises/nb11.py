"""Exercises for notebook 11 (the math by the numbers): the parameters of a grouped-query block, the bytes of a
key-value cache, the memory of mixed-precision AdamW, and the GPU-days of a training run."""

from __future__ import annotations

import math

import torch

from .core import ExerciseSet, Incorrect, Question, call, expect_number


def _num(value, what: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Incorrect(f"{what} should be a number, got {type(value).__name__}")
    return float(value)


def _same(a: float, b: float, rel: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


# ---- q1: one Llama-style block with grouped-query attention -------------------------------------------------------

def _block_ref(d, h, kv, f):
    d_kv = kv * (d // h)
    return 2 * d * d + 2 * d * d_kv + 3 * d * f + 2 * d


def _check_gqa_block(gqa_block_params) -> None:
    cases = [(4096, 32, 8, 14336), (8192, 64, 8, 28672), (1024, 16, 4, 2816), (768, 12, 1, 2048),
             (512, 8, 8, 1376)]
    for d, h, kv, f in cases:
        got = _num(call(gqa_block_params, d, h, kv, f), f"gqa_block_params({d}, {h}, {kv}, {f})")
        want = _block_ref(d, h, kv, f)
        if _same(got, want):
            continue
        if kv != h and _same(got, 4 * d * d + 3 * d * f + 2 * d):
            raise Incorrect(f"with n_heads={h} and n_kv_heads={kv} you gave W_K and W_V the full d_model x d_model "
                            f"size. With grouped-query attention they only make n_kv_heads heads: d_model x "
                            f"(n_kv_heads * head_dim) = {d} x {kv * (d // h)}.")
        if _same(got, 2 * d * d + 2 * d * kv * d + 3 * d * f + 2 * d):
            raise Incorrect("W_K and W_V come out as d_model x (n_kv_heads * d_model): each key/value head has "
                            "head_dim = d_model / n_heads numbers, not d_model.")
        if _same(got, want - d * f):
            raise Incorrect("the feed-forward part has two matrices in your count; SwiGLU has three (gate, up and "
                            "down: 3 * d_model * d_ff).")
        if _same(got, want - 2 * d):
            raise Incorrect("almost: you left out the two RMSNorms of the block (d_model gains each).")
        if _same(got, want + 2 * d):
            raise Incorrect("your norms have 2 * d_model numbers each, as LayerNorm with a bias; RMSNorm has only "
                            "its gain: d_model numbers.")
        if _same(got, want - d * kv * (d // h)) or _same(got, want - d * d):
            raise Incorrect("one of the four attention matrices is missing: W_Q and W_O (d x d) and W_K and W_V "
                            "(d x n_kv_heads * head_dim).")
        expect_number(got, want, what=f"gqa_block_params({d}, {h}, {kv}, {f})", rel=1e-9)


# ---- q2: the bytes of a key-value cache ---------------------------------------------------------------------------

def _kv_ref(L, d, h, kv, T, B, nbytes):
    return 2 * L * kv * (d // h) * T * B * nbytes


def _check_kv_bytes(kv_cache_size) -> None:
    cases = [(32, 4096, 32, 8, 8192, 3, 4), (80, 8192, 64, 8, 131072, 1, 2), (4, 128, 4, 4, 64, 3, 4),
             (12, 768, 12, 12, 1024, 8, 2), (40, 5120, 40, 10, 4096, 2, 1)]
    for L, d, h, kv, T, B, nb in cases:
        args = (L, d, h, kv, T, B, nb)
        got = _num(call(kv_cache_size, *args), f"kv_cache_size{args}")
        want = _kv_ref(*args)
        if _same(got, want):
            continue
        if kv != h and _same(got, _kv_ref(L, d, h, h, T, B, nb)):
            raise Incorrect(f"with n_heads={h} and n_kv_heads={kv} your cache is {h // kv}x too big: only the "
                            "n_kv_heads key/value heads are stored (grouped-query attention's saving).")
        if _same(got, want / 2):
            raise Incorrect("half the right size: the cache holds keys AND values (the factor 2).")
        if B > 1 and _same(got, want / B):
            raise Incorrect(f"the cache of one sequence; there are batch={B} sequences, each with its own cache.")
        if _same(got, want / nb) and nb != 1:
            raise Incorrect("that is a count of numbers; multiply by the bytes per number to get bytes.")
        if _same(got, 2 * L * kv * d * T * B * nb):
            raise Incorrect("each key/value head stores head_dim = d_model / n_heads numbers per token, not "
                            "d_model.")
        if _same(got, want * T):
            raise Incorrect("the cache grows linearly with T (one key and one value per token and layer), not "
                            "with T * T: that is the score matrix.")
        expect_number(got, want, what=f"kv_cache_size{args}", rel=1e-9)


# ---- q3: mixed-precision AdamW ------------------------------------------------------------------------------------

def _check_mixed_adamw(mixed_adamw_bytes) -> None:
    for n in [7e9, 124_439_808, 1_000_000, 70_553_706_496]:
        got = _num(call(mixed_adamw_bytes, n), f"mixed_adamw_bytes({n:.4g})")
        want = 16 * n
        if _same(got, want, 1e-6):
            continue
        ratio = got / n if n else float("nan")
        if _same(got, 16 * n / 1e9, 1e-6) or _same(got, 16 * n / 2**30, 1e-6):
            raise Incorrect("that looks like GB or GiB; return the number of bytes (the notebook divides).")
        messages = {
            12: "12 bytes per parameter: one part is missing. Count five: bf16 weights (2), bf16 gradients (2), "
                "the fp32 master copy of the weights (4), and Adam's m and v in fp32 (4 + 4).",
            8: "8 bytes per parameter: Adam's moments are missing (m and v, 4 bytes each in fp32).",
            2: "2 bytes per parameter is the bf16 weights alone: enough for inference, not for training.",
            4: "4 bytes per parameter is one fp32 copy of the weights; training also keeps gradients and Adam's "
               "two moments.",
            18: "18 bytes per parameter: the gradients are in bf16 here (2 bytes), like the weights they belong to.",
            20: "20 bytes per parameter: you counted something twice. bf16 weights (2) + bf16 gradients (2) + fp32 "
                "master weights (4) + m (4) + v (4).",
            14: "14 bytes per parameter: one of the fp32 parts (master weights, m, v: 4 bytes each) is counted "
                "as 2 bytes.",
        }
        for k, msg in messages.items():
            if _same(ratio, k, 1e-6):
                raise Incorrect(msg)
        expect_number(got, want, what=f"mixed_adamw_bytes({n:.4g})", rel=1e-6)


# ---- q4: GPU-days of a training run -------------------------------------------------------------------------------

def _check_gpu_days(training_days) -> None:
    cases = [(8e9, 15e12, 1024, 989e12, 0.4), (175e9, 300e9, 1, 312e12, 0.5), (70e9, 1.4e12, 512, 989e12, 0.38),
             (1e6, 1e9, 2, 1e12, 0.25)]
    for N, D, G, peak, mfu in cases:
        args = (N, D, G, peak, mfu)
        got = _num(call(training_days, *args), f"training_days{args}")
        want = 6 * N * D / (G * peak * mfu * 86400)
        if _same(got, want, 1e-6):
            continue
        if _same(got, want / 3, 1e-6):
            raise Incorrect("a third of the answer: 2 N D is the forward pass only; training (forward + backward) "
                            "costs about 6 N D.")
        if _same(got, want * 24, 1e-6):
            raise Incorrect("that is hours: divide by 86,400 seconds per day, not 3,600.")
        if _same(got, want * 86400, 1e-6):
            raise Incorrect("that is seconds: divide by 86,400 to get days.")
        if G > 1 and _same(got, want * G, 1e-6):
            raise Incorrect(f"that is the time on one GPU; the run has {G} of them working at once.")
        if _same(got, want * mfu * mfu, 1e-6):
            raise Incorrect("you divided the peak by the utilisation; the GPUs reach only the fraction mfu of their "
                            "peak, so the FLOP/s they really do are peak_flops * mfu.")
        if _same(got, want * mfu, 1e-6):
            raise Incorrect("you used the peak FLOP/s as if the GPUs reached it; they reach only a fraction mfu "
                            "of it, so the run takes 1 / mfu times longer.")
        expect_number(got, want, what=f"training_days{args}", rel=1e-6)


EXERCISES = ExerciseSet("11", "The math by the numbers", [
    Question(
        key="q1", title="The parameters of a grouped-query block", answer="gqa_block_params",
        checker=_check_gqa_block,
        hints=["A Llama-style block has no biases: W_Q, W_K, W_V, W_O, three SwiGLU matrices and two RMSNorms.",
               "head_dim = d_model // n_heads; W_K and W_V are d_model x (n_kv_heads * head_dim); "
               "the FFN is 3 * d_model * d_ff; each RMSNorm has d_model gains."],
        solution='''
def gqa_block_params(d_model, n_heads, n_kv_heads, d_ff):
    head_dim = d_model // n_heads
    attention = 2 * d_model * d_model + 2 * d_model * n_kv_heads * head_dim
    ffn = 3 * d_model * d_ff
    norms = 2 * d_model
    return attention + ffn + norms
''',
        success="times 32 layers plus the two 128,256 x 4,096 embeddings, this is Llama-3-8B's 8,030,261,248."),
    Question(
        key="q2", title="The bytes of a key-value cache", answer="kv_cache_size", checker=_check_kv_bytes,
        hints=["Every layer stores one key and one value vector per token, per key/value head.",
               "2 * n_layers * n_kv_heads * (d_model // n_heads) * T * batch * bytes_per_number."],
        solution='''
def kv_cache_size(n_layers, d_model, n_heads, n_kv_heads, T, batch, bytes_per_number):
    head_dim = d_model // n_heads
    return 2 * n_layers * n_kv_heads * head_dim * T * batch * bytes_per_number
''',
        success="at long contexts and large batches the cache, not the weights, decides how many requests fit "
                "on a GPU."),
    Question(
        key="q3", title="Memory of mixed-precision AdamW", answer="mixed_adamw_bytes", checker=_check_mixed_adamw,
        hints=["List what lives in memory for every parameter during training, and the bytes of each.",
               "bf16 weights 2 + bf16 gradients 2 + fp32 master weights 4 + Adam m 4 + Adam v 4."],
        solution='''
def mixed_adamw_bytes(n_params):
    weights, grads, master, m, v = 2, 2, 4, 4, 4
    return n_params * (weights + grads + master + m + v)
''',
        success="16 bytes per parameter, as in plain fp32: mixed precision saves activation memory and time, "
                "not optimizer memory. A 7B model needs 112 GB before a single activation."),
    Question(
        key="q4", title="GPU-days of a training run", answer="training_days", checker=_check_gpu_days,
        hints=["Total FLOPs first (forward and backward), then divide by what the GPUs really do per second.",
               "6 * N * D / (n_gpus * peak_flops * mfu * 86400)."],
        solution='''
def training_days(n_params, n_tokens, n_gpus, peak_flops, mfu):
    flops = 6 * n_params * n_tokens
    return flops / (n_gpus * peak_flops * mfu * 86400)
''',
        success="this is how a lab plans a run: the budget in GPU-days follows from N, D and the utilisation."),
])
