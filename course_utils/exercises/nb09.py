"""Exercises for notebook 09 (generation): temperature, top-k, top-p and a greedy decoding loop."""

from __future__ import annotations

import torch

from .core import ExerciseSet, Incorrect, LearnerCodeError, NotAttempted, Question, as_tensor, call, describe_shape

NEG_INF = float("-inf")


def _close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), atol=atol, rtol=1e-4))


def _shaped(value, shape, names: str) -> torch.Tensor:
    t = as_tensor(value)
    if tuple(t.shape) != tuple(shape):
        raise Incorrect(f"wrong shape: expected {describe_shape(shape, names)} (the same shape as the input), "
                        f"got {tuple(t.shape)}")
    return t


# ---- q1: min-p filtering ----------------------------------------------------------------------------------------

def _ref_min_p(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    probs = torch.softmax(logits.double(), dim=-1)
    keep = probs >= min_p * probs.amax(dim=-1, keepdim=True)
    return logits.masked_fill(~keep, float("-inf"))


def _check_min_p_filter(min_p_filter) -> None:
    g = torch.Generator().manual_seed(0)
    candidates, generic = None, None          # the likely mistakes consistent with every wrong case so far
    for shape, m in [((3, 9), 0.1), ((9,), 0.3), ((2, 4, 7), 0.05), ((5, 8), 0.5), ((4, 12), 0.2)]:
        logits = torch.randn(*shape, generator=g) * 2
        got = _shaped(call(min_p_filter, logits.clone(), m), shape, "... V")
        want = _ref_min_p(logits, m)
        kept, want_kept = torch.isfinite(got), torch.isfinite(want)
        if torch.equal(kept, want_kept) and _close(got.masked_fill(~kept, 0.0), want.masked_fill(~want_kept, 0.0)):
            continue
        if not torch.isneginf(got[~kept]).all() or (torch.equal(kept, torch.ones_like(kept))
                                                    and (got == 0).any() and not (want == 0).any()):
            raise Incorrect("the filtered-out tokens should get the logit float('-inf') (probability exactly 0 "
                            "after the softmax), not 0: a logit of 0 is an ordinary score.")
        if torch.equal(kept, want_kept):
            raise Incorrect("the right tokens are kept, but their logits changed: keep the kept logits as they are.")
        probs = torch.softmax(logits.double(), dim=-1)
        suspects = {
            "you kept the tokens with probability at least min_p itself; min-p scales the threshold by the most "
            "likely token's probability: keep p_i >= min_p * max_j p_j.": probs >= m,
            "you compared logits; the threshold is on the probabilities: softmax first, then p_i >= min_p * max p.":
                logits >= m * logits.amax(-1, keepdim=True),
            "the threshold is min_p times the largest probability, not (1 - min_p) times.":
                probs >= (1 - m) * probs.amax(-1, keepdim=True),
        }
        matching = [msg for msg, wrong in suspects.items() if torch.equal(kept, wrong)]
        candidates = matching if candidates is None else [c for c in candidates if c in matching]
        generic = (f"with min_p = {m} you keep {int(kept.sum())} tokens where {int(want_kept.sum())} should remain "
                   "(those with p_i >= min_p * max p).")
        if len(candidates) <= 1:
            break
    if generic is not None:
        raise Incorrect(candidates[0] if candidates else generic)


# ---- q2: top-k -------------------------------------------------------------------------------------------------

def _check_top_k(keep_top_k) -> None:
    g = torch.Generator().manual_seed(1)
    cases = [(torch.randn(4, 10, generator=g), 3), (torch.randn(12, generator=g), 1),
             (torch.randn(2, 3, 6, generator=g), 6), (torch.randn(5, 8, generator=g), 5),
             (torch.tensor([[1.0, 3.0, 3.0, 3.0, 0.5, 2.0]]), 2),        # ties at the k-th value
             (torch.tensor([0.2, 2.0, 2.0, -1.0, 1.0]), 2)]
    for logits, k in cases:
        got = _shaped(call(keep_top_k, logits.clone(), k), tuple(logits.shape), "... V")
        kept = torch.isfinite(got)
        n_kept = kept.sum(-1)
        if torch.isnan(got).any():
            raise Incorrect("your result contains NaN: set the removed logits to float('-inf').")
        if k < logits.shape[-1] and (n_kept == logits.shape[-1]).all():
            if (got == 0).any() and not torch.isinf(got).any():
                raise Incorrect("the removed tokens are 0, not -inf: a logit of 0 still gets probability "
                                "exp(0) / sum > 0 after the softmax. Fill them with float('-inf').")
            raise Incorrect(f"nothing was removed: with k={k} only the {k} largest logits of each row should "
                            "stay, the others become -inf.")
        if (n_kept > k).any():
            extra = int(n_kept.max())
            ties = bool((logits.unsqueeze(-1) == logits.unsqueeze(-2)).sum() > logits.numel())
            why = (" There are ties at the k-th largest value here: comparing with it (logits < kth) keeps every "
                   "tied token. Keep exactly k, e.g. with the indices torch.topk returns." if ties else
                   " An off-by-one? Compare with the k-th largest value, torch.topk(logits, k).values[..., -1:].")
            raise Incorrect(f"top-k with k={k} kept {extra} tokens in a row; it should keep exactly {k}.{why}")
        if (n_kept < k).any():
            raise Incorrect(f"with k={k} you kept only {int(n_kept.min())} tokens in a row; keep exactly {k}.")
        if not torch.equal(got[kept], logits[kept]):
            if _close(got[kept], torch.softmax(logits, -1)[kept]):
                raise Incorrect("you returned probabilities; return the logits (unchanged where kept, -inf "
                                "elsewhere), so that a softmax can follow.")
            raise Incorrect("the logits you kept should be unchanged (only the removed ones become -inf).")
        smallest_kept = torch.where(kept, logits, torch.inf).amin(-1)
        largest_dropped = torch.where(kept, -torch.inf, logits).amax(-1)
        if (smallest_kept < largest_dropped).any():
            if torch.equal(kept, torch.isfinite(_ref_top_k(-logits, k))):
                raise Incorrect("you kept the k smallest logits: top-k keeps the k largest "
                                "(torch.topk's default, largest=True).")
            raise Incorrect(f"with k={k} you did not keep the k largest logits of each row.")


def _ref_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    idx = torch.topk(logits, k, dim=-1).indices
    return torch.full_like(logits, NEG_INF).scatter(-1, idx, logits.gather(-1, idx))


# ---- q3: top-p -------------------------------------------------------------------------------------------------

def _ref_top_p(probs: torch.Tensor, p: float) -> torch.Tensor:
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True, stable=True)
    keep_sorted = (sorted_probs.cumsum(-1) - sorted_probs) < p
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    kept = probs * keep
    return kept / kept.sum(-1, keepdim=True)


