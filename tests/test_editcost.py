import pytest

from redline.agent.editcost import EditCost, edit_cost, tokenize, word_diff


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


@pytest.mark.parametrize("draft, edited", [
    ("We utilize the tool. It helps!", "We use the tool. It helps."),
    ("  Hello there!\n\nBye", "Hi there.\n"),
    ("", "new text"),
    ("old text", ""),
    ("Keep it short, please: one line.", "- Keep it short\n- one line"),
    ("Ünïcode wörds stay whole.", "Ünïcode words stay whole!"),
])
def test_word_diff_is_the_edit_the_cost_counts(draft, edited):
    runs = word_diff(draft, edited)
    assert "".join(text for op, text in runs if op != "delete") == edited  # the kept text, exactly
    kept_draft = "".join(text for op, text in runs if op != "insert")
    assert tokenize(kept_draft) == tokenize(draft)  # the draft's tokens (whitespace of unchanged runs from the edit)
    changed = sum(len(tokenize(text)) for op, text in runs if op != "equal")
    assert edit_cost(draft, edited) <= changed <= 2 * edit_cost(draft, edited)  # a substitution shows both sides
    assert all(a[0] != b[0] for a, b in zip(runs, runs[1:]))  # neighbouring runs of one kind are merged


def test_word_diff_marks_replacements_insertions_and_deletions():
    assert word_diff("We utilize the tool.", "We use the tool.") == [
        ("equal", "We"), ("delete", " utilize"), ("insert", " use"), ("equal", " the tool.")]
    assert word_diff("The cat sat.", "The cat sat on the mat.") == [
        ("equal", "The cat sat"), ("insert", " on the mat"), ("equal", ".")]
    assert word_diff("Same text.", "Same text.") == [("equal", "Same text.")]
