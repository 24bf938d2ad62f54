import math

import pytest
import torch

from course_utils import data, scoreboard


def test_wiki_char_data_split_and_cache():
    tok, train, val = scoreboard.wiki_char_data()
    assert scoreboard.wiki_char_data() [1] is train  # cached in process
    assert train.dtype == torch.long and train.dim() == 1 and val.dim() == 1
    assert len(train) + len(val) == len(data.wiki_text())
    assert abs(len(val) / (len(train) + len(val)) - 0.1) < 1e-3
    assert tok.decode(val[:50].tolist()) == data.wiki_text()[len(train):len(train) + 50]


def test_baselines_are_ordered_and_sane():
    losses = scoreboard.baseline_losses()
    assert list(losses) == ["uniform", "unigram", "bigram"]
    tok, _, _ = scoreboard.wiki_char_data()
    assert math.isclose(losses["uniform"], math.log(tok.vocab_size))
    assert losses["uniform"] > losses["unigram"] > losses["bigram"] > 1.5
    probs, k = scoreboard.bigram_model()
    assert k in scoreboard.BIGRAM_KS and torch.allclose(probs.sum(1), torch.ones(tok.vocab_size, dtype=torch.float64))


def test_units_and_table():
    assert math.isclose(scoreboard.nats_to_bits(math.log(2)), 1.0)
    table = scoreboard.scoreboard_table({"mini-GPT": 1.4})
    assert "nats/char" in table and "bits/char" in table and "mini-GPT" in table and "bigram" in table
    assert f"{scoreboard.nats_to_bits(1.4):.3f}" in table
    with pytest.raises(ValueError, match="mini-GPT"):
        scoreboard.scoreboard_table({"mini-GPT": float("nan")})
    with pytest.raises(TypeError, match="dict"):
        scoreboard.scoreboard_table([("a", 1.0)])


def test_plot_scoreboard():
    import matplotlib

    matplotlib.use("Agg")
    ax = scoreboard.plot_scoreboard({"mini-GPT": 1.4})
    assert ax.get_title() and "nats" in ax.get_xlabel() and ax.get_ylabel() == "model"
    assert len(ax.patches) == 4
