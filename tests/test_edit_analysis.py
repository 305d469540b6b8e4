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


def test_rule_descriptions_read_back_as_the_rules_they_describe():
    from redline.agent import _rule_kinds as rk
    title = rk.MAX_TITLE_WORDS
    rules = [rk.MaxSentenceWords(n=12), rk.MaxSentences(n=1), rk.MaxSentences(n=3), rk.MaxWords(n=40),
             rk.BulletList(marker="*"), rk.NumberedList(), rk.NoExclamation(), rk.RemoveClosing(),
             rk.ClosingLine(line="Best,\nAna"), rk.OpeningLine(line="Quick summary for busy readers."),
             rk.EndText(ending="Thanks!"), rk.OpeningTemplate(prefix="In short:", words=0),
             rk.OpeningTemplate(prefix="", words=0), rk.OpeningTemplate(prefix="#", words=title),
             rk.OpeningTemplate(prefix="TL;DR:", words=title), rk.OpeningTemplate(prefix="", words=title)]
    for rule in rules:
        assert rk.rule_from_description(rule.describe()) == rule, rule.describe()
    # a word choice holds of one text, not of another: never read back
    for rule in (rk.ReplacePhrase(old="movie", new="film"), rk.DeletePhrase(phrase="Once upon a time")):
        assert rule.word_choice and rk.rule_from_description(rule.describe()) is None
    assert rk.rule_from_description("casual tone") is None and rk.rule_from_description("at most 0 words") is None


def test_item_holds_reads_rules_and_notes_on_one_text():
    from redline.agent.edit_analysis import item_holds
    text = "In short: the city adds forty miles of lanes.\n\nThe council voted. Will it help?\n\nWant to learn more?"
    assert item_holds("begin with a 'In short:' line summarising the text", text)
    assert item_holds("end with the line 'Want to learn more?'", text)
    assert item_holds("asks questions", text) and item_holds("no exclamation marks", text)
    assert item_holds("numbered points, one per line", text) is False
    assert item_holds("at most 3 words", text) is False
    assert item_holds("brief", text) is None and item_holds("friendly tone", text) is None


def test_with_kept_items_adds_what_the_kept_text_does_of_the_used_preference():
    from redline.agent.edit_analysis import kept_items, with_kept_items
    used = "begin with a 'In short:' line summarising the text; end with the line 'Want to learn more?'; with emojis"
    kept = "In short: the city adds forty miles of lanes.\n\nThe council voted. Will it help?\n\nWant to learn more?"
    assert kept_items(used, kept) == used.split("; ")[:2]  # the emojis were taken out
    assert with_kept_items("asks questions", used, kept) == "; ".join(used.split("; ")[:2] + ["asks questions"])
    # an item of the same aspect in what the edit taught replaces the used one; one said again is not repeated
    assert with_kept_items("end with the line 'Cheers,'; asks questions", used, kept) == \
        "begin with a 'In short:' line summarising the text; end with the line 'Cheers,'; asks questions"
    assert with_kept_items("End with the line 'Want to learn more?'", used, kept) == \
        "begin with a 'In short:' line summarising the text; End with the line 'Want to learn more?'"
    assert with_kept_items("asks questions", "", kept) == "asks questions"
    assert with_kept_items("asks questions", "friendly tone", kept) == "asks questions"
