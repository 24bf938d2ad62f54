"""Word2vec from scratch: skip-gram with negative sampling (SGNS) in PyTorch, plus the word-vector pictures and the
explorer of notebook 02.

The objective for one (center c, context o) pair with K negative words n_1..n_K drawn from the noise distribution:

    loss = -log sigmoid(u_o . v_c) - sum_k log sigmoid(-u_{n_k} . v_c)

v are the "input" (center) vectors, u the "output" (context) vectors; the word vectors kept at the end are v.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import ShapeError, VocabularyError


def build_vocab(words: Sequence[str], min_count: int = 5, max_size: int | None = None) -> tuple[list[str], np.ndarray]:
    """Words seen at least ``min_count`` times, most frequent first (ties alphabetical), and their counts."""
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    counts = Counter(words)
    kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    if max_size is not None:
        kept = kept[:max_size]
    if not kept:
        raise ValueError(f"no word occurs {min_count} times or more; lower min_count")
    return kept, np.array([counts[w] for w in kept], dtype=np.int64)


def encode(words: Sequence[str], itos: Sequence[str]) -> torch.Tensor:
    """Ids of the words that are in the vocabulary (others are dropped), as a 1-D LongTensor."""
    stoi = {w: i for i, w in enumerate(itos)}
    return torch.tensor([stoi[w] for w in words if w in stoi], dtype=torch.long)


def subsample(ids: torch.Tensor, counts: np.ndarray, t: float = 1e-4, generator: torch.Generator | None = None):
    """Drop frequent words at random (word2vec's subsampling): keep word w with probability sqrt(t / f(w)),
    where f(w) is its share of the corpus. 'the' and 'of' mostly go; rare words all stay."""
    freq = torch.as_tensor(counts, dtype=torch.float64) / float(np.sum(counts))
    keep = torch.clamp(torch.sqrt(t / freq), max=1.0)
    return ids[torch.rand(len(ids), generator=generator, dtype=torch.float64) < keep[ids]]


def skipgram_pairs(ids: torch.Tensor, window: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """All (center, context) pairs with the context at most ``window`` positions away. Two 1-D LongTensors."""
    if not isinstance(ids, torch.Tensor) or ids.dim() != 1:
        raise ShapeError("ids should be a 1-D LongTensor of word ids")
    if window < 1 or len(ids) <= window:
        raise ValueError(f"need window >= 1 and more than window={window} ids, got {len(ids)} ids")
    centers, contexts = [], []
    for off in range(1, window + 1):
        centers += [ids[:-off], ids[off:]]
        contexts += [ids[off:], ids[:-off]]
    return torch.cat(centers), torch.cat(contexts)


class SkipGram(nn.Module):
    """Two embedding tables: v (center words) and u (context words), each of shape (V, d)."""

    def __init__(self, vocab_size: int, dim: int = 50):
        super().__init__()
        self.v = nn.Embedding(vocab_size, dim)
        self.u = nn.Embedding(vocab_size, dim)
        nn.init.uniform_(self.v.weight, -0.5 / dim, 0.5 / dim)
        nn.init.zeros_(self.u.weight)

    def forward(self, center: torch.Tensor, context: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        """center, context: (B,); negatives: (B, K). Returns the mean SGNS loss over the batch."""
        if negatives.dim() != 2 or negatives.shape[0] != center.shape[0]:
            raise ShapeError(f"negatives should have shape (B={center.shape[0]}, K), got {tuple(negatives.shape)}")
        vc = self.v(center)                                         # (B, d)
        pos = (self.u(context) * vc).sum(-1)                        # (B,)   u_o . v_c
        neg = torch.bmm(self.u(negatives), vc.unsqueeze(-1)).squeeze(-1)  # (B, K) u_n . v_c
        return -(F.logsigmoid(pos) + F.logsigmoid(-neg).sum(-1)).mean()


def sgns_loss(v_c: torch.Tensor, u_o: torch.Tensor, u_neg: torch.Tensor) -> torch.Tensor:
    """The objective for one pair, written out: v_c (d,), u_o (d,), u_neg (K, d) -> a scalar."""
    return -(torch.log(torch.sigmoid(u_o @ v_c)) + torch.log(torch.sigmoid(-(u_neg @ v_c))).sum())


def train_sgns(ids: torch.Tensor, counts: np.ndarray, dim: int = 50, window: int = 4, negatives: int = 5,
               epochs: float = 1.0, batch_size: int = 4096, lr: float = 0.01, subsample_t: float = 1e-4,
               seed: int = 0, log_every: int = 100, threads: int | None = 1) -> tuple[SkipGram, list[float]]:
    """Train :class:`SkipGram` with Adam on shuffled skip-gram pairs; negatives are drawn from the unigram
    distribution raised to the power 3/4. Returns (model, mean loss per ``log_every`` steps).

    ``threads``: PyTorch CPU threads while training (restored afterwards). These small steps are dominated by
    thread overhead, and one thread is several times faster on a busy 2-core machine; None keeps the setting.
    """
    if threads is None:
        return _train_sgns(ids, counts, dim, window, negatives, epochs, batch_size, lr, subsample_t, seed, log_every)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _train_sgns(ids, counts, dim, window, negatives, epochs, batch_size, lr, subsample_t, seed, log_every)
    finally:
        torch.set_num_threads(previous)


def _train_sgns(ids, counts, dim, window, negatives, epochs, batch_size, lr, subsample_t, seed, log_every):
    g = torch.Generator().manual_seed(seed)
    kept = subsample(ids, counts, subsample_t, g) if subsample_t else ids
    centers, contexts = skipgram_pairs(kept, window)
    noise = torch.as_tensor(counts, dtype=torch.float64) ** 0.75
    noise /= noise.sum()
    torch.manual_seed(seed)
    model = SkipGram(len(counts), dim)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = max(1, int(epochs * len(centers) / batch_size))
    order = torch.randperm(len(centers), generator=g)
    losses, running = [], 0.0
    for step in range(steps):
        start = (step * batch_size) % len(centers)
        idx = order[start:start + batch_size]
        neg = torch.multinomial(noise, len(idx) * negatives, replacement=True, generator=g).view(len(idx), -1)
        loss = model(centers[idx], contexts[idx], neg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        running += loss.item()
        if (step + 1) % log_every == 0 or step == steps - 1:
            losses.append(running / ((step % log_every) + 1))
            running = 0.0
    return model, losses


def to_keyed_vectors(vectors, itos: Sequence[str]):
    """Wrap a (V, d) matrix and its words as a gensim KeyedVectors (for neighbours and the benchmarks)."""
    from gensim.models import KeyedVectors

    vectors = np.asarray(vectors.detach().cpu() if isinstance(vectors, torch.Tensor) else vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(itos):
        raise ShapeError(f"vectors should have shape (V={len(itos)}, d), got {vectors.shape}")
    kv = KeyedVectors(vector_size=vectors.shape[1], dtype=np.float32)
    kv.add_vectors(list(itos), vectors)
    return kv


# ---- the analogy benchmark, batched -----------------------------------------------------------------------------

SEMANTIC_SECTIONS = ("capital-common-countries", "capital-world", "currency", "city-in-state", "family")


def analogy_accuracy(kv, restrict_vocab: int = 30_000, path: str | None = None) -> dict[str, float]:
    """The questions-words.txt accuracy, computed with one matrix product per block of questions.

    Same rules as gensim's ``evaluate_word_analogies`` (and :func:`course_utils.embeddings.evaluate_analogies`):
    only questions whose four words are among the ``restrict_vocab`` most frequent are asked (case-insensitive),
    the answer is the word of highest cosine with unit(b) - unit(a) + unit(c) among those words, a, b and c
    excluded. Gensim asks one question at a time; this is much faster on a CPU, and a test checks both agree.
    Returns {"semantic", "syntactic", "total", "questions"} like ``evaluate_analogies``.
    """
    if restrict_vocab < 4:
        raise ValueError(f"restrict_vocab must be at least 4, got {restrict_vocab}")
    if path is None:
        from .embeddings import benchmark_path

        path = benchmark_path("analogies")
    words = kv.index_to_key[:restrict_vocab]
    ok = {w.upper(): i for i, w in reversed(list(enumerate(words)))}
    questions, kinds, section = [], [], None
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith(":"):
                section = line[1:].strip()
                continue
            quad = [w.upper() for w in line.split()]
            if len(quad) == 4 and all(w in ok for w in quad):
                questions.append([ok[w] for w in quad])
                kinds.append("semantic" if section in SEMANTIC_SECTIONS else "syntactic")
    if not questions:
        return {"semantic": float("nan"), "syntactic": float("nan"), "total": float("nan"), "questions": 0}
    q = torch.tensor(questions)
    E = torch.tensor(np.asarray(kv.vectors[:len(words)]), dtype=torch.float32)
    E = E / E.norm(dim=1, keepdim=True).clamp_min(1e-12)
    correct = torch.zeros(len(q), dtype=torch.bool)
    for start in range(0, len(q), 2048):
        a, b, c, expected = q[start:start + 2048].T
        scores = (E[b] - E[a] + E[c]) @ E.T                                   # (block, restrict_vocab)
        rows = torch.arange(len(a))
        for excluded in (a, b, c):
            scores[rows, excluded] = -float("inf")
        correct[start:start + 2048] = scores.argmax(dim=1) == expected
    result = {}
    for kind in ("semantic", "syntactic"):
        mask = torch.tensor([k == kind for k in kinds])
        result[kind] = float(correct[mask].float().mean()) if mask.any() else float("nan")
    result["total"] = float(correct.float().mean())
    result["questions"] = len(q)
    return result


# ---- pictures and the explorer ----------------------------------------------------------------------------------

def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """Project (n, d) vectors on their two main directions (PCA by SVD of the centred matrix): (n, 2)."""
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ShapeError(f"pca_2d needs a (n >= 2, d) matrix, got shape {x.shape}")
    x = x - x.mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:2].T


def _label_offsets(xy: np.ndarray, words: Sequence[str]) -> list[tuple[float, str]]:
    """Vertical offsets (in points) that keep labels apart: a label whose box would overlap one placed before
    it moves down (then up) in steps of one line, so crowded words stay readable."""
    span = np.ptp(xy, axis=0) + 1e-12
    unit = xy / span                                    # both axes in units of the plotted range
    line, placed, out = 0.045, [], []
    for (x, y), word in zip(unit, words, strict=True):
        width = 0.018 * len(word)
        for k in (0, -1, 1, -2, 2, -3, 3, -4, 4):
            yy = y + k * line
            if all(abs(yy - py) >= line or x + width < px or px + pw < x for px, py, pw in placed):
                break
        placed.append((x, yy, width))
        out.append((k * 11.0, word))       # one line of 9-point text is about 11 points
    return out


def plot_pairs_pca(kv, pairs: Sequence[tuple[str, str]], ax=None, title: str | None = None, color: str = "tab:blue"):
    """PCA picture of word pairs (a, b) with an arrow from a to b for each pair: parallel arrows = analogies."""
    import matplotlib.pyplot as plt

    from .embeddings import require_words

    words = [w for pair in pairs for w in pair]
    require_words(kv, words)
    xy = pca_2d(np.stack([kv[w] for w in words]))
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 5))
    for i in range(len(pairs)):
        (x0, y0), (x1, y1) = xy[2 * i], xy[2 * i + 1]
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops={"arrowstyle": "->", "color": color, "alpha": 0.7, "lw": 1.3})
        ax.scatter([x0, x1], [y0, y1], color=["tab:gray", color], s=18, zorder=3)
    for (x, y), (dy, word), i in zip(xy, _label_offsets(xy, words), range(len(words)), strict=True):
        ax.annotate(word, (x, y), xytext=(4, dy), textcoords="offset points", fontsize=9, va="center",
                    color="dimgray" if i % 2 == 0 else color)
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    ax.set_title(title or "Word pairs in 2-D (PCA); arrows go from first to second word")
    return ax


def explore(kv, query: str, k: int = 8) -> str:
    """One word -> its k nearest neighbours; three words 'a b c' -> the analogy 'a is to b as c is to ?'.

    Unknown words give the VocabularyError message (naming the word, suggesting close ones) as the result.
    """
    from .embeddings import analogy, nearest

    words = query.lower().replace(",", " ").split()
    try:
        if len(words) == 1:
            found = nearest(kv, words[0], k=k)
            return f"nearest to {words[0]!r}: " + ", ".join(f"{w} ({s:.2f})" for w, s in found)
        if len(words) == 3:
            a, b, c = words
            found = analogy(kv, a, b, c, k=min(k, 5))
            return f"{a} is to {b} as {c} is to: " + ", ".join(f"{w} ({s:.2f})" for w, s in found)
    except VocabularyError as err:
        return str(err)
    return f"type one word (neighbours) or three words a b c (a is to b as c is to ?); got {len(words)} words"


def explorer_widget(kv, value: str = "man king woman"):
    """A text box: type one word for its neighbours, three for an analogy. Returns the ipywidgets box."""
    import ipywidgets as widgets

    box = widgets.Text(value=value, description="words:", continuous_update=False)
    out = widgets.Output()

    def update(_=None):
        out.clear_output()
        with out:
            print(explore(kv, box.value))

    box.observe(update, names="value")
    update()
    return widgets.VBox([box, out])
