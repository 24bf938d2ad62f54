"""Exercises for notebook 14 (fine-tuning and LoRA): choosing the rank from a spectrum, counting trainable
parameters of a different choice of adapted matrices, and taking a merged adapter out again."""

from __future__ import annotations

import torch

from .core import ExerciseSet, Incorrect, LearnerCodeError, Question, as_tensor, call, diagnose, expect_number


def _cases(seed: int) -> list[tuple[torch.Tensor, ...]]:
    """(x, W, b, A, B, alpha) with d_in != d_out and r != alpha, so transposes and scale mistakes show."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for n, d_in, d_out, r, alpha in [(5, 7, 4, 2, 6.0), (3, 6, 9, 3, 1.0), (1, 5, 5, 1, 4.0), (4, 8, 3, 4, 2.0)]:
        x = torch.randn(n, d_in, generator=g, dtype=torch.float64)
        W = torch.randn(d_out, d_in, generator=g, dtype=torch.float64)
        b = torch.randn(d_out, generator=g, dtype=torch.float64)
        A = torch.randn(r, d_in, generator=g, dtype=torch.float64)
        B = torch.randn(d_out, r, generator=g, dtype=torch.float64)
        out.append((x, W, b, A, B, alpha))
    return out


def _product_order_hint(err: LearnerCodeError) -> None:
    if "cannot be multiplied" in str(err) or "size mismatch" in str(err) or "must match the size" in str(err):
        raise Incorrect(f"{err}. Check the order of the products: A is (r, d_in) and B is (d_out, r), so the "
                        "update is B @ A, shape (d_out, d_in); for rows of x, x @ A.T @ B.T.") from None
    raise err


# ---- q1: choosing the rank from a spectrum -------------------------------------------------------------------

def _ref_rank(s: torch.Tensor, share: float) -> int:
    e = torch.sort(torch.as_tensor(s, dtype=torch.float64), descending=True).values ** 2
    kept = e.cumsum(0) / e.sum()
    return int((kept < share - 1e-12).sum()) + 1


def _rank_cases() -> list[tuple[torch.Tensor, float]]:
    g = torch.Generator().manual_seed(3)
    decaying = torch.sort(torch.rand(32, generator=g, dtype=torch.float64) ** 4, descending=True).values
    return [
        (torch.tensor([3.0, 2.0, 1.0, 0.5], dtype=torch.float64), 0.8),       # sigma instead of sigma^2 shows
        (torch.tensor([1.0, 3.0, 0.5, 2.0], dtype=torch.float64), 0.8),       # not sorted: sort first
        (torch.tensor([2.0, 2.0], dtype=torch.float64), 0.5),                 # exactly the share: "at least"
        (torch.tensor([5.0, 1.0, 0.0, 0.0], dtype=torch.float64), 1.0),       # all of it needs only rank 2
        (decaying, 0.9),
        (decaying, 0.5),
    ]


def _check_rank_for_share(rank_for_share) -> None:
    for s, share in _rank_cases():
        got = call(rank_for_share, s.clone(), share)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if not isinstance(got, int | float) or isinstance(got, bool) or got != int(got):
            raise Incorrect(f"return a whole number (the rank r), got {got!r}")
        got, want = int(got), _ref_rank(s, share)
        if got == want:
            continue
        srt = torch.sort(s, descending=True).values
        plain = srt.cumsum(0) / srt.sum()
        unsorted = (s ** 2).cumsum(0) / (s ** 2).sum()
        e = srt ** 2
        kept = e.cumsum(0) / e.sum()
        where = f"for singular values {[round(v, 3) for v in s.tolist()][:6]}{' ...' if len(s) > 6 else ''} " \
                f"and share {share:g}"
        if got == int((plain < share - 1e-12).sum()) + 1:
            raise Incorrect(f"{where}: you added up the singular values; the energy of a direction is its singular "
                            "value squared (the squared Frobenius norm is the sum of s_i^2).")
        if got == int((unsorted < share - 1e-12).sum()) + 1 and not torch.equal(s, srt):
            raise Incorrect(f"{where}: the values are not sorted; the best rank-r approximation keeps the r "
                            "largest, so sort them largest first.")
        if got == int((kept <= share + 1e-12).sum()) + 1 and got == want + 1:
            raise Incorrect(f"{where}: rank {want} already keeps exactly the share asked for; the rank should keep "
                            "*at least* that share (>=, not >).")
        if got == want - 1:
            raise Incorrect(f"{where}: you returned {got}, one less than the rank: an index counted from 0? The "
                            f"rank is the number of directions kept ({want}).")
        raise Incorrect(f"{where}: expected rank {want}, got {got}")


# ---- q2: counting trainable parameters ------------------------------------------------------------------------

def _ref_count(d: int, d_ff: int, n_layers: int, r: int) -> int:
    return n_layers * r * (2 * (d + d) + (d + d_ff) + (d_ff + d))


def _check_adapter_size(adapter_size) -> None:
    for d, d_ff, n_layers, r in [(64, 256, 3, 4), (4096, 11008, 32, 8), (10, 30, 1, 2), (128, 512, 4, 1)]:
        got = call(adapter_size, d, d_ff, n_layers, r)
        want = _ref_count(d, d_ff, n_layers, r)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if isinstance(got, int | float) and not isinstance(got, bool) and got != want:
            L = n_layers
            suspects = [
                (L * (2 * d * d + 2 * d * d_ff), "that is the size of the full matrices W_Q, W_V, W_1, W_2; LoRA "
                                                 "trains only A and B: r (d_in + d_out) numbers per matrix."),
                (want // L, f"that is the count for one block; there are n_layers = {L} of them."),
                (L * r * 4 * (d + d), "you counted every matrix as d x d; the feed-forward matrices are d x d_ff "
                                      "and d_ff x d."),
                (L * r * (3 * d + d_ff), "you counted only one of A and B per matrix: A holds r d_in numbers and "
                                         "B holds r d_out."),
                (L * r * 2 * (d + d), "that counts only W_Q and W_V; the feed-forward matrices W_1 and W_2 are "
                                      "adapted too."),
                (L * r * (4 * (d + d) + 2 * (d + d_ff)), "that counts all four attention matrices; only W_Q and "
                                                         "W_V are adapted here."),
                (L * r * r * (6 * d + 2 * d_ff), "A is (r, d_in) and B is (d_out, r): the count grows with r, "
                                                 "not with r squared."),
            ]
            for value, message in suspects:
                if got == value:
                    raise Incorrect(f"for d_model={d}, d_ff={d_ff}, n_layers={L}, r={r}: {message}")
        expect_number(got, want, what=f"the count for d_model={d}, d_ff={d_ff}, n_layers={n_layers}, r={r}",
                      rel=0, abs_tol=0.5)


# ---- q3: taking an adapter out again ---------------------------------------------------------------------------

def _check_remove_adapter(remove_adapter) -> None:
    for _, W, _, A, B, alpha in _cases(1):
        r = A.shape[0]
        merged = W + alpha / r * B @ A
        try:
            got = call(remove_adapter, merged.clone(), A.clone(), B.clone(), alpha)
        except LearnerCodeError as err:
            _product_order_hint(err)
        got = as_tensor(got)
        if tuple(got.shape) != tuple(W.shape):
            raise Incorrect(f"wrong shape: expected (d_out={W.shape[0]}, d_in={W.shape[1]}), the shape of the "
                            f"weight, got {tuple(got.shape)}")
        diagnose(got, W, [
            (merged + alpha / r * B @ A, "you added the update a second time; to undo the merge, subtract it."),
            (merged - B @ A, "the update is not scaled: subtract (alpha / r) B A."),
            (merged - alpha * B @ A, f"you subtracted alpha B A (alpha = {alpha:g}); the scale is alpha / r, "
                                     f"with r = {r} the number of rows of A."),
            (merged, "you returned the merged weight unchanged: subtract (alpha / r) B A."),
            (alpha / r * B @ A, "you returned the update itself; return W' - (alpha / r) B A."),
        ], what="the base weight")


EXERCISES = ExerciseSet("14", "Fine-tuning and LoRA", [
    Question(
        key="q1", title="Choosing the rank from a spectrum", answer="rank_for_share", checker=_check_rank_for_share,
        hints=["Sort the singular values largest first and square them: s_i^2 is the energy of direction i.",
               "The share kept by rank r is (s_1^2 + ... + s_r^2) / (s_1^2 + ... + s_n^2): take a cumulative sum, "
               "divide by the total, and count how many entries stay below the share; the rank is one more."],
        solution='''
def rank_for_share(s, share):
    energy = torch.sort(torch.as_tensor(s, dtype=torch.float64), descending=True).values ** 2
    kept = energy.cumsum(0) / energy.sum()
    return int((kept < share - 1e-12).sum()) + 1
''',
        success="the same rule picks LoRA's rank from a full fine-tuning run's update: the spectrum tells you the "
                "rank before you train an adapter."),
    Question(
        key="q2", title="Counting trainable parameters", answer="adapter_size", checker=_check_adapter_size,
        hints=["One adapted matrix of shape (d_out, d_in) trains A (r x d_in) and B (d_out x r): r (d_in + d_out).",
               "Per block: W_Q and W_V give r (d + d) each; W_1 gives r (d + d_ff) and W_2 r (d_ff + d). Then "
               "multiply by n_layers."],
        solution='''
def adapter_size(d_model, d_ff, n_layers, r):
    per_block = 2 * r * (d_model + d_model) + r * (d_model + d_ff) + r * (d_ff + d_model)
    return n_layers * per_block
''',
        success="for d_model=4096, d_ff=11008, 32 layers and r=8 that is 11.9 million numbers: under 0.2% of a 7B "
                "model."),
    Question(
        key="q3", title="Taking an adapter out again", answer="remove_adapter", checker=_check_remove_adapter,
        hints=["The merge added (alpha / r) B A to W. Undo it by subtracting the same matrix.",
               "r = A.shape[0]; B is (d_out, r) and A is (r, d_in), so B @ A has the weight's shape."],
        solution='''
def remove_adapter(W_merged, A, B, alpha):
    r = A.shape[0]
    return W_merged - (alpha / r) * B @ A
''',
        success="merging and unmerging are exact up to float rounding: one base model can serve many adapters."),
])
