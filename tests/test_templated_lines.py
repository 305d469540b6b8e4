"""Lines that change with the document (issue 27 item 4): a heading or a "TL;DR: ..." line made of each text's own
words is learned by its shape, never as fixed text to add to the next document; a greeting or a sign-off (the same
words every time) stays a fixed line."""

from __future__ import annotations

import pytest

from redline import text as tx
from redline.agent import GenerateOptions
from redline.agent.edit_analysis import edit_evidence
from redline.agent.editcost import edit_cost
from redline.agent.rules import ClosingLine, EndText, OpeningLine, OpeningTemplate, apply_rules, mine, rule_from_dict
from redline.evals.ops import build_operation
from redline.evals.ops import split_frame as split_frame_of_users
from redline.evals.tasks import DATA_DIR
from redline.evals.users import RuleUser, load_user_specs

from doubles import ScriptedGenerator

WIKI = ("The text describes a system of rules that councils use to plan roads. It was first written in 1950, and "
        "it has been changed many times since. Most towns still follow it today.")
ARXIV = ("We propose a new method for translating French poems. It keeps the rhyme of the original. Tests on two "
         "hundred poems show better scores than earlier systems.")


@pytest.mark.parametrize("line,source,expected", [
    ("# The text describes a system", WIKI, ("#", "The text describes a system")),
    ("TL;DR: It was first written in 1950.", WIKI, ("TL;DR:", "It was first written in 1950.")),
    ("In short: councils plan roads with rules", WIKI, ("In short:", "councils plan roads with rules")),
    ("Councils and their road rules", WIKI, ("", "Councils and their road rules")),
    ("Hey!", WIKI, None), ("Kind regards,", WIKI, None), ("Dear colleagues,", WIKI, None),
    ("Ever wondered what comes next?", ARXIV, None), ("Could you send me your thoughts by Friday?", WIKI, None),
    ("# The text describes a system", ARXIV, None),  # the same words above another document are a fixed line
])
def test_fixed_and_templated_lines(line, source, expected):
    assert tx.line_template(line, source) == expected


def test_a_headline_user_is_taught_the_shape_not_the_line():
    """The issue's case: a heading of the Wikipedia summary's first words must not become "start with the line
    '# The text describes a system'" for the next (arXiv) summary."""
    heading = build_operation({"op": "heading"})
    edited = heading.apply(WIKI)
    assert edited.startswith("# The text describes a system\n\n")
    evidence = edit_evidence(WIKI, edited)
    assert evidence == ["start with a short heading ('# …') naming the topic"]
    assert not any("describes" in item for item in evidence)
    rules = mine(WIKI, edited)
    assert [r.key for r in rules] == [OpeningTemplate("#", 5).key]
    next_summary = rules[0].apply(ARXIV)
    assert next_summary == heading.apply(ARXIV) == "# We propose a new method\n\n" + ARXIV


def test_a_tldr_user_is_taught_the_shape_and_the_rule_follows_each_text():
    tldr = build_operation({"op": "tldr_first"})
    evidence = edit_evidence(WIKI, tldr.apply(WIKI))
    assert evidence == ["begin with a 'TL;DR:' line summarising the text"]  # not "more detailed": the line is no body
    rule = mine(WIKI, tldr.apply(WIKI))[0]
    assert rule == OpeningTemplate("TL;DR:", 0) and rule.describe() == evidence[0]
    assert rule.followed(ARXIV, tldr.apply(ARXIV)) is True  # another TL;DR of other words: support
    assert rule.followed(ARXIV, ARXIV.replace("new", "novel")) is False  # the chance, not taken: a contradiction
    assert rule.followed(tldr.apply(ARXIV), tldr.apply(ARXIV)) is None  # already there: no chance
    fixed = "TL;DR: Read the whole thing, friends.\n\n" + ARXIV  # the shape with words of no document: tells nothing
    assert rule.followed(ARXIV, fixed) is None
    assert rule.apply(rule.apply(ARXIV)) == rule.apply(ARXIV) == tldr.apply(ARXIV)


