"""course_utils.embeddings (the real GloVe vectors, benchmarks) and course_utils.word2vec (SGNS from scratch)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_utils import embeddings
from course_utils import word2vec as w2v
from course_utils.errors import ShapeError, VocabularyError


@pytest.fixture(scope="module")
def glove():
    return embeddings.load_glove()


def test_load_glove_is_cached_and_solves_the_queen_analogy(glove):
    assert embeddings.load_glove() is glove
    assert len(glove.index_to_key) == 400_000 and glove.vector_size == 50
    assert embeddings.analogy(glove, "man", "king", "woman")[0][0] == "queen"


def test_cosine_similarity_matches_gensim_and_rejects_bad_input(glove):
    ours = embeddings.cosine_similarity(glove["cat"], glove["dog"])
    assert math.isclose(ours, float(glove.similarity("cat", "dog")), rel_tol=1e-5)
    assert ours > embeddings.cosine_similarity(glove["cat"], glove["democracy"])
    with pytest.raises(ValueError, match="same length"):
        embeddings.cosine_similarity(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="zero vector"):
        embeddings.cosine_similarity(np.zeros(3), np.ones(3))


def test_nearest_excludes_the_word_and_accepts_vectors(glove):
    found = embeddings.nearest(glove, "france", k=5)
    words = [w for w, _ in found]
    assert len(found) == 5 and "france" not in words and "belgium" in words
    assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
    by_vector = embeddings.nearest(glove, glove["france"], k=1)
    assert by_vector[0][0] == "france"
    assert "spain" not in [w for w, _ in embeddings.nearest(glove, "france", k=5, exclude=["spain"])]


def test_analogy_excludes_the_query_words(glove):
    for a, b, c in [("man", "king", "woman"), ("france", "paris", "germany"), ("big", "bigger", "small")]:
        answers = [w for w, _ in embeddings.analogy(glove, a, b, c, k=5)]
        assert not {a, b, c} & set(answers)
    assert embeddings.analogy(glove, "france", "paris", "germany")[0][0] == "berlin"


def test_unknown_word_names_it_and_suggests_close_ones(glove):
    with pytest.raises(VocabularyError) as err:
        embeddings.nearest(glove, "qeen")
    assert "'qeen'" in str(err.value) and "queen" in err.value.suggestions
    with pytest.raises(KeyError, match="'kingg'"):
        embeddings.analogy(glove, "man", "kingg", "woman")


def test_evaluate_wrappers(glove):
    sim = embeddings.evaluate_similarity(glove, "wordsim353")
    assert 0.4 < sim["spearman"] < 0.7 and sim["oov"] == 0.0
    simlex = embeddings.evaluate_similarity(glove, "simlex999")
    assert 0.15 < simlex["spearman"] < 0.4
    acc = embeddings.evaluate_analogies(glove, restrict_vocab=5000)
    assert set(acc) == {"semantic", "syntactic", "total", "questions"}
    assert 0.3 < acc["total"] < 0.9 and acc["questions"] > 100
    with pytest.raises(KeyError, match="wordsim353"):
        embeddings.evaluate_similarity(glove, "nope")
    with pytest.raises(KeyError, match="Unknown benchmark"):
        embeddings.benchmark_path("nope")


# ---- word2vec from scratch ---------------------------------------------------------------------------------------

def test_build_vocab_and_encode():
    words = "a b a c a b d".split()
    itos, counts = w2v.build_vocab(words, min_count=2)
    assert itos == ["a", "b"] and counts.tolist() == [3, 2]
    assert w2v.encode(words, itos).tolist() == [0, 1, 0, 0, 1]
    with pytest.raises(ValueError, match="lower min_count"):
        w2v.build_vocab(words, min_count=10)


def test_skipgram_pairs():
    centers, contexts = w2v.skipgram_pairs(torch.tensor([0, 1, 2]), window=1)
    assert sorted(zip(centers.tolist(), contexts.tolist(), strict=True)) == [(0, 1), (1, 0), (1, 2), (2, 1)]
    with pytest.raises(ShapeError):
        w2v.skipgram_pairs(torch.zeros(2, 2, dtype=torch.long))


def test_sgns_loss_equals_pytorch_binary_cross_entropy():
    torch.manual_seed(0)
    model = w2v.SkipGram(20, 8)
    torch.nn.init.normal_(model.u.weight)
    center, context = torch.tensor([3, 5]), torch.tensor([4, 9])
    neg = torch.tensor([[1, 2, 7], [0, 11, 12]])
    batch = model(center, context, neg)
    by_hand = torch.stack([w2v.sgns_loss(model.v.weight[c], model.u.weight[o], model.u.weight[n])
                           for c, o, n in zip(center, context, neg, strict=True)]).mean()
    logits = torch.cat([(model.u(context) * model.v(center)).sum(-1, keepdim=True),
                        torch.bmm(model.u(neg), model.v(center).unsqueeze(-1)).squeeze(-1)], dim=1)
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1
    torch_bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="sum") / 2
    assert torch.allclose(batch, by_hand, atol=1e-6) and torch.allclose(batch, torch_bce, atol=1e-6)
    with pytest.raises(ShapeError, match="negatives"):
        model(center, context, torch.tensor([1, 2]))


def test_train_sgns_learns_a_toy_corpus():
    # two groups of words that never share contexts: after training, words are closer within their group
    g = torch.Generator().manual_seed(0)
    ids = torch.cat([torch.randint(0, 5, (40,), generator=g) if i % 2 == 0 else torch.randint(5, 10, (40,), generator=g)
                     for i in range(60)])
    counts = np.bincount(ids.numpy(), minlength=10)
    model, losses = w2v.train_sgns(ids, counts, dim=8, window=2, epochs=3, batch_size=256, lr=0.05,
                                   subsample_t=0, log_every=10)
    assert losses[-1] < losses[0]
    kv = w2v.to_keyed_vectors(model.v.weight, [str(i) for i in range(10)])
    assert kv.similarity("0", "1") > kv.similarity("0", "7")


def test_keyed_vectors_pca_and_explorer(glove):
    kv = w2v.to_keyed_vectors(torch.eye(3), ["a", "b", "c"])
    assert kv.vector_size == 3 and math.isclose(float(kv.similarity("a", "b")), 0.0, abs_tol=1e-7)
    with pytest.raises(ShapeError):
        w2v.to_keyed_vectors(np.ones((2, 3)), ["a", "b", "c"])
    xy = w2v.pca_2d(np.random.default_rng(0).normal(size=(6, 5)))
    assert xy.shape == (6, 2) and np.allclose(xy.mean(0), 0)
    assert w2v.explore(glove, "man king woman").startswith("man is to king as woman is to: queen")
    assert "nearest to 'frog'" in w2v.explore(glove, "frog")
    msg = w2v.explore(glove, "qeen")
    assert "'qeen' is not in the vocabulary" in msg and "queen" in msg
    assert "one word" in w2v.explore(glove, "a b")


def test_plot_pairs_pca(glove):
    import matplotlib

    matplotlib.use("Agg")
    ax = w2v.plot_pairs_pca(glove, [("man", "woman"), ("king", "queen")])
    assert ax.get_title() and "principal component" in ax.get_xlabel()
    with pytest.raises(VocabularyError):
        w2v.plot_pairs_pca(glove, [("man", "wmoan")])


def test_batched_analogy_accuracy_equals_gensim(glove):
    fast = w2v.analogy_accuracy(glove, restrict_vocab=3000)
    slow = embeddings.evaluate_analogies(glove, restrict_vocab=3000)
    assert fast["questions"] == slow["questions"] > 1000
    for kind in ("semantic", "syntactic", "total"):
        assert math.isclose(fast[kind], slow[kind], abs_tol=1e-6)
    with pytest.raises(ValueError, match="restrict_vocab"):
        w2v.analogy_accuracy(glove, restrict_vocab=2)
    tiny = w2v.to_keyed_vectors(torch.eye(4), list("wxyz"))
    assert w2v.analogy_accuracy(tiny)["questions"] == 0


def test_train_sgns_restores_the_thread_count():
    before = torch.get_num_threads()
    ids = torch.randint(0, 6, (400,), generator=torch.Generator().manual_seed(0))
    w2v.train_sgns(ids, np.bincount(ids.numpy(), minlength=6), dim=4, window=2, epochs=0.5, batch_size=64,
                   subsample_t=0, threads=1)
    assert torch.get_num_threads() == before