def _check_top_p(top_p_probs) -> None:
    g = torch.Generator().manual_seed(2)
    cases = [(torch.tensor([0.1, 0.4, 0.05, 0.3, 0.15]), 0.6),
             (torch.tensor([0.5, 0.3, 0.15, 0.05]), 0.7),
             (torch.softmax(torch.randn(3, 9, generator=g) * 2, -1), 0.8),
             (torch.softmax(torch.randn(2, 12, generator=g) * 3, -1), 0.5),
             (torch.tensor([0.05, 0.15, 0.3, 0.5]), 0.9),
             (torch.tensor([0.7, 0.2, 0.1]), 0.3),
             (torch.tensor([0.125, 0.5, 0.125, 0.25]), 0.75)]   # exact in binary: 0.5 + 0.25 is exactly p
    for probs, p in cases:
        got = _shaped(call(top_p_probs, probs.clone(), p), tuple(probs.shape), "... V").double()
        want = _ref_top_p(probs.double(), p)
        if _close(got, want):
            continue
        if torch.isnan(got).any():
            raise Incorrect("your result contains NaN: divide by the sum of the kept probabilities, which is > 0.")
        kept, want_kept = got > 0, want > 0
        n_kept, n_want = kept.sum(-1), want_kept.sum(-1)
        sorted_first = torch.sort(probs.double(), -1, descending=True).values
        if _close(torch.sort(got, -1, descending=True).values, torch.sort(want, -1, descending=True).values) \
                and not _close(got, want):
            if _close(got, torch.sort(want, -1, descending=True).values):
                raise Incorrect("your probabilities come out in sorted order: put each one back at its own "
                                "token's position (scatter with the sort's indices).")
        if torch.equal(kept, want_kept):
            sums = got.sum(-1)
            if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
                raise Incorrect(f"you kept the right tokens, but the probabilities don't sum to 1 after "
                                f"filtering (they sum to {sums.flatten()[0].item():.4g}): renormalise by "
                                "dividing by the kept mass.")
            raise Incorrect("you kept the right tokens, but their probabilities should be the original ones "
                            "divided by the kept mass.")
        kept_mass = (probs.double() * kept).sum(-1)
        if (kept_mass < p - 1e-9).any():
            if (n_kept == n_want - 1).any():
                raise Incorrect(f"with p={p} the tokens you kept hold less than p of the mass: you dropped the "
                                "token that crosses p. Keep a token while the mass of the tokens *before* it "
                                "is still < p (cumsum - probs < p).")
            if not torch.equal(kept, _first_by_index(probs, p)):
                raise Incorrect(f"with p={p} the tokens you kept hold less than p of the mass.")
        top_n = torch.sort(probs.double(), -1, descending=True).values.gather(-1, (n_kept - 1).clamp_min(0)
                                                                            .unsqueeze(-1))
        most_likely = ((probs.double() >= top_n) == kept).all()   # kept = the n_kept most likely tokens
        if not most_likely and torch.equal(kept, _first_by_index(probs, p)):
            raise Incorrect("you kept tokens in vocabulary order; keep the *most likely* ones: sort the "
                            "probabilities in decreasing order first.")
        if (n_kept > n_want).any():
            raise Incorrect(f"with p={p} you kept {int(n_kept.max())} tokens where {int(n_want.max())} suffice: "
                            "top-p keeps the *smallest* set of most likely tokens whose mass is >= p (is your "
                            "comparison <= where it should be <?).")
        raise Incorrect(f"for p={p} and probabilities {sorted_first.flatten()[:4].tolist()}... (sorted) the "
                        "tokens kept are not right.")