def test_a_summary_line_rule_sets_a_label_the_generator_ran_into_the_text_on_a_line_of_its_own():
    """Qwen asked for an 'In short:' line sometimes writes the label in front of its first paragraph; the rule
    labelled that once more on every pass ('In short: In short: In short: In short: ...', 78 words of edit in the
    held-out summary run of 2026-12-07)."""
    rule = OpeningTemplate("In short:", 0)
    run_in = "In short: " + ARXIV
    fixed = rule.apply(run_in)
    assert fixed == "In short: We propose a new method for translating French poems.\n\n" + ARXIV.split(". ", 1)[1]
    assert fixed.count("In short:") == 1 and rule.apply(fixed) == fixed and rule.done(fixed)
    assert rule.apply(ARXIV).count("In short:") == 1  # a text without the label gets the line, as before
    assert OpeningTemplate("#", 0).apply(ARXIV).startswith("# We propose")  # '#' is no label the text has


def test_fixed_lines_stay_fixed_and_templated_endings_are_not_mined_as_text():
    greeting = build_operation({"op": "prefix_line", "text": "Ever wondered what comes next?"})
    assert [r.key for r in mine(ARXIV, greeting.apply(ARXIV))] == [OpeningLine("Ever wondered what comes next?").key]
    ending = ARXIV + "\n\nIn short: a new method keeps the rhyme of French poems."
    mined = mine(ARXIV, ending)
    assert not any(isinstance(r, (ClosingLine, EndText)) for r in mined), [r.describe() for r in mined]
    assert not any("rhyme" in item for item in edit_evidence(ARXIV, ending))


def test_an_opening_template_rule_from_a_dict_and_a_users_rewrite():
    rule = rule_from_dict({"kind": "opening_template", "params": {"prefix": "TL;DR:", "words": 0}})
    assert rule.text == "TL;DR:" and rule.with_text("Summary:").describe() == (
        "begin with a 'Summary:' line summarising the text")
    assert OpeningTemplate("", 4).describe() == "start with a short title line naming the topic"
    for params, message in (({"prefix": "a long label of many words:", "words": 3}, "prefix must be a heading mark"),
                            ({"prefix": "#", "words": 30}, "at most 12 words")):
        with pytest.raises(ValueError, match=message):
            rule_from_dict({"kind": "opening_template", "params": params})


def test_the_agent_never_asks_the_next_document_for_the_last_ones_heading(make_agent):
    """Learned from a heading user's edit (the generator's inference unusable, so the evidence is the preference),
    the preference used for the next document names the shape, and its heading is made from that document."""
    drafts = {"wiki": WIKI, "arxiv": ARXIV}

    def respond(prompt, i):
        last = prompt[-1]["content"]
        for name, text in drafts.items():
            if name in last:
                return text
        return "The edited version"  # an unusable inference: the evidence stands in for it

    agent = make_agent(ScriptedGenerator(respond), k=1, rules_min_support=1)
    heading = build_operation({"op": "heading"})
    first = agent.generate("ann", "wiki: the council road rules article")
    learned = agent.learn(first.interaction_id, heading.apply(first.text))
    assert learned.preference == "start with a short heading ('# …') naming the topic"
    second = agent.generate("ann", "arxiv: the paper about French poems", options=GenerateOptions())
    assert second.preference == learned.preference and "describes" not in second.preference
    assert "The text describes" not in str(second.prompt)
    assert second.text.startswith("# We propose a new method\n\n")  # the rule, made from this document


def test_a_labelled_first_line_heads_only_text_without_labels():
    email = "Subject: The film was long.\nHi team,\n\nThe film was long. I left early.\n\nBest,\nAnn"
    assert tx.split_frame(email) == (["Subject: The film was long.", "Hi team,"], "The film was long. I left early.",
                                     ["Best,", "Ann"])
    glossary = ("Dyed red hair: a trait of someone whose hair is not its natural color at all.\n\n"
                "Fair skin: a trait of someone whose skin is lighter than most people around them.\n\n"
                "Gray skin: a trait of someone whose skin has lost its color over many long years.")
    assert tx.split_frame(glossary) == ([], glossary, [])  # "Term: definition" lines are all body
    alone = "Draft: Budget notes say we utilize the reserve fund this year for two new bus lines in town."
    assert tx.split_frame(alone) == ([], alone, [])  # a labelled line that nothing follows is the text


