"""One scoreboard for the whole course: validation cross-entropy per character on the Wikipedia text.

Notebook 01 fills it with three baselines (uniform, unigram, bigram); later notebooks (the mini-GPT) add their
own model, measured on the same validation split, with ``scoreboard_table({"mini-GPT": loss})``.

The split is ``data.train_val_split(ids, val_fraction)``: the first 90% of the text trains, the last 10% is
held out. All losses are averages of -ln P(correct next character) over the validation characters, in nats.
"""

from __future__ import annotations

import functools
import math

import torch

from . import bigram, data
from .tokenizers import CharTokenizer

BIGRAM_KS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


def char_data(text: str, val_fraction: float = 0.1) -> tuple[CharTokenizer, torch.Tensor, torch.Tensor]:
    """(character tokenizer built on the whole ``text``, train ids, validation ids), ids as 1-D LongTensors: the
    course's one split, the last ``val_fraction`` of the text held out (``data.train_val_split``)."""
    tok = CharTokenizer(text)
    ids = torch.tensor(tok.encode(text), dtype=torch.long)
    train, val = data.train_val_split(ids, val_fraction)
    return tok, train, val


@functools.lru_cache(maxsize=4)
def wiki_char_data(val_fraction: float = 0.1) -> tuple[CharTokenizer, torch.Tensor, torch.Tensor]:
    """(tokenizer built on the whole Wikipedia text, train ids, validation ids), ids as 1-D LongTensors."""
    return char_data(data.wiki_text(), val_fraction)


@functools.lru_cache(maxsize=1)
def bigram_model(val_fraction: float = 0.1) -> tuple[torch.Tensor, float]:
    """The character bigram model of the scoreboard: (probabilities (V, V), add-k constant k).

    k is chosen on training data only (:func:`bigram.choose_k`: fitted on the first 90% of the train split,
    scored on its last 10%), then the counts of the whole train split are smoothed with that k.
    """
    tok, train, _ = wiki_char_data(val_fraction)
    k, _ = bigram.choose_k(train, tok.vocab_size, BIGRAM_KS)
    return bigram.probabilities(bigram.count_bigrams(train, tok.vocab_size), k), k


@functools.lru_cache(maxsize=1)
def _baselines() -> tuple[tuple[str, float], ...]:
    tok, train, val = wiki_char_data()
    V = tok.vocab_size
    uniform = math.log(V)
    unigram_counts = torch.bincount(train, minlength=V).double() + 1.0  # add-one: no character gets P = 0
    unigram_p = unigram_counts / unigram_counts.sum()
    unigram = float(-torch.log(unigram_p[val]).mean())
    probs, _ = bigram_model()
    return (("uniform", uniform), ("unigram", unigram), ("bigram", bigram.cross_entropy(probs, val)))


def baseline_losses() -> dict[str, float]:
    """Validation cross-entropy in nats per character of the baselines 'uniform', 'unigram' and 'bigram'.

    uniform: every one of the V characters equally likely (ln V). unigram: character frequencies of the train
    split, add-one smoothed. bigram: add-k smoothed character bigram of the train split (see :func:`bigram_model`).
    """
    return dict(_baselines())


def nats_to_bits(nats: float) -> float:
    """A loss in nats (natural log) as bits (log base 2): divide by ln 2."""
    return bigram.nats_to_bits(nats)


def _rows(extra: dict[str, float] | None) -> list[tuple[str, float]]:
    rows = list(baseline_losses().items())
    if extra is not None:
        if not isinstance(extra, dict):
            raise TypeError(f"extra should be a dict {{model name: loss in nats per character}}, "
                            f"got {type(extra).__name__}")
        for name, loss in extra.items():
            if not isinstance(loss, int | float) or not math.isfinite(loss) or loss < 0:
                raise ValueError(f"the loss of {name!r} should be a finite, non-negative number of nats per "
                                 f"character, got {loss!r}")
            rows.append((str(name), float(loss)))
    return rows


def scoreboard_table(extra: dict[str, float] | None = None) -> str:
    """A markdown table: every model's validation loss in nats and bits per character (lower is better)."""
    rows = _rows(extra)
    width = max(len("model"), *(len(n) for n, _ in rows))
    lines = [f"| {'model':<{width}} | nats/char | bits/char |", f"|{'-' * (width + 2)}|----------:|----------:|"]
    lines += [f"| {n:<{width}} | {v:9.3f} | {nats_to_bits(v):9.3f} |" for n, v in rows]
    return "\n".join(lines)


def plot_scoreboard(extra: dict[str, float] | None = None, ax=None):
    """Horizontal bar chart of validation loss (nats per character, bits in the labels); lower is better."""
    import matplotlib.pyplot as plt

    rows = _rows(extra)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.5 * len(rows) + 1.2))
    names, values = [n for n, _ in rows], [v for _, v in rows]
    bars = ax.barh(names, values, color=["tab:gray"] * 3 + ["tab:orange"] * (len(rows) - 3))
    for bar, v in zip(bars, values, strict=True):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {v:.3f} nats = {nats_to_bits(v):.3f} bits",
                va="center", fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, max(values) * 1.45)
    ax.set_xlabel("validation cross-entropy (nats per character, lower is better)")
    ax.set_ylabel("model")
    ax.set_title("Scoreboard: next-character loss on the held-out Wikipedia text")
    return ax


# ---- any tokenizer on the character scoreboard (notebook 10) ----------------------------------------------------

def per_char(nats_per_token: float, n_tokens: int, n_chars: int) -> float:
    """Turn a mean loss per predicted token into nats per character of the same text.

    The total negative log-likelihood is ``nats_per_token * n_tokens`` (``n_tokens`` predictions); spread over the
    ``n_chars`` characters those predictions spell out, it is comparable with every character model's loss,
    whatever the tokenizer: a model over longer tokens makes fewer predictions, each costing more nats.
    """
    for name, value in (("n_tokens", n_tokens), ("n_chars", n_chars)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} should be a positive int, got {value!r}")
    if not isinstance(nats_per_token, int | float) or not math.isfinite(nats_per_token) or nats_per_token < 0:
        raise ValueError(f"nats_per_token should be a finite, non-negative number, got {nats_per_token!r}")
    return nats_per_token * n_tokens / n_chars


def bits_per_char(nats_per_token: float, n_tokens: int, n_chars: int) -> float:
    """:func:`per_char` in bits: total negative log-likelihood in bits / number of characters."""
    return nats_to_bits(per_char(nats_per_token, n_tokens, n_chars))

