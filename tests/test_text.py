"""redline.text, the one reading of text: its hard cases (abbreviations, decimals, lists, emoji, quotes, scripts
other than Latin), the edit cost's tokens as README documents them, and no second reader elsewhere."""

import math
import re
from pathlib import Path

import pytest

from redline import text as tx
from redline.agent.edit_analysis import TextShape
from redline.agent.editcost import edit_cost, tokenize
from redline.evals import ops
from redline.policies.edit_features import text_stats

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("text,expected", [
    # abbreviations and initials end no sentence; "I" and a plain word do
    ("Dr. Lee met the U.S. team, e.g. the coach. Then they left.",
     ["Dr. Lee met the U.S. team, e.g. the coach.", "Then they left."]),
    ("Ask Mrs. Dalloway or J. K. Rowling. They know.", ["Ask Mrs. Dalloway or J. K. Rowling.", "They know."]),
    ("The film was made in the U.K. It ran for years.", ["The film was made in the U.K. It ran for years."]),
    ("So did I. Then we went home.", ["So did I.", "Then we went home."]),
    # decimals, prices and versions are inside a sentence; a number may start one
    ("It grew 3.5% to $4.99 in v2.0 of the app. 2024 was better.",
     ["It grew 3.5% to $4.99 in v2.0 of the app.", "2024 was better."]),
    # a lower-case word after a full stop continues the sentence; an ellipsis before a capital ends it
    ("It works, i.e. mostly. Wait... Then it broke.", ["It works, i.e. mostly.", "Wait...", "Then it broke."]),
    # bullets and numbered lines: one line, one item, markers not part of the sentence
    ("- First point. Second point\n* Third\n1. Fourth\n2) Fifth", ["First point.", "Second point", "Third", "Fourth",
                                                                    "Fifth"]),
    ("Q: What is it?\nA: A film. A good one.", ["What is it?", "A film.", "A good one."]),
    # emoji stay with the sentence they follow and start none
    ("Great job! 🎉 See you soon. 🚀✨", ["Great job! 🎉", "See you soon. 🚀✨"]),
    ("We won! 🎉 and then we slept.", ["We won! 🎉 and then we slept."]),
    # quotes and brackets close with their sentence, straight or curly; an opening one may start the next
    ('He said "Go." Then he left.', ['He said "Go."', "Then he left."]),
    ("She wrote “Done.” ‘Fine,’ he said.", ["She wrote “Done.”", "‘Fine,’ he said."]),
    ("(It was late.) We stayed.", ["(It was late.)", "We stayed."]),
    # scripts without Latin capitals: Cyrillic capitals, CJK marks without a space, Arabic letters and marks
    ("Привет. Как дела? хорошо.", ["Привет.", "Как дела? хорошо."]),
    ("我们走了。你呢？好的。", ["我们走了。", "你呢？", "好的。"]),
    ("مرحبا. كيف حالك؟ أنا بخير.", ["مرحبا.", "كيف حالك؟", "أنا بخير."]),
    ("Émile arrived. Ärger folgte.", ["Émile arrived.", "Ärger folgte."]),
])
def test_sentences_of_the_hard_cases(text, expected):
    assert tx.sentences(text) == expected
    assert ops.sentences(text) == expected  # the simulated users read them alike


def test_sentence_pieces_keep_the_text_as_written():
    line = 'He said "Go."  Then he left! 🎉 Done.'
    assert tx.sentence_pieces(line) == ['He said "Go."', "Then he left! 🎉", "Done."]
    assert " ".join(tx.sentence_pieces(line)).replace(" ", "") == line.replace(" ", "")


@pytest.mark.parametrize("text,i,expected", [
    ("We won. To be honest", 8, True),
    ("Ask Dr. Lee", 8, False),           # after an abbreviation
    ("We won. to be honest", 8, False),  # a lower-case word continues the sentence
    ('He said "Go." Then', 14, True),    # after a closing quote
    ("- To be honest", 2, True),         # after a list marker
    ("A: Sure", 3, True),                # after a Q:/A: label
    ("Intro\nTo be honest", 6, True),    # at the start of a line
    ("We won, to be honest", 8, False),
])
def test_starts_sentence(text, i, expected):
    assert tx.starts_sentence(text, i) is expected


def test_the_edit_costs_tokens_are_unchanged():
    assert tokenize("Don't stop!") == tx.tokens("Don't stop!") == ["Don", "'", "t", "stop", "!"]  # as README says
    assert "`\"Don't stop!\"` → `Don ' t stop !`" in (REPO / "README.md").read_text()
    assert tx.tokens("Привет, мир! 我们走了。 3.5 🎉") == ["Привет", ",", "мир", "!", "我们走了", "。", "3", ".", "5",
                                                         "🎉"]
    assert edit_cost("We utilize it.", "We use it!") == 2


def test_words_and_phrase_tokens():
    assert tx.words("State-of-the-art, don't: 3.5 km. 🚀 #news") == ["State-of-the-art,", "don't:", "3.5", "km."]
    assert tx.bare_words('"Stop!" (Now) U.S. —') == ["Stop", "Now", "U.S"]
    assert tx.PHRASE_TOKEN.findall("I'm late!") == ["I'm", "late", "!"]
    assert tx.norm("Don’t STOP — now!") == "don’t stop now"
    assert tx.words("Привет, мир. 我们走了") == ["Привет,", "мир.", "我们走了"]