REVIEW = ("Subject: A film about a warrior monk\n\n"
          "I'm an expert in fantasy role-playing, and I split my time between games and my own life. "
          "After some years of it I left with a sense of shame. You see, these things happen to everybody.")
NEXT_REVIEW = ("Subject: Advice for moviegoers\n\n"
               "I am writing to give you advice on which movies to watch. I am sorry to have ignored your advice. "
               "My decision to see the film wasn't made haphazardly.")


def test_a_summary_line_above_the_subject_line_is_read_as_frame():
    """The held-out peer-review user puts 'Summary: <the first point>' above the draft's own 'Subject: ...' line and
    numbers the sentences. Two labelled lines on top were read as body ("a text of labelled lines has no frame"):
    the agent never learned the summary line or the list from such an edit, and the user, shown their own edit
    back, labelled and numbered it all again (34 words): no draft with a subject line could satisfy them."""
    user = RuleUser(load_user_specs("email", DATA_DIR / "users-heldout.yaml"))
    edited = user.feedback("peer_review", REVIEW, REVIEW).edited
    assert edited.startswith("Summary: I'm an expert in fantasy role-playing")
    head, body, _ = tx.split_frame(edited)
    assert head == [edited.splitlines()[0], "Subject: A film about a warrior monk"] and body.startswith("1. ")
    assert user.feedback("peer_review", REVIEW, edited).edited == edited  # their own edit is what they want
    rules = mine(REVIEW, edited)
    assert {r.describe() for r in rules} == {"begin with a 'Summary:' line summarising the text",
                                             "numbered points, one per line"}
    ruled = apply_rules(NEXT_REVIEW, rules)[0]
    assert user.feedback("peer_review", NEXT_REVIEW, ruled).edited == ruled  # the learned rules: nothing to edit
    assert edit_cost(NEXT_REVIEW, user.feedback("peer_review", NEXT_REVIEW, NEXT_REVIEW).edited) > 20


# A movie review's draft headed by another user's 'In short:' line (a held-out summaries run, seed 1 round 1)
LABELLED_DRAFT = ("In short: This is the latest entry in the long series of films with the French agent, O.S.S. 117 "
                  "(the French answer to James Bond). The series was launched in the early 1950's, and spawned at "
                  "least eight films (none of which was ever released in the U.S.). 'O.S.S.117: Cairo, Nest Of Spies' "
                  "is a breezy little comedy that should not be taken seriously.")
NEXT_MOVIE = ("The film opens in a small town where nothing happens. Its two leads play brothers who have not spoken "
              "in years, and the script gives them little to say to each other now. The last half hour drags, though "
              "the music is lovely. I would not watch it twice.")


def test_a_labelled_sentence_left_alone_above_a_sign_off_is_the_body():
    """The held-out film reviewer cuts a draft to 40 words and signs it off: what they kept of a draft that opened
    with 'In short: ...' is that one labelled sentence above 'Thanks for reading!'. It was read as a frame line over
    an empty body, so the edit taught nothing (no limit, no closing line), and the next review cost as much again."""
    user = RuleUser(load_user_specs("summarize", DATA_DIR / "users-heldout.yaml"))
    edited = user.feedback("movie_review", LABELLED_DRAFT, LABELLED_DRAFT).edited
    assert edited.startswith("In short: This is the latest entry") and edited.endswith("Thanks for reading!")
    head, body, tail = tx.split_frame(edited)
    assert (head, tail) == ([], ["Thanks for reading!"]) and body.startswith("In short: This is the latest entry")
    assert split_frame_of_users(edited)[1] == ""  # the simulated users' reading is unchanged
    rules = mine(LABELLED_DRAFT, edited)
    learned = {r.describe() for r in rules}
    assert "end with the line 'Thanks for reading!'" in learned and learned & {"at most 1 sentence", "at most 30 words"}
    ruled = apply_rules(NEXT_MOVIE, rules)[0]
    cost = edit_cost(ruled, user.feedback("movie_review", NEXT_MOVIE, ruled).edited)
    assert cost < edit_cost(NEXT_MOVIE, user.feedback("movie_review", NEXT_MOVIE, NEXT_MOVIE).edited) / 2
