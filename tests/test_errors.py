import pytest
import torch

from course_utils.errors import ShapeError, VocabularyError, check_shape


def test_check_shape_names_the_expected_shape():
    check_shape(torch.zeros(2, 5, 8), ("B", "T", 8))
    with pytest.raises(ShapeError, match=r"should have shape \(B, T, 8\), got \(2, 5, 7\)"):
        check_shape(torch.zeros(2, 5, 7), ("B", "T", 8))
    with pytest.raises(ShapeError, match=r"3 dims\), got \(2, 5\)"):
        check_shape(torch.zeros(2, 5), ("B", "T", 8))
    with pytest.raises(ShapeError, match="torch.Tensor"):
        check_shape([1, 2], ("N",))


def test_vocabulary_error_message_and_suggestions():
    err = VocabularyError("kingg", ["king", "queen", "kings", "banana"])
    assert str(err).startswith("word 'kingg' is not in the vocabulary.")
    assert "king" in err.suggestions
    assert "banana" not in err.suggestions
    assert isinstance(err, KeyError)
    assert "Did you mean" not in str(VocabularyError("zzzz", ["king"]))
