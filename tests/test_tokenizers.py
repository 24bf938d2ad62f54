import pytest

from course_utils.errors import VocabularyError
from course_utils.tokenizers import CharTokenizer, WordTokenizer, split_words


def test_char_tokenizer_round_trip_and_sorted_vocab():
    tok = CharTokenizer("hello world")
    assert tok.itos == sorted(set("hello world"))
    assert tok.decode(tok.encode("low word")) == "low word"
    assert tok.vocab_size == len(set("hello world"))


def test_char_tokenizer_unknown_symbol_is_named():
    tok = CharTokenizer("abc")
    with pytest.raises(VocabularyError, match="character 'z' is not in the vocabulary"):
        tok.encode("abz")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([0, 7])
    with pytest.raises(ValueError):
        CharTokenizer("")


def test_split_words_keeps_contractions_and_splits_punctuation():
    assert split_words("The more you know, the more you realize you don't know.") == [
        "The", "more", "you", "know", ",", "the", "more", "you", "realize", "you", "don't", "know", "."]
    assert split_words("The cat.", lower=True) == ["the", "cat", "."]


def test_word_tokenizer_round_trip_and_unknown_word():
    tok = WordTokenizer("the cat sat on the mat.")
    assert tok.decode(tok.encode("the mat sat.")) == "the mat sat."
    with pytest.raises(VocabularyError) as err:
        tok.encode("the cap")
    assert "'cap'" in str(err.value) and "'cat'" in str(err.value)   # names the word, suggests a close one


def test_word_tokenizer_min_count_and_unk():
    tok = WordTokenizer("a a a b", min_count=2, unk="<unk>")
    assert tok.itos == ["<unk>", "a"]
    assert tok.encode("a b zebra") == [1, 0, 0]
    with pytest.raises(ValueError):
        WordTokenizer("   ")
