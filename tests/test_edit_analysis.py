import pytest

from redline.agent.edit_analysis import TextShape, describe_edit, looks_like_preference

DRAFT = ("The council approved the plan on Tuesday after a long debate about costs and safety! "
         "Officials said that construction would begin next year and continue for five years.")


@pytest.mark.parametrize("edited,expected", [
    ("- Plan approved Tuesday\n- Work starts next year\n- Runs five years", {"bullet points", "brief"}),
    ("1. Approve plan\n2. Build next year", {"numbered steps"}),
    ("Hi team,\n" + DRAFT.replace("!", ".") + "\nBest regards,\nAna",
     {"starts with a greeting", "ends with a sign-off", "no exclamation marks"}),
    ("Did the council approve it? Yes. Will work start soon? Next year.", {"asks questions", "brief"}),
    (DRAFT + " 🚲🎉", {"with emojis"}),
    ("You will see new lanes. You can ride them next year. Your commute gets safer. You will love it.",
     {"addresses the reader as 'you'", "short sentences"}),
])
def test_describe_edit_names_form_changes(edited, expected):
    assert expected <= set(describe_edit(DRAFT, edited))


def test_unchanged_text_has_no_observations():
    assert describe_edit(DRAFT, DRAFT) == []


def test_closing_removed():
    with_closing = "Hello,\nThe plan passed.\nBest,\nAna"
    assert "no closing line" in describe_edit(with_closing, "Hello,\nThe plan passed.")


def test_shape_counts():
    shape = TextShape.of("Title\n- a\n- b?\nOK!")
    assert shape.bullets == 2 and shape.questions == 1 and shape.exclamations == 1 and shape.heading


def test_looks_like_preference_rejects_restated_content():
    assert looks_like_preference("bullet points, brief", DRAFT)
    assert not looks_like_preference("The council approved the plan on Tuesday", DRAFT)
    assert not looks_like_preference("word " * 30)
    assert not looks_like_preference("")


@pytest.mark.parametrize("answer", [
    "The edited version", "User's edited version", "Draft:", "the writing style",
    'The edited version: "The edited version: The edited version: The edited version',
    "I'm glad to help! Here's a possible combination of your preferences", "Sure! Brief and formal",
])
def test_looks_like_preference_rejects_echoed_labels_and_loops(answer):
    # what SmolLM2 answered for real LAMP edits before this check (results/lamp-small)
    assert not looks_like_preference(answer)


def test_looks_like_preference_keeps_short_style_phrases():
    for answer in ("brief", "formal tone", "short sentences, short paragraphs", "casual tone, no closing"):
        assert looks_like_preference(answer)
