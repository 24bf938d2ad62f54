import hashlib
import json
import shutil

import pytest
import torch

from course_utils import data
from course_utils.errors import ShapeError


@pytest.fixture(scope="module")
def text():
    return data.wiki_text()


def test_wiki_text_size_and_alphabet(text):
    assert len(text) > 2_500_000
    symbols = set(text)
    assert len(symbols) <= 100
    assert all(ch == "\n" or " " <= ch <= "~" for ch in symbols)


def test_wiki_text_is_prose_without_markup(text):
    assert "'''" not in text and "[[" not in text and "{{" not in text and "==" not in text
    assert "#REDIRECT" not in text.upper()
    assert "Anarchism is a political philosophy" in text[:200]


def test_wiki_text_cache_matches_its_hash(text):
    meta = json.loads((data.cache_dir() / "wiki_text.json").read_text())
    assert meta["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert meta["characters"] == len(text)


def test_damaged_cache_is_rebuilt_not_trusted(text, tmp_path, monkeypatch):
    for name in ("wiki_text.txt", "wiki_text.json"):
        shutil.copy(data.cache_dir() / name, tmp_path / name)
    damaged = tmp_path / "wiki_text.txt"
    damaged.write_text(text[:1000] + "GARBAGE" + text[1007:], encoding="utf-8")
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    with pytest.warns(UserWarning, match="damaged or out of date"):
        rebuilt = data.wiki_text()
    assert rebuilt == text                      # identical to the original: the build is deterministic
    assert damaged.read_text(encoding="utf-8") == text
    assert data.wiki_text() == text             # and the repaired cache is trusted again


def test_fold_to_ascii_strips_accents_and_drops_the_rest():
    assert data.fold_to_ascii("Café – naïve “quote” 東京") == "Cafe - naive \"quote\" "


def test_clean_wiki_article_removes_markup():
    markup = ("'''Foo''' is a [[bar|thing]] that does several things.<ref>cite</ref>\n"
              "== History ==\n* It was made in a small town long ago.\n"
              "== References ==\n* Some book by someone, 1999, page one.")
    cleaned = data.clean_wiki_article(markup)
    assert cleaned == "Foo is a thing that does several things.\nIt was made in a small town long ago."


def test_small_corpus():
    assert data.small_corpus() == "The more you know, the more you realize you don't know."
    with pytest.raises(KeyError, match="Available"):
        data.small_corpus("nope")


def test_train_val_split_is_deterministic_and_contiguous():
    train, val = data.train_val_split("abcdefghij", 0.2)
    assert (train, val) == ("abcdefgh", "ij")
    t, v = data.train_val_split(torch.arange(100), 0.1)
    assert len(t) == 90 and v[0].item() == 90
    for bad in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError):
            data.train_val_split("abc", bad)


def test_get_batch_targets_are_the_next_tokens():
    ids = torch.arange(1000)
    g = torch.Generator().manual_seed(0)
    x, y = data.get_batch(ids, batch_size=4, block_size=8, generator=g)
    assert x.shape == y.shape == (4, 8)
    assert torch.equal(y, x + 1)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(data.get_batch(ids, 2, 4, generator=g1)[0], data.get_batch(ids, 2, 4, generator=g2)[0])


def test_get_batch_bad_input():
    with pytest.raises(ShapeError, match=r"shape \(N,\)"):
        data.get_batch(torch.zeros(3, 3, dtype=torch.long), 2, 2)
    with pytest.raises(ValueError, match="more than block_size"):
        data.get_batch(torch.arange(5), 2, 8)