def _first_by_index(probs: torch.Tensor, p: float) -> torch.Tensor:
    """The mistake of not sorting: keep tokens in vocabulary order until the mass reaches p."""
    return (probs.double().cumsum(-1) - probs.double()) < p


# ---- q4: greedy decoding ---------------------------------------------------------------------------------------

def _tiny_model(seed: int = 0):
    from ..model import GPTConfig, MiniGPT

    torch.manual_seed(seed)
    m = MiniGPT(GPTConfig(vocab_size=13, block_size=8, d_model=32, n_heads=2, n_layers=2)).eval()
    with torch.no_grad():
        for prm in m.parameters():
            if prm.dim() > 1:
                prm.mul_(8.0)
    return m


def _ref_greedy(model, idx, n, position=-1, crop=True):
    bs = model.config.block_size
    for _ in range(n):
        logits, _ = model(idx[:, -bs:] if crop else idx)
        idx = torch.cat([idx, logits[:, position].argmax(-1, keepdim=True)], dim=1)
    return idx


def _check_greedy_generate(greedy_generate) -> None:
    state = torch.random.get_rng_state()
    try:
        model = _tiny_model()
        g = torch.Generator().manual_seed(3)
        for B, T, n in [(2, 3, 4), (1, 1, 5), (3, 2, 14)]:
            idx = torch.randint(0, 13, (B, T), generator=g)
            with torch.no_grad():
                want = _ref_greedy(model, idx, n)
                try:
                    got = call(greedy_generate, model, idx.clone(), n)
                except LearnerCodeError as err:
                    if "_Blank" in str(err):      # the template's `next_id = ____` reached torch.cat
                        raise NotAttempted() from None
                    if "block_size" in str(err) and T + n > model.config.block_size:
                        raise Incorrect(f"generating {n} tokens from {T} goes past block_size="
                                        f"{model.config.block_size} and the model refused: feed it only the last "
                                        "block_size tokens, idx[:, -block_size:].") from None
                    raise
            got = as_tensor(got)
            if tuple(got.shape) == (B, n):
                raise Incorrect(f"you returned only the {n} new tokens, shape {(B, n)}: return the prompt "
                                f"followed by them, shape (B={B}, T+n={T + n}).")
            if tuple(got.shape) != (B, T + n):
                raise Incorrect(f"wrong shape: expected (B={B}, T+n={T + n}), got {tuple(got.shape)}")
            if not torch.equal(got[:, :T].long(), idx):
                raise Incorrect("the output should start with the prompt itself, unchanged.")
            if torch.equal(got.long(), want):
                continue
            with torch.no_grad():
                first = _ref_greedy(model, idx, n, position=0)
            if torch.equal(got.long(), first) and T > 1:
                raise Incorrect("you took the logits of the first position, logits[:, 0]; the next token is "
                                "predicted at the *last* position: logits[:, -1].")
            again = as_tensor(call(greedy_generate, model, idx.clone(), n))
            if not torch.equal(again, got):
                raise Incorrect("two runs on the same prompt gave different tokens: greedy decoding takes the "
                                "argmax, it does not sample.")
            raise Incorrect(f"for a prompt of {T} token(s) the tokens differ from greedy decoding: expected "
                            f"{want[0].tolist()}, got {got[0].tolist()}")
    finally:
        torch.random.set_rng_state(state)