def test_greetings_closings_and_frames():
    assert tx.is_head("Hi Sam,") and tx.is_head("Good morning team!") and tx.is_head("# Title")
    assert not tx.is_head("Hi Sam, I hope you are well and that the trip went fine.")
    assert tx.INLINE_GREETING.match("Dear Dr. Lee, thanks for the notes.").group() == "Dear Dr. Lee, "
    assert tx.is_closing(["Best regards,", "Sam"]) and tx.is_closing(["Thanks for reading!"])
    assert not tx.is_closing(["Thanks to the new policy, costs fell. Revenue rose."])
    body = "The plan passed on Monday after a long debate. We start on the first of May."
    email = f"Hi Sam,\n\n{body}\n\nBest regards,\nAl"
    assert tx.split_frame(email) == (["Hi Sam,"], body, ["Best regards,", "Al"])
    assert ops.split_frame(email) == tx.split_frame(email)


def test_frames_read_back_as_written():
    # a short list item alone in its paragraph is the body's first (last) item, not a frame line
    text = "Dear Dr. Lee,\n\n1. I am writing to share a quick update.\n\nWhat do you think happened next?"
    assert tx.split_frame(text) == (["Dear Dr. Lee,"], "1. I am writing to share a quick update.",
                                    ["What do you think happened next?"])
    # head lines joined into one text are split the same way again, also a line that is a frame line only alone
    for head in (["Hi Sam,"], ["# Title", "Hi Sam,"], ["Once upon a time, here is what happened.", "Hi team,"]):
        joined = tx.join_frame(head, "We met on Monday. It went well.", ["Best,", "Al"])
        assert tx.split_frame(joined) == (head, "We met on Monday. It went well.", ["Best,", "Al"])


def test_every_reader_counts_the_same_sentences_and_words():
    text = "Hi Ann,\n\nDr. Lee met the U.S. team. It grew 3.5%! 🎉\n\n- One item\n- Another item\n\nBest,\nBo"
    shape = TextShape.of(text)
    stats = dict(zip(("log_len", "log_sent"), text_stats(text)[:2]))
    assert shape.sentences == len(tx.sentences(text)) == 7 and shape.words == len(tx.words(text)) == 17
    assert stats["log_sent"] == pytest.approx(math.log(7)) and stats["log_len"] == pytest.approx(math.log(17))
    assert shape.greeting and shape.closing and shape.bullets == 2 and shape.emojis == 1


def test_no_second_reader_of_text():
    """Sentence ends, greeting and closing word lists, list markers and emoji ranges are written down once."""
    readers = re.compile(r"\[\^?\.!\?|\bhi\|h|regards\||\[-\*•|U0001F")
    found = [f"{path.relative_to(REPO)}:{n}" for folder in ("agent", "api", "cli", "evals", "policies", "retrieval",
                                                             "runtime", "store")
             for path in (REPO / folder).rglob("*.py")
             for n, line in enumerate(path.read_text().splitlines(), 1) if readers.search(line)]
    assert found == []


def test_bare_words_are_the_counted_words_without_their_marks():
    from redline.evals.tasks import load_documents

    for doc in load_documents("summarize")[:100] + load_documents("email")[:100]:
        assert tx.bare_words(doc.text) == [re.sub(r"^[^\w]+|[^\w]+$", "", w) for w in tx.words(doc.text)]


def test_words_are_the_pieces_between_white_space_that_have_a_word_character():
    from redline.evals.tasks import load_documents

    for doc in load_documents("summarize")[:100] + load_documents("email")[:100]:
        pieces = [w for w in doc.text.split() if re.search(r"\w", w) and not w.startswith("#")]
        assert tx.words(doc.text) == pieces


def test_a_sentence_splits_at_a_clause_dash_never_inside_a_compound_with_spaced_hyphens():
    assert tx.split_sentence("A 27 - year - old man was arrested after the crash on Tuesday.", 5) == [
        "A 27 - year - old man was arrested after the crash on Tuesday."]
    assert tx.split_sentence("The film runs long - but the ending pays off for the patient.", 5) == [
        "The film runs long.", "But the ending pays off for the patient."]


ARTICLE = ("The council voted to close the Elm Street library branch in March, citing repair costs of two million "
           "dollars, falling visits since 2019, and a newer branch three miles away that opens longer hours on "
           "weekends and holds most of the same collection.")


@pytest.mark.parametrize("draft, ignores", [
    ("Here's the story.", True),
    ("Hi friend, talk soon.", True),
    ("I'm sorry, but I can't assist with that request.", True),
    ("Summary: The branch closes.", True),  # two words of the document: not enough to say it was read
    ("The council closes the library in March.", False),
    ("A branch shut: the repair cost was too high.", False),  # 'cost' is the document's 'costs'
])
def test_a_draft_ignores_a_document_when_it_takes_fewer_than_three_of_its_content_words(draft, ignores):
    assert tx.ignores_document(draft, ARTICLE) is ignores


def test_a_short_request_is_not_a_document_a_draft_must_draw_on():
    assert not tx.ignores_document("Here's the story.", "Write a haiku about spring, please")
    assert tx.ignores_document("Here's the story.", ARTICLE)
