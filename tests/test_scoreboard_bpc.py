"""scoreboard.per_char / bits_per_char: a loss per token of any tokenizer as a loss per character."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from course_utils import bpe, data, scoreboard


def test_bits_per_char_equals_a_brute_force_count_on_a_short_text():
    text = data.wiki_text()[:3000]
    tok = bpe.train_bpe(text, 300)
    ids = tok.encode(text)
    freq = Counter(ids)
    # a unigram model of the tokens: brute force, one token at a time, then per character
    total_nats = sum(-math.log(freq[i] / len(ids)) for i in ids)
    brute_bits = total_nats / math.log(2) / len(text)
    mean_per_token = total_nats / len(ids)
    assert scoreboard.bits_per_char(mean_per_token, len(ids), len(text)) == pytest.approx(brute_bits, rel=1e-12)
    assert scoreboard.per_char(mean_per_token, len(ids), len(text)) == pytest.approx(total_nats / len(text))
    assert len(ids) < len(text)                  # tokens cover several characters: per token > per character
    assert mean_per_token > scoreboard.per_char(mean_per_token, len(ids), len(text))


def test_character_tokenizer_is_unchanged():
    assert scoreboard.per_char(1.5, 1000, 1000) == 1.5
    assert scoreboard.bits_per_char(math.log(2), 10, 10) == pytest.approx(1.0)


@pytest.mark.parametrize("args, match", [((1.0, 0, 10), "n_tokens"), ((1.0, 10, 0), "n_chars"),
                                         ((1.0, 2.5, 10), "n_tokens"), ((float("nan"), 1, 1), "finite"),
                                         ((-1.0, 1, 1), "non-negative"), (("1", 1, 1), "finite")])
def test_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        scoreboard.per_char(*args)
