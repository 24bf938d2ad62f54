"""Bigram language models: counts, probabilities, sampling, cross-entropy, and the same model learned by gradient
descent. Used by notebook 01 (word level on the opening sentence, character level on the Wikipedia text).

Conventions: ``counts[i, j]`` is how often token ``j`` follows token ``i``; ``probs[i, j] = P(next = j | prev = i)``,
so every row of ``probs`` is a probability distribution over the next token.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from .errors import ShapeError, VocabularyError, check_shape
from .tokenizers import split_words

END = "."  # in the word-level toy model a sentence ends at its full stop


def sentence_words(text: str) -> list[str]:
    """Lowercase words and punctuation of a text: "The more you know." -> ['the', 'more', 'you', 'know', '.']."""
    words = split_words(text, lower=True)
    if not words:
        raise ValueError("the text has no words in it")
    return words


def vocabulary(tokens: Sequence[str]) -> list[str]:
    """The distinct tokens, sorted (so ids never depend on the order of the text)."""
    if len(tokens) == 0:
        raise ValueError("vocabulary needs at least one token")
    return sorted(set(tokens))


def _as_ids(ids, vocab_size: int) -> torch.Tensor:
    ids = torch.as_tensor(ids, dtype=torch.long)
    if ids.dim() != 1:
        raise ShapeError(f"ids should be a 1-D sequence of token ids, shape (N,); got {tuple(ids.shape)}")
    if len(ids) < 2:
        raise ValueError(f"a bigram needs at least two tokens; got {len(ids)}")
    if int(ids.min()) < 0 or int(ids.max()) >= vocab_size:
        raise ValueError(f"token ids must lie in 0..{vocab_size - 1}; got ids from {int(ids.min())} "
                         f"to {int(ids.max())}")
    return ids


def count_bigrams(ids, vocab_size: int) -> torch.Tensor:
    """Counts of consecutive pairs: ``counts[i, j]`` = how often id j follows id i. Shape (V, V), int64.

    ``ids`` is a 1-D sequence (list or tensor) of N >= 2 ids in 0..V-1. One ``bincount``, fast for millions.
    """
    ids = _as_ids(ids, vocab_size)
    pairs = ids[:-1] * vocab_size + ids[1:]
    return torch.bincount(pairs, minlength=vocab_size * vocab_size).reshape(vocab_size, vocab_size)


def word_bigram_counts(text: str) -> tuple[torch.Tensor, list[str]]:
    """Word-level bigram counts of a text (lowercased): (counts of shape (V, V), the sorted vocabulary)."""
    words = sentence_words(text)
    vocab = vocabulary(words)
    stoi = {w: i for i, w in enumerate(vocab)}
    return count_bigrams([stoi[w] for w in words], len(vocab)), vocab


def probabilities(counts: torch.Tensor, k: float = 0.0) -> torch.Tensor:
    """Row-normalise counts into next-token probabilities, with add-k smoothing: (N_ij + k) / (N_i + k V).

    Shape (V, V) in, float64 (V, V) out. With k = 0 this is the maximum-likelihood estimate; a row with no
    counts at all (a token never followed by anything, such as a final full stop) stays all zero.
    """
    check_shape(counts, ("V", "V"), "counts")
    if counts.shape[0] != counts.shape[1]:
        raise ShapeError(f"counts should be square (V, V); got {tuple(counts.shape)}")
    if k < 0:
        raise ValueError(f"the smoothing constant k must be >= 0, got {k}")
    c = counts.double() + k
    totals = c.sum(dim=1, keepdim=True)
    return torch.where(totals > 0, c / totals.clamp_min(1e-300), torch.zeros_like(c))


def cross_entropy(probs: torch.Tensor, ids) -> float:
    """Average -log P(next | prev) in nats over the N-1 consecutive pairs of ``ids``. inf if some P is 0."""
    check_shape(probs, ("V", "V"), "probs")
    ids = _as_ids(ids, probs.shape[0])
    p = probs[ids[:-1], ids[1:]].double()
    return float(-torch.log(p).mean())


def cross_entropy_from_counts(probs: torch.Tensor, counts: torch.Tensor) -> float:
    """The same average as :func:`cross_entropy`, computed from bigram counts: -sum N_ij log P_ij / sum N_ij."""
    check_shape(probs, ("V", "V"), "probs")
    check_shape(counts, tuple(probs.shape), "counts")
    mask = counts > 0
    return float(-(counts[mask].double() * torch.log(probs[mask].double())).sum() / counts.sum())


def nats_to_bits(nats: float) -> float:
    """Convert a loss in nats (natural log) to bits (log base 2): divide by ln 2."""
    return float(nats) / math.log(2)


def perplexity(nats: float) -> float:
    """exp(cross-entropy): the number of equally likely choices that would be just as surprising."""
    return float(math.exp(nats))


def choose_k(train_ids, vocab_size: int, ks: Sequence[float] = (0.001, 0.01, 0.03, 0.1, 0.3, 1.0),
             dev_fraction: float = 0.1) -> tuple[float, dict[float, float]]:
    """Pick the add-k constant on training data only: fit on the first 90% of ``train_ids``, score each k on the
    last 10% (a development split), return (best k, {k: dev loss in nats})."""
    ids = _as_ids(train_ids, vocab_size)
    n = int(len(ids) * (1 - dev_fraction))
    fit, dev = ids[:n], ids[n:]
    counts = count_bigrams(fit, vocab_size)
    losses = {float(k): cross_entropy(probabilities(counts, k), dev) for k in ks}
    best = min(losses, key=losses.get)
    return best, losses


def sample(probs: torch.Tensor, start: int, max_tokens: int = 20, generator: torch.Generator | None = None,
           stop: int | None = None) -> list[int]:
    """Generate ids: predict the next-token distribution from the last id, sample one, append, repeat.

    Stops after ``max_tokens`` new ids, at ``stop``, or at a token whose row has no probability mass.
    """
    check_shape(probs, ("V", "V"), "probs")
    V = probs.shape[0]
    if not 0 <= int(start) < V:
        raise ValueError(f"start id {start} is outside 0..{V - 1}")
    out = [int(start)]
    for _ in range(max_tokens):
        row = probs[out[-1]]
        if float(row.sum()) <= 0:
            break
        out.append(int(torch.multinomial(row.float(), 1, generator=generator)))
        if stop is not None and out[-1] == stop:
            break
    return out


def token_id(token: str, itos: Sequence[str], what: str = "word") -> int:
    """The id of a token, or a VocabularyError that names it and suggests close ones."""
    if not isinstance(token, str):
        raise TypeError(f"{what} should be a string, got {type(token).__name__}")
    try:
        return list(itos).index(token)
    except ValueError:
        raise VocabularyError(token, list(itos), what=what) from None


def next_token_table(probs: torch.Tensor, itos: Sequence[str], token: str, top: int = 10,
                     what: str = "word") -> list[tuple[str, float]]:
    """The ``top`` most likely next tokens after ``token`` with their probabilities, most likely first."""
    check_shape(probs, (len(itos), len(itos)), "probs")
    row = probs[token_id(token, itos, what)]
    values, idx = torch.sort(row, descending=True)
    return [(itos[int(i)], float(v)) for v, i in zip(values[:top], idx[:top], strict=True) if float(v) > 0]


def show_token(t: str) -> str:
    """A printable label for a token: spaces and newlines made visible."""
    return {" ": "' '", "\n": "\\n"}.get(t, t)


def matrix_size(vocab_size: int, bytes_per_entry: int = 4) -> dict[str, float]:
    """Entries and memory of a full V x V transition matrix (float32 by default)."""
    if vocab_size <= 0:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    entries = vocab_size * vocab_size
    return {"vocab": vocab_size, "entries": entries, "bytes": entries * bytes_per_entry,
            "GB": entries * bytes_per_entry / 1e9}


# ---- the same model with learned parameters -------------------------------------------------------------------

def bigram_loss_from_counts(W: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the model softmax(one_hot(prev) @ W) on all bigrams, from their counts:
    -sum_ij N_ij log softmax(W)_ij / sum_ij N_ij. Exactly the full-batch loss, at the cost of one V x V matrix."""
    check_shape(W, ("V", "V"), "W")
    check_shape(counts, tuple(W.shape), "counts")
    logp = torch.log_softmax(W, dim=1)
    return -(counts.to(W.dtype) * logp).sum() / counts.sum()


