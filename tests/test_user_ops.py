"""The rule users edit as a person would: every edit leaves well-formed text, and a check and its edit agree
(after the edit the check passes; an edit never fires where the check already passes)."""

from __future__ import annotations

import pytest

from redline.evals.ops import build_operation
from redline.evals.tasks import load_documents
from redline.evals.users import RuleUser, load_user_specs


def op(kind, **params):
    return build_operation({"op": kind, **params})


def test_a_greeting_already_there_is_not_added_again():
    hey = op("prefix_line", text="Hey!")
    text = "Hey! I'm sorry to hear about the move.\n\nBest,\nAl"
    assert hey.check(text) and hey.apply(text) == text


def test_a_greeting_inside_the_first_sentence_is_replaced_not_doubled():
    hey = op("prefix_line", text="Hey!")
    assert hey.apply("Hi Sam, I hope you are doing well and the move went fine.") == \
        "Hey!\n\nI hope you are doing well and the move went fine."
    assert hey.apply("Hello team,\n\nThe plan changed.") == "Hey!\n\nThe plan changed."


def test_a_stock_phrase_goes_with_its_whole_sentence():
    delete = op("delete_phrases", phrases=["Please let me know if you have any questions"])
    text = "Thanks for the notes. Can you please let me know if you have any questions or concerns? See you soon."
    assert delete.apply(text) == "Thanks for the notes. See you soon."  # never "Can you or concerns?"
    delete = op("delete_phrases", phrases=["I hope this email finds you well"])
    assert delete.apply("Hi Sam,\n\nI hope this email finds you well. We won.\n\nBest,\nAl") == \
        "Hi Sam,\n\nWe won.\n\nBest,\nAl"  # the paragraph break stays
    assert delete.apply('She said "I hope this email finds you well." Then "we won."') == 'Then "we won."'


def test_long_sentences_split_only_where_they_can():
    split = op("split_long_sentences", n=8)
    unsplittable = "Honestly this is the film I am considering myself an expert on after all these years."
    assert split.check(unsplittable) and split.apply(unsplittable) == unsplittable  # never "… an. Expert on."
    assert split.apply("I watched it twice, which made me think about the film and the book. #ml 🚀") == \
        "I watched it twice. This made me think about the film and the book. #ml 🚀"  # hashtags, emojis kept
    assert split.apply("The team shipped the release on time, but the tests were flaky all week.") == \
        "The team shipped the release on time. But the tests were flaky all week."


def test_a_short_last_paragraph_of_content_survives_a_closing_line():
    closing = op("closing_line", text="Kind regards,")
    body = "The grant was approved for two more years, and the lab will hire two students in the spring."
    assert closing.apply(f"{body}\n\nThe parade is on Friday.") == \
        f"{body}\n\nThe parade is on Friday.\n\nKind regards,"
    assert closing.apply("The grant was approved.\n\nBest,\nAl") == "The grant was approved.\n\nKind regards,"


def test_replacements_are_capitalised_only_where_a_sentence_starts():
    replace = op("replace_terms", terms={"OP": "you", "the author": "you"})
    assert replace.apply("Then OP left. OP came back. The author wrote.") == "Then you left. You came back. You wrote."


def test_the_closing_question_does_not_count_against_the_length_limit():
    text = "One thing happened. " * 6 + "\n\nWhat do you think happened next?"
    assert op("max_sentences", n=6).check(text) and op("end_with_question", question="Why?").check(text)
    asked = op("end_with_question", question="What next?").apply("Body one. Body two.\n\nBest regards,\nAnn")
    assert asked == "Body one. Body two.\n\nWhat next?\n\nBest regards,\nAnn"  # before the sign-off


@pytest.mark.parametrize("task", ["summarize", "email"])
def test_every_shipped_user_is_satisfied_by_its_own_edit(task):
    """On real documents used as drafts: after the user's edit every one of the user's checks passes, and the
    user leaves its own edit alone (otherwise even a perfect generator would pay a cost every round)."""
    specs = load_user_specs(task)
    user = RuleUser(specs)
    for doc in load_documents(task)[:60]:
        edited = user.feedback(doc.source, doc.text, doc.text[:900]).edited
        assert [o.kind for o in specs[doc.source].operations if not o.check(edited)] == [], (doc.id, edited)
        again = user.feedback(doc.source, doc.text, edited)
        assert again.satisfied and again.edited == edited, doc.id
