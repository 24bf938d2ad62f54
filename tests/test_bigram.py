import math

import pytest
import torch

from course_utils import bigram
from course_utils.data import OPENING_SENTENCE
from course_utils.errors import ShapeError, VocabularyError


def test_word_bigram_counts_of_the_opening_sentence():
    counts, vocab = bigram.word_bigram_counts(OPENING_SENTENCE)
    assert vocab == sorted(set(vocab)) and "you" in vocab and "." in vocab
    assert int(counts.sum()) == len(bigram.sentence_words(OPENING_SENTENCE)) - 1
    s = {w: i for i, w in enumerate(vocab)}
    assert counts[s["the"], s["more"]] == 2
    assert counts[s["you"]].sum() == 3 and counts[s["."]].sum() == 0


def test_count_bigrams_matches_a_loop():
    ids = torch.randint(0, 7, (500,), generator=torch.Generator().manual_seed(0))
    counts = bigram.count_bigrams(ids, 7)
    loop = torch.zeros(7, 7, dtype=torch.long)
    for a, b in zip(ids[:-1].tolist(), ids[1:].tolist(), strict=True):
        loop[a, b] += 1
    assert torch.equal(counts, loop)


def test_count_bigrams_bad_input():
    with pytest.raises(ValueError, match="0..2"):
        bigram.count_bigrams([0, 3], 3)
    with pytest.raises(ShapeError, match="1-D"):
        bigram.count_bigrams(torch.zeros(2, 2, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="at least two"):
        bigram.count_bigrams([1], 3)


def test_probabilities_rows_and_smoothing():
    counts = torch.tensor([[2, 0, 2], [0, 0, 0], [1, 1, 0]])
    p = bigram.probabilities(counts)
    assert torch.allclose(p[0], torch.tensor([0.5, 0, 0.5], dtype=torch.float64))
    assert p[1].sum() == 0  # a row without counts stays zero
    ps = bigram.probabilities(counts, k=1.0)
    assert torch.allclose(ps.sum(1), torch.ones(3, dtype=torch.float64))
    assert math.isclose(ps[0, 1].item(), 1 / 7)
    with pytest.raises(ValueError, match="k must be >= 0"):
        bigram.probabilities(counts, k=-1)
    with pytest.raises(ShapeError):
        bigram.probabilities(torch.ones(2, 3))


def test_cross_entropy_equals_pytorch_and_count_form():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 5, (300,), generator=g)
    counts = bigram.count_bigrams(ids, 5)
    p = bigram.probabilities(counts, k=0.5)
    ours = bigram.cross_entropy(p, ids)
    torch_ce = torch.nn.functional.cross_entropy(torch.log(p[ids[:-1]]), ids[1:]).item()
    assert math.isclose(ours, torch_ce, rel_tol=1e-9)
    assert math.isclose(ours, bigram.cross_entropy_from_counts(p, counts), rel_tol=1e-9)


def test_worked_values_and_units():
    assert round(-math.log(0.15), 2) == 1.90 and round(-math.log(0.95), 2) == 0.05
    assert math.isclose(bigram.nats_to_bits(math.log(2)), 1.0)
    assert math.isclose(bigram.perplexity(math.log(10)), 10.0)


def test_choose_k_picks_the_lowest_dev_loss():
    ids = torch.randint(0, 6, (2000,), generator=torch.Generator().manual_seed(2))
    k, losses = bigram.choose_k(ids, 6, ks=(0.01, 1.0, 100.0))
    assert losses[k] == min(losses.values()) and set(losses) == {0.01, 1.0, 100.0}


def test_sample_follows_the_chain_and_stops():
    p = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    assert bigram.sample(p, 0, 10) == [0, 1, 2]
    assert bigram.sample(p, 0, 10, stop=1) == [0, 1]
    with pytest.raises(ValueError, match="outside"):
        bigram.sample(p, 5)


def test_next_token_table_and_unknown_word():
    counts, vocab = bigram.word_bigram_counts(OPENING_SENTENCE)
    p = bigram.probabilities(counts)
    table = bigram.next_token_table(p, vocab, "you")
    assert {w for w, _ in table} == {"know", "realize", "don't"}
    assert all(math.isclose(q, 1 / 3) for _, q in table)
    with pytest.raises(VocabularyError, match="'yuo'.*'you'"):
        bigram.next_token_table(p, vocab, "yuo")


def test_matrix_size():
    s = bigram.matrix_size(50_000)
    assert s["entries"] == 2_500_000_000 and s["bytes"] == 10_000_000_000
    with pytest.raises(ValueError):
        bigram.matrix_size(0)


def test_gradient_descent_reaches_the_count_model():
    ids = torch.randint(0, 8, (3000,), generator=torch.Generator().manual_seed(3))
    counts = bigram.count_bigrams(ids, 8)
    W, losses = bigram.train_bigram_weights(counts, steps=300, lr=0.3)
    best = bigram.cross_entropy_from_counts(bigram.probabilities(counts), counts)
    assert losses[-1] - best < 1e-3 and losses[-1] >= best - 1e-9
    # the count form equals PyTorch's cross-entropy of one_hot(prev) @ W on every pair
    x = torch.nn.functional.one_hot(ids[:-1], 8).double()
    direct = torch.nn.functional.cross_entropy(x @ W, ids[1:]).item()
    assert math.isclose(direct, bigram.bigram_loss_from_counts(W, counts).item(), rel_tol=1e-9)


def test_plots_have_titles_and_labels():
    import matplotlib

    matplotlib.use("Agg")
    counts, vocab = bigram.word_bigram_counts(OPENING_SENTENCE)
    p = bigram.probabilities(counts)
    ax = bigram.plot_transition_matrix(p, vocab)
    assert ax.get_title() and ax.get_xlabel() == "next token" and ax.get_ylabel() == "previous token"
    ax = bigram.plot_next_token(p, vocab, "the")
    assert "the" in ax.get_title() and ax.get_ylabel() == "probability"
