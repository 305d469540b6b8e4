import pytest

from redline.agent.editcost import EditCost, edit_cost, tokenize


def test_tokenize_separates_words_and_punctuation():
    assert tokenize("Hello, world! It's 3.5 km.") == ["Hello", ",", "world", "!", "It", "'", "s", "3", ".", "5",
                                                      "km", "."]


def test_tokenize_keeps_non_ascii_words():
    assert tokenize("café über naïve") == ["café", "über", "naïve"]


@pytest.mark.parametrize("a,b,cost", [
    ("same text.", "same text.", 0),
    ("The cat sat.", "The cat sat on the mat.", 3),
    ("one two three", "one three", 1),
    ("one two", "uno dos", 2),
    ("", "a b c", 3),
    ("Hi!", "Hi.", 1),
    ("a  b\n\nc", "a b c", 0),  # whitespace is not a token
])
def test_edit_cost_is_token_levenshtein(a, b, cost):
    assert edit_cost(a, b) == cost
    assert edit_cost(b, a) == cost


def test_delta_threshold():
    ec = EditCost(delta=2)
    assert not ec.is_edit(0)
    assert not ec.is_edit(2)
    assert ec.is_edit(3)
    with pytest.raises(ValueError):
        EditCost(delta=-1)
