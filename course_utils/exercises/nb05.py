"""Exercises for notebook 05 (multi-head attention): splitting into heads, merging them back, counting the
parameters, and the whole multi-head forward pass."""

from __future__ import annotations

import math

import torch

from .core import (
    ExerciseSet,
    Incorrect,
    LearnerCodeError,
    Question,
    as_tensor,
    call,
    describe_shape,
    diagnose,
)

ATOL = 1e-5




def _run(fn, *args):
    """Call the learner's function; a .view on a non-contiguous tensor gets a specific explanation."""
    try:
        return call(fn, *args)
    except LearnerCodeError as err:
        if "view size is not compatible" in str(err):
            raise Incorrect("after .transpose the tensor is no longer contiguous in memory, so .view cannot "
                            "reshape it: write .contiguous().view(...) or use .reshape(...) instead. "
                            f"(Details: {err})") from None
        raise


def _ref_split(x: torch.Tensor, h: int) -> torch.Tensor:
    B, T, d = x.shape
    return x.view(B, T, h, d // h).transpose(1, 2)


def _ref_merge(x: torch.Tensor) -> torch.Tensor:
    B, h, T, dh = x.shape
    return x.transpose(1, 2).reshape(B, T, h * dh)


# ---- q1: split into heads --------------------------------------------------------------------------------------

def _check_split_heads(split_heads) -> None:
    g = torch.Generator().manual_seed(5)
    for B, T, d, h in [(2, 5, 12, 3), (1, 7, 32, 4), (3, 4, 16, 8), (2, 6, 10, 2)]:
        x = torch.randn(B, T, d, generator=g)
        dh = d // h
        got = as_tensor(_run(split_heads, x.clone(), h))
        want = _ref_split(x, h)
        if tuple(got.shape) != (B, h, T, dh):
            msg = (f"wrong shape: expected {describe_shape((B, h, T, dh), 'B h T d_head')}, "
                   f"got {tuple(got.shape)}")
            if tuple(got.shape) == (B, T, h, dh):
                msg += (": did you forget the transpose? After .view(B, T, h, d_head), swap the time and head dims "
                        "with .transpose(1, 2) so that each head holds a whole sequence.")
            elif got.numel() == x.numel() and got.dim() == 3:
                msg += ": you still have 3 dims; cut d_model into h pieces of d_head (4 dims), then transpose."
            raise Incorrect(msg)
        diagnose(got, want, [
            (x.reshape(B, h, T, dh), "heads are mixed up: you used view (or reshape) straight to (B, h, T, d_head) "
                                     "without a transpose, so 'head 0' holds the first T*d_head numbers of the "
                                     "sequence, pieces of several tokens. View as (B, T, h, d_head) first, then "
                                     ".transpose(1, 2)."),
            (x.view(B, T, dh, h).permute(0, 3, 1, 2), "heads are interleaved: head 0 took features 0, h, 2h, ... "
                                                      "Each head takes a contiguous block of d_head features "
                                                      "(head 0: features 0..d_head-1): view as (B, T, h, d_head)."),
        ], f"the heads for x of shape {tuple(x.shape)}, h={h}")


# ---- q2: merge the heads ---------------------------------------------------------------------------------------

def _check_merge_heads(merge_heads) -> None:
    g = torch.Generator().manual_seed(6)
    for B, h, T, dh in [(2, 3, 5, 4), (1, 4, 7, 8), (3, 8, 4, 2), (2, 2, 6, 5)]:
        x = torch.randn(B, h, T, dh, generator=g)
        d = h * dh
        got = as_tensor(_run(merge_heads, x.clone()))
        if tuple(got.shape) != (B, T, d):
            msg = (f"wrong shape: expected {describe_shape((B, T, d), 'B T d_model')}, got {tuple(got.shape)}")
            if tuple(got.shape) == (B, T, h, dh):
                msg += (": you moved the heads next to d_head but did not flatten them: finish with "
                        ".reshape(B, T, h * d_head) (or .contiguous().view(...)).")
            elif tuple(got.shape) == (B, h, T * dh):
                msg += ": transpose(1, 2) first, so the heads sit next to d_head, then flatten the last two dims."
            raise Incorrect(msg)
        diagnose(got, _ref_merge(x), [
            (x.reshape(B, T, d), "heads are mixed up: you reshaped (B, h, T, d_head) straight to (B, T, d_model) "
                                 "without a transpose, which cuts across tokens. .transpose(1, 2) first "
                                 "-> (B, T, h, d_head), then flatten the last two dims."),
            (x.permute(0, 2, 3, 1).reshape(B, T, d), "features are interleaved across heads: you flattened "
                                                     "(d_head, h) instead of (h, d_head). Use .transpose(1, 2), "
                                                     "which gives (B, T, h, d_head), then flatten."),
        ], f"the merged heads for input shape {tuple(x.shape)}")


# ---- q3: count the parameters ----------------------------------------------------------------------------------

def _check_mha_param_count(mha_param_count) -> None:
    for d, h, bias in [(512, 8, True), (64, 4, False), (128, 2, True), (50, 5, True), (96, 12, False),
                       (32, 1, True)]:
        got = call(mha_param_count, d, h, bias)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if isinstance(got, float) and got.is_integer():
            got = int(got)
        if not isinstance(got, int):
            raise Incorrect(f"mha_param_count should return a whole number (an int), got {type(got).__name__}")
        dh = d // h
        want = 4 * d * d + (4 * d if bias else 0)
        if got == want:
            continue
        where = f"for d_model={d}, n_heads={h}, bias={bias}: expected {want}, got {got}"
        if bias and got == 4 * d * d:
            raise Incorrect(f"the parameter count is off by the biases ({where}): each of the four projections "
                            f"W_Q, W_K, W_V, W_O also has a bias vector of d_model numbers, 4 * d_model in all.")
        if not bias and got == 4 * d * d + 4 * d:
            raise Incorrect(f"with bias=False there are no bias vectors ({where}): count only the four "
                            "d_model x d_model weight matrices.")
        if got in (3 * d * d, 3 * d * d + 3 * d):
            raise Incorrect(f"you counted W_Q, W_K and W_V but not the output projection W_O ({where}).")
        if got in (4 * h * dh * dh, 4 * h * dh * dh + 4 * d, 3 * h * dh * dh + d * d + 4 * d,
                   3 * h * dh * dh + d * d):
            raise Incorrect(f"you counted h small d_head x d_head matrices ({where}). Each head's W_Q^i is "
                            "d_model x d_head: it reads the whole d_model-vector of a token. Side by side, the h "
                            "heads' matrices form one d_model x d_model matrix, so the count does not depend on h.")
        if got in (4 * d * d * h, 4 * d * d * h + 4 * d * h, 4 * d * d * h + 4 * d):
            raise Incorrect(f"you multiplied by the number of heads ({where}): the h heads share out one "
                            "d_model x d_model matrix per projection (d_head = d_model / h columns each), so more "
                            "heads do not mean more parameters.")
        raise Incorrect(f"the count is not right {where}. Four d_model x d_model matrices, plus a bias of "
                        "d_model numbers for each when bias=True.")


# ---- q4: the whole forward pass --------------------------------------------------------------------------------

def _ref_mha(x, w_q, w_k, w_v, w_o, h, scale_by=None, mix=False, project=True):
    B, T, d = x.shape
    dh = d // h

    def split(t):
        return t.reshape(B, h, T, dh) if mix else t.view(B, T, h, dh).transpose(1, 2)

    q, k, v = split(x @ w_q), split(x @ w_k), split(x @ w_v)
    s = q @ k.transpose(-2, -1) / math.sqrt(scale_by or dh)
    out = _ref_merge(torch.softmax(s, dim=-1) @ v)
    return out @ w_o if project else out


def _check_multi_head_attention(multi_head_attention) -> None:
    g = torch.Generator().manual_seed(9)
    for B, T, d, h in [(2, 5, 16, 4), (1, 6, 24, 3), (3, 4, 32, 8), (2, 7, 12, 2)]:
        x = torch.randn(B, T, d, generator=g, dtype=torch.float64)
        ws = [torch.randn(d, d, generator=g, dtype=torch.float64) / math.sqrt(d) * 2 for _ in range(4)]
        got = as_tensor(_run(multi_head_attention, x.clone(), *[w.clone() for w in ws], h))
        if tuple(got.shape) != (B, T, d):
            msg = f"wrong shape: expected {describe_shape((B, T, d), 'B T d_model')}, got {tuple(got.shape)}"
            if tuple(got.shape) == (B, h, T, d // h):
                msg += ": merge the heads back (transpose(1, 2), then reshape to (B, T, d_model)) and apply w_o."
            raise Incorrect(msg)
        want = _ref_mha(x, *ws, h)
        diagnose(got, want, [
            (_ref_mha(x, *ws, h, scale_by=d), f"you scaled the scores by sqrt(d_model) = sqrt({d}); each head "
                                              f"works in d_head = {d // h} dimensions, so divide by "
                                              f"sqrt(d_head) = {math.sqrt(d // h):.3g}."),
            (_ref_mha(x, *ws, h, project=False), "you forgot the output projection: multiply the merged heads "
                                                 "by w_o (concat(heads) @ w_o)."),
            (_ref_mha(x, *ws, 1, scale_by=d // h), "this is one head over all of d_model: split q, k and v into "
                                                   "h heads so that each head has its own attention weights."),
            (_ref_mha(x, *ws, 1), "this is one head over all of d_model (single-head attention): split q, k and v "
                                  "into h heads of d_head = d_model / h, attend in each, then merge."),
            (_ref_mha(x, *ws, h, mix=True), "heads are mixed up: you used view (or reshape) to (B, h, T, d_head) "
                                            "without a transpose. View as (B, T, h, d_head), then transpose(1, 2)."),
        ], f"the outputs (B={B}, T={T}, d_model={d}, h={h})")


EXERCISES = ExerciseSet("05", "Multi-head attention", [
    Question(
        key="q1", title="Split into heads", answer="split_heads", checker=_check_split_heads,
        hints=["Cut the last dim into h pieces: `x.view(B, T, n_heads, d // n_heads)` is (B, T, h, d_head).",
               "Then bring the head dim in front of time: `.transpose(1, 2)` gives (B, h, T, d_head)."],
        solution='''
def split_heads(x, n_heads):
    B, T, d = x.shape
    return x.view(B, T, n_heads, d // n_heads).transpose(1, 2)
''',
        success="each head now holds a whole sequence of small d_head-vectors, ready for batched attention."),
    Question(
        key="q2", title="Merge the heads", answer="merge_heads", checker=_check_merge_heads,
        hints=["Undo split_heads in reverse order: first `.transpose(1, 2)` -> (B, T, h, d_head).",
               "Then flatten the last two dims: `.reshape(B, T, h * d_head)` (a .view needs .contiguous() "
               "first, because the transpose left the memory out of order)."],
        solution='''
def merge_heads(x):
    B, h, T, d_head = x.shape
    return x.transpose(1, 2).reshape(B, T, h * d_head)
''',
        success="concatenating the heads is just this reshape; W_O then mixes them."),
    Question(
        key="q3", title="Count the parameters", answer="mha_param_count", checker=_check_mha_param_count,
        hints=["W_Q, W_K, W_V and W_O are each d_model x d_model, whatever the number of heads.",
               "With bias=True each projection also has a bias of d_model numbers."],
        solution='''
def mha_param_count(d_model, n_heads, bias=True):
    weights = 4 * d_model * d_model
    biases = 4 * d_model if bias else 0
    return weights + biases
''',
        success="4 d^2 + 4 d, and the number of heads does not appear: heads divide the work, not add weights."),
    Question(
        key="q4", title="Multi-head attention, forward pass", answer="multi_head_attention",
        checker=_check_multi_head_attention,
        hints=["Project (`x @ w_q` ...), split each of q, k, v into heads as in q1, attend in every head at once "
               "with `softmax(q @ k.transpose(-2, -1) / sqrt(d_head)) @ v`.",
               "Merge the heads as in q2, then multiply by `w_o`. Scale by sqrt(d_head), not sqrt(d_model)."],
        solution='''
def multi_head_attention(x, w_q, w_k, w_v, w_o, n_heads):
    B, T, d = x.shape
    d_head = d // n_heads

    def split(t):
        return t.view(B, T, n_heads, d_head).transpose(1, 2)

    q, k, v = split(x @ w_q), split(x @ w_k), split(x @ w_v)
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d_head), dim=-1)
    heads = weights @ v                                   # (B, h, T, d_head)
    return heads.transpose(1, 2).reshape(B, T, d) @ w_o
''',
        success="that is the whole layer: project, split, attend per head, merge, project."),
])