def train_bigram_weights(counts: torch.Tensor, steps: int = 300, lr: float = 0.5,
                         seed: int = 0) -> tuple[torch.Tensor, list[float]]:
    """Learn W (V, V) by full-batch gradient descent (Adam) on the count loss. Returns (W, loss per step)."""
    check_shape(counts, ("V", "V"), "counts")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    g = torch.Generator().manual_seed(seed)
    W = (0.01 * torch.randn(counts.shape, generator=g, dtype=torch.float64)).requires_grad_()
    opt = torch.optim.Adam([W], lr=lr)
    losses = []
    for _ in range(steps):
        loss = bigram_loss_from_counts(W, counts)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return W.detach(), losses


# ---- pictures -------------------------------------------------------------------------------------------------

def plot_transition_matrix(probs: torch.Tensor, itos: Sequence[str], ax=None, title: str | None = None,
                           annotate: bool = True):
    """Heatmap of P(next | prev): rows are the previous token, columns the next one."""
    import matplotlib.pyplot as plt

    check_shape(probs, (len(itos), len(itos)), "probs")
    if ax is None:
        _, ax = plt.subplots(figsize=(0.55 * len(itos) + 2, 0.5 * len(itos) + 1.5))
    p = probs.double().numpy()
    im = ax.imshow(p, cmap="Blues", vmin=0, vmax=1)
    labels = [show_token(t) for t in itos]
    ax.set_xticks(range(len(itos)), labels, rotation=60, ha="right")
    ax.set_yticks(range(len(itos)), labels)
    if annotate:
        for i, j in zip(*np.nonzero(p), strict=True):
            ax.text(j, i, f"{p[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if p[i, j] > 0.6 else "black")
    ax.set_xlabel("next token")
    ax.set_ylabel("previous token")
    ax.set_title(title or "Bigram transition matrix P(next | previous)")
    ax.figure.colorbar(im, ax=ax, label="probability", fraction=0.046)
    return ax


def plot_next_token(probs: torch.Tensor, itos: Sequence[str], token: str, top: int = 15, ax=None,
                    what: str = "word"):
    """Bar chart of the ``top`` most likely tokens after ``token``."""
    import matplotlib.pyplot as plt

    table = next_token_table(probs, itos, token, top, what)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3))
    ax.bar([show_token(t) for t, _ in table], [p for _, p in table], color="tab:blue")
    ax.set_title(f"Next-{what} distribution after {show_token(token)!r} (top {len(table)})")
    ax.set_xlabel(f"next {what}")
    ax.set_ylabel("probability")
    ax.tick_params(axis="x", rotation=45)
    return ax