EXERCISES = ExerciseSet("09", "Generation", [
    Question(
        key="q1", title="Min-p filtering", answer="min_p_filter", checker=_check_min_p_filter,
        hints=["Probabilities first: `probs = torch.softmax(logits, dim=-1)`; the threshold of each row is "
               "`min_p * probs.amax(dim=-1, keepdim=True)`.",
               "`logits.masked_fill(probs < threshold, float('-inf'))` keeps the rest unchanged."],
        solution='''
def min_p_filter(logits, min_p):
    probs = torch.softmax(logits, dim=-1)
    threshold = min_p * probs.amax(dim=-1, keepdim=True)          # (..., 1): a share of the top probability
    return logits.masked_fill(probs < threshold, float("-inf"))
''',
        success="like top-p, min-p adapts to the model's confidence: a sure model keeps one or two tokens, an "
                "unsure one keeps many; unlike top-p it needs no sort."),
    Question(
        key="q2", title="Top-k filtering", answer="keep_top_k", checker=_check_top_k,
        hints=["`torch.topk(logits, k, dim=-1)` gives the values and the *indices* of the k largest.",
               "Start from a tensor full of -inf (`torch.full_like(logits, float('-inf'))`) and put the kept "
               "logits back at their indices with `.scatter(-1, indices, values)`."],
        solution='''
def keep_top_k(logits, k):
    values, indices = torch.topk(logits, k, dim=-1)
    out = torch.full_like(logits, float("-inf"))
    return out.scatter(-1, indices, values)
''',
        success="exactly k tokens survive, even when several logits tie at the k-th value."),
    Question(
        key="q3", title="Top-p (nucleus) filtering", answer="top_p_probs", checker=_check_top_p,
        hints=["Sort the probabilities in decreasing order (`torch.sort(probs, dim=-1, descending=True)` also "
               "gives the order), and take the running sum with `.cumsum(-1)`.",
               "A token is kept when the mass *before* it is still below p: `cumsum - sorted_probs < p`. Put "
               "the keep-mask back in vocabulary order with `scatter`, zero the rest, divide by the kept sum."],
        solution='''
def top_p_probs(probs, p):
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
    keep_sorted = (sorted_probs.cumsum(dim=-1) - sorted_probs) < p
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    kept = probs * keep
    return kept / kept.sum(dim=-1, keepdim=True)
''',
        success="the nucleus grows when the model is unsure and shrinks when it is confident."),
    Question(
        key="q4", title="A greedy decoding loop", answer="greedy_generate", checker=_check_greedy_generate,
        hints=["At each step: logits, _ = model(context); take the last position's logits, logits[:, -1]; "
               "its argmax is the next token; append it with torch.cat(..., dim=1).",
               "The model sees at most model.config.block_size tokens: context = idx[:, -block_size:]."],
        solution='''
def greedy_generate(model, idx, max_new_tokens):
    block_size = model.config.block_size
    for step in range(max_new_tokens):
        logits, _ = model(idx[:, -block_size:])                    # crop to what the model can see
        next_id = logits[:, -1, :].argmax(dim=-1, keepdim=True)   # (B, 1): the last position predicts
        idx = torch.cat((idx, next_id), dim=1)
    return idx
''',
        success="this is generate_no_cache with greedy=True; the key-value cache makes the same loop faster."),
])
