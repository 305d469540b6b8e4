"""Edit rules (agent.rules): every kind mined from a realistic edit, applied to a new draft,
idempotent and untouched where it does not match; evidence; context counts; serialisation; and the
rule users of evals/data/users.yaml reproduced from a few of their edits."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import pytest

from redline import text as tx
from redline.agent import rules as kinds  # the rule kinds, as kinds.ReplacePhrase, ...
from redline.agent.editcost import edit_cost
from redline.agent.generators.loops import loops
from redline.agent.rules import (
    KINDS,
    Counts,
    Observation,
    RuleEvidence,
    Thresholds,
    active_here,
    apply_rules,
    chance_of,
    mine,
    observe,
    rule_from_dict,
    update_evidence,
)
from redline.evals import ops
from redline.evals.ops import build_operation
from redline.evals.tasks import DATA_DIR, load_documents
from redline.evals.users import RuleUser, load_user_specs

REPO = Path(__file__).resolve().parents[1]

# -- realistic drafts: what a small generator writes for the two tasks ---------------------------------

GREETINGS = ["Hi team,", "Dear Dr. Lee,", "Hello everyone,", "Hi Sam,", "Dear colleagues,"]
OPENERS = ["I hope this email finds you well.", "I am writing to share a quick update.", "",
           "I hope this message finds you well.", "I wanted to share something I read today."]
EXTRAS = ["It is an exciting result!", "I would like to hear what you think.",
          "Please let me know if you have any questions.", "I do not think we should wait too long.",
          "Thank you for your time."]
SIGNOFFS = ["Best regards,\nAlex", "Thanks,\nJordan", "Sincerely,\nMorgan", "Cheers,\nAlex", "Kind regards,\nSam"]


def _lead(text: str, lo: int = 60, hi: int = 110) -> list[str]:
    out, n = [], 0
    for s in ops.sentences(text):
        out.append(s)
        n += len(s.split())
        if n >= lo:
            break
    while len(out) > 1 and sum(len(s.split()) for s in out) > hi:
        out.pop()
    return out


def summary_draft(text: str, i: int = 0) -> str:
    return " ".join(_lead(text))


def email_draft(text: str, i: int) -> str:
    body = _lead(text, 45, 90)
    para1 = " ".join(x for x in [OPENERS[i % 5], *body[:2]] if x)
    para2 = " ".join(body[2:] + [EXTRAS[i % 5], EXTRAS[(i + 2) % 5]])
    return f"{GREETINGS[i % 5]}\n\n{para1}\n\n{para2}\n\n{SIGNOFFS[i % 5]}"


@lru_cache(maxsize=None)
def documents(task: str, source: str) -> tuple[str, ...]:
    return tuple(d.text for d in load_documents(task) if d.source == source)


@lru_cache(maxsize=None)
def drafts(task: str, source: str) -> tuple[str, ...]:
    make = summary_draft if task == "summarize" else email_draft
    return tuple(make(text, i) for i, text in enumerate(documents(task, source)))


def containing(pattern: str, texts) -> list[str]:
    return [t for t in texts if re.search(pattern, t, re.I)]


# -- every kind: mined from an edit, applied to a new draft, idempotent, untouched elsewhere -------------

def _case(op: dict, train: str, new: str, expected_rule, untouched: str):
    return pytest.param(op, train, new, expected_rule, untouched, id=expected_rule.kind)


def _kept_words(op: dict, texts, lo: int, hi: int) -> list[str]:
    """Drafts the user cuts to between ``lo`` and ``hi`` words (so the limit mined is the user's)."""
    operation = build_operation(op)
    return [t for t in texts if lo < len(tx.words(tx.body_of(operation.apply(t)))) <= hi
            and operation.apply(t) != t]


QUESTIONS = ["What is the movie about?", "What did the reviewer like?", "Is it worth watching?"]


def kind_cases():
    news = drafts("summarize", "news")
    long_news = [d for d in news if len(ops.sentences(d)) >= 4]
    three_groups = [d for d in news if len(ops.sentences(d)) in (3, 5, 6, 7, 8, 9)]  # every question used
    cut_to_40 = _kept_words({"op": "max_words", "n": 40}, news, 30, 40)
    arxiv = drafts("summarize", "arxiv")
    wiki = drafts("summarize", "wikipedia")
    mail = drafts("email", "reddit")
    proposing = containing(r"\bpropose\b", arxiv)
    exclaiming = [d for d in mail if "!" in tx.body_of(d)]
    stock = containing(r"I hope this email finds you well", mail)
    return [
        _case({"op": "replace_terms", "terms": {"propose": "suggest"}}, proposing[0], proposing[1],
              kinds.ReplacePhrase("propose", "suggest"), news[0]),
        _case({"op": "delete_phrases", "phrases": ["I hope this email finds you well"]}, stock[0], stock[1],
              kinds.DeletePhrase("I hope this email finds you well"), mail[1]),
        _case({"op": "prefix_line", "text": "Hey!"}, mail[0], mail[6], kinds.OpeningLine("Hey!"), "Hey!\n\n" + news[0]),
        _case({"op": "closing_line", "text": "Kind regards,"}, mail[0], mail[6], kinds.ClosingLine("Kind regards,"),
              news[0] + "\n\nKind regards,"),
        _case({"op": "remove_closing"}, mail[0], mail[6], kinds.RemoveClosing(), news[0]),
        _case({"op": "bullets"}, wiki[0], wiki[1], kinds.BulletList("-"), "- One point.\n- Another point."),
        _case({"op": "numbered"}, wiki[0], wiki[1], kinds.NumberedList(), "1. One point.\n2. Another point."),
        _case({"op": "max_words", "n": 40}, cut_to_40[0], cut_to_40[1], kinds.MaxWords(40), long_news[0][:150]),
        _case({"op": "max_sentences", "n": 2}, long_news[0], long_news[1], kinds.MaxSentences(2),
              " ".join(ops.sentences(long_news[2])[:2])),
        _case({"op": "question_answer", "questions": QUESTIONS}, three_groups[0], long_news[1],
              kinds.QuestionAnswer("\n".join(QUESTIONS)), "Q: What happened?\nA: It ended well."),
        _case({"op": "no_exclamation"}, exclaiming[0], exclaiming[1], kinds.NoExclamation(), news[0]),
        # the simulated user asks its closing question on a line of its own, so the rule is a closing line
        _case({"op": "end_with_question", "question": "What do you think happened next?"}, news[0], news[1],
              kinds.ClosingLine("What do you think happened next?"),
              "It ended well.\n\nWhat do you think happened next?"),
        _case({"op": "hashtags", "tags": ["research"]}, arxiv[0], arxiv[1], kinds.EndText("#research"),
              "A new model for French. #research"),
        # lines whose words come from the document: learned by their shape, made again from the next draft
        _case({"op": "heading"}, wiki[0], wiki[1], kinds.OpeningTemplate("#", 5), "# A heading\n\n" + news[0]),
        _case({"op": "tldr_first"}, news[0], news[1], kinds.OpeningTemplate("TL;DR:", 0),
              "TL;DR: It ended well.\n\n" + news[0]),
    ]


@pytest.mark.parametrize("op,train,new,expected_rule,untouched", kind_cases())
def test_every_kind_is_mined_applied_and_idempotent(op, train, new, expected_rule, untouched):
    operation = build_operation(op)
    edited = operation.apply(train)
    assert edited != train
    mined = mine(train, edited)
    assert expected_rule.key in {r.key for r in mined}, [r.describe() for r in mined]
    rule = next(r for r in mined if r.key == expected_rule.key)
    assert rule.followed(train, edited) is True

    out = rule.apply(new)
    assert out != new
    # the user's own fix of a new draft, token for token (delete_phrases also joins a greeting line to
    # the next paragraph, a layout slip of evals/ops.py that costs no token)
    assert edit_cost(out, operation.apply(new)) == 0
    if expected_rule.kind != "delete_phrase":
        assert out == operation.apply(new)
    assert rule.apply(out) == out                          # idempotent
    assert rule.apply(untouched) == untouched              # no match: not one character changes
    for flaw in (r"  ", r"\s[,.!?]", r"[,;]\s*[.!?]", r"(?:^|[.!?]\s)[a-z]"):  # no new double spaces, dangling
        assert len(re.findall(flaw, out)) <= len(re.findall(flaw, new)), flaw  # punctuation, small capitals


def test_split_long_sentences_is_mined_and_splits_at_clause_boundaries():
    operation = build_operation({"op": "split_long_sentences", "n": 15})
    mail = drafts("email", "peer_review")
    edited = operation.apply(mail[0])
    mined = next(r for r in mine(mail[0], edited) if isinstance(r, kinds.MaxSentenceWords))
    # read only from the sentences the user split: below the shortest of them, and at least their first pieces
    # and the sentences left whole that could have been split; a limit tighter than the user's is contradicted
    # by later edits, so the tightest limit still active applies
    assert 5 <= mined.n <= 15 and mined.followed(mail[0], edited) is True
    assert edit_cost(kinds.MaxSentenceWords(15).apply(mail[0]), edited) == 0  # the user's limit splits as they do
    limits = [kinds.MaxSentenceWords(20), kinds.MaxSentenceWords(15)]
    assert apply_rules(mail[0], limits)[1] == [kinds.MaxSentenceWords(15)]
    rule = kinds.MaxSentenceWords(15)
    new = "The film opens slowly, and the first hour feels long, but the ending pays off for patient viewers."
    out = rule.apply(new)
    assert out == "The film opens slowly, and the first hour feels long. But the ending pays off for patient viewers."
    assert rule.apply(out) == out
    # no comma or conjunction to cut at: left whole, never cut in the middle of a clause
    whole = "A remarkably long sentence without any place to break it across twenty plain words runs on here."
    assert rule.apply(whole) == whole


@pytest.mark.parametrize("rule,text,expected", [
    (kinds.DeletePhrase("to be honest"), "To be honest, the plan works. We start soon.",
     "The plan works. We start soon."),
    (kinds.DeletePhrase("I hope this helps"), "The plan works, I hope this helps.", "The plan works."),
    (kinds.DeletePhrase("Thank you for your time"), "Thank you for your time and patience.",
     "Thank you for your time and patience."),                                # no dangling "and patience."
    (kinds.DeletePhrase("Please let me know if you have any questions"),
     "Hi,\n\nWe won.\n- Please let me know if you have any questions.\n- Next step.", "Hi,\n\nWe won.\n- Next step."),
    (kinds.ReplacePhrase("however", "but"), "However, it works. It is slow, however.",
     "But, it works. It is slow, but."),
    (kinds.ReplacePhrase("OP", "you"), "Then OP left.", "Then you left."),
    (kinds.ReplacePhrase("utilize", "use"), "Underutilized tools utilize less.", "Underutilized tools use less."),
    (kinds.OpeningLine("Hey!"), "Hi Sam, I hope you are well. The plan works and we start on Monday.\n\nBest,\nAl",
     "Hey!\n\nI hope you are well. The plan works and we start on Monday.\n\nBest,\nAl"),
    (kinds.ClosingLine("Best, Lee"), "We won.\n\nThanks,\nJo", "We won.\n\nBest, Lee"),
    (kinds.NoExclamation(), "Hey!\n\nWe won! Really?! Yes!!", "Hey!\n\nWe won. Really? Yes."),
    # (a last paragraph of one line of at most 10 words is a frame line, as for the simulated users)
    (kinds.MaxWords(13), "The plan passed on Monday. Work starts in May and ends in June.\n\n"
     "Costs stay within the budget that the city council set last year.",
     "The plan passed on Monday. Work starts in May and ends in June."),
    (kinds.MaxSentences(3), "The plan passed on Monday. Work starts in May and ends in June.\n\nCosts stay low. "
     "Nobody objected to it at the long meeting that night.",
     "The plan passed on Monday. Work starts in May and ends in June.\n\nCosts stay low."),
    (kinds.EndText("How would you feel?"), "- A.\n- B.", "- A.\n- B.\n- How would you feel?"),
])
def test_apply_leaves_well_formed_text(rule, text, expected):
    assert rule.apply(text) == expected
    assert rule.apply(expected) == expected


# -- mining is conservative -----------------------------------------------------------------------------

def test_unrelated_rewrite_proposes_nothing_silly():
    draft = "The committee met on Tuesday and approved the new budget after a long debate about costs."
    rewrite = "After hours of arguing over money, the budget finally passed when the committee gathered."
    assert mine(draft, rewrite) == []
    assert mine(draft, draft) == []


@pytest.mark.parametrize("writer", ["W3", "W12"])
def test_real_human_rewrites_give_short_rules_that_do_not_fire_wrongly(writer):
    rows = json.loads((DATA_DIR / f"lamp_{writer}_edits.json").read_text(encoding="utf-8"))
    rules: dict = {}
    history = []
    for row in rows[:35]:
        mined = mine(row["preedit"], row["postedit"])
        assert len(mined) <= 10
        for rule in mined:
            if isinstance(rule, kinds.ReplacePhrase):
                assert len(rule.old.split()) <= 4 and len(rule.new.split()) <= 4
            if isinstance(rule, (kinds.DeletePhrase, kinds.EndText)):
                assert len(rule.text.split()) <= 12
        update_evidence(rules, row["preedit"], row["postedit"], row["id"], history=history)
        history.append((row["id"], row["preedit"], row["postedit"]))
    active = [ev.rule for ev in rules.values() if ev.active()]
    for row in rows[35:]:   # held out: a rule that fires must not take the text away from the writer's edit
        ruled, _ = apply_rules(row["preedit"], active)
        assert edit_cost(ruled, row["postedit"]) <= edit_cost(row["preedit"], row["postedit"])


def test_same_rule_mined_twice_is_one_rule():
    a = mine("However, the team left the stadium before the rain started.",
             "But, the team left the stadium before the rain started.")
    b = mine("We stayed in the old hall, however, until the noon bell rang.",
             "We stayed in the old hall, but, until the noon bell rang.")
    assert [r.key for r in a] == [r.key for r in b] == [kinds.ReplacePhrase("however", "but").key]
    assert kinds.ReplacePhrase("However", "But").key == kinds.ReplacePhrase("however", "but").key


# -- evidence ---------------------------------------------------------------------------------------------

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def test_contradicted_rule_deactivates():
    fix = build_operation({"op": "prefix_line", "text": "Hey!"})
    mail = drafts("email", "reddit")
    rules: dict = {}
    for i in range(2):
        update_evidence(rules, mail[i], fix.apply(mail[i]), f"i{i}", when=T0)
    ev = rules[kinds.OpeningLine("Hey!").key]
    assert (ev.support, ev.contradictions, ev.active()) == (2, 0, True)
    assert ev.supported_by == ["i0", "i1"] and ev.first_seen == T0
    update_evidence(rules, mail[2], mail[2].replace("Hello everyone,", "Hello all,"), "i2", when=T0)
    assert (ev.support, ev.contradictions) == (2, 1)
    assert ev.precision == pytest.approx(2 / 3) and not ev.active()       # 0.67 < 0.8
    assert ev.contradicted_by == ["i2"]
    ev.enabled = True                                                      # the user's override wins
    assert ev.active()


def test_every_known_rule_is_counted_not_only_new_ones():
    rules: dict = {}
    update_evidence(rules, "We utilize tools. It works.", "We use tools. It works.", "a")
    made = update_evidence(rules, "They utilize it daily.", "They utilize it daily, really.", "b")
    assert Observation(kinds.ReplacePhrase("utilize", "use").key, "b", False) in made
    made = update_evidence(rules, "Nothing to fix here.", "Nothing to fix here at all.", "c")
    assert not any(o.key == kinds.ReplacePhrase("utilize", "use").key for o in made)    # no chance: no verdict


def test_new_rule_is_counted_over_history():
    history = [("h1", "We utilize tools.", "We utilize tools, yes."), ("h2", "No tool.", "No tool here.")]
    rules: dict = {}
    update_evidence(rules, "We utilize it. Fine.", "We use it. Fine.", "n", history=history)
    ev = rules[kinds.ReplacePhrase("utilize", "use").key]
    assert (ev.support, ev.contradictions, ev.contradicted_by) == (1, 1, ["h1"])


def test_replacement_lost_with_its_sentence_is_no_evidence():
    rule = kinds.ReplacePhrase("utilize", "use")
    assert rule.followed("We won. We utilize tools.", "We won.") is None
    assert rule.followed("We utilize tools.", "We use tools.") is True
    assert rule.followed("We utilize tools.", "We utilize tools!") is False


def test_length_limit_needs_a_cut_at_the_end():
    rule = kinds.MaxSentences(2)
    assert rule.followed("One. Two. Three.", "One. Two.") is True
    assert rule.followed("One. Two. Three.", "One. Three.") is None        # shorter by a deletion inside
    assert rule.followed("One. Two. Three.", "One. Two. Three!") is False


def test_observe_gives_a_verdict_only_where_the_draft_offered_the_chance():
    rule = kinds.RemoveClosing()
    signed, unsigned = "We won the game.\n\nBest,\nAl", "We won the game."
    assert observe([rule], signed, unsigned) == {rule.key: True}
    assert observe([rule], signed, signed) == {rule.key: False}
    assert observe([rule], unsigned, signed) == {}


def test_rule_applies_where_it_was_learned_or_where_it_holds_everywhere():
    local_only = RuleEvidence(kinds.RemoveClosing(), support=3, contradictions=9)     # precision 0.25 overall
    assert active_here(local_only, Counts(3, 0))       # active among the neighbours: 0.25³ = 0.016 is no chance
    assert not active_here(local_only, Counts(0, 2))
    assert not active_here(local_only, None)
    now_and_then = RuleEvidence(kinds.RemoveClosing(), support=3, contradictions=5)   # precision 0.375 overall
    assert chance_of(Counts(2, 0), 0.375) == pytest.approx(0.375 ** 2)
    assert not active_here(now_and_then, Counts(2, 0))  # two of the user's 3 fixes being near is likely chance
    assert active_here(now_and_then, Counts(5, 0))
    everywhere = RuleEvidence(kinds.NoExclamation(), support=9, contradictions=1)
    assert active_here(everywhere, None)                                      # no local evidence: it holds
    assert not active_here(everywhere, Counts(0, 1))                          # a neighbour contradicts it
    assert not active_here(RuleEvidence(kinds.NoExclamation(), 9, 0, enabled=False), Counts(5, 0))


def test_thresholds_validate():
    with pytest.raises(ValueError, match="min_precision"):
        Thresholds(min_precision=1.5)
    assert Counts(2, 0).active(Thresholds(min_support=3)) is False


# -- applying in order ----------------------------------------------------------------------------------

def test_apply_rules_fixed_order_and_idempotent():
    rules = [kinds.OpeningLine("Dear colleagues,"), kinds.ClosingLine("Kind regards,"), kinds.NumberedList(),
             kinds.MaxSentences(3), kinds.NoExclamation(), kinds.ReplacePhrase("utilize", "use"),
             kinds.DeletePhrase("I hope this email finds you well")]
    draft = ("Hi team,\n\nI hope this email finds you well. We utilize a new method! It is fast. "
             "It is cheap. It is open.\n\nBest regards,\nAlex")
    out, applied = apply_rules(draft, rules)
    assert out == ("Dear colleagues,\n\n1. We use a new method.\n2. It is fast.\n3. It is cheap.\n\n"
                   "Kind regards,")
    assert {r.kind for r in applied} == {r.kind for r in rules}
    assert apply_rules(out, rules) == (out, [])
    assert apply_rules("Kind words only.", [kinds.ReplacePhrase("utilize", "use")]) == ("Kind words only.", [])


def test_a_rule_that_would_leave_nothing_of_the_document_is_skipped_given_it():
    """A one-sentence limit keeping only an opening exclamation (the held-out Reddit user then wrote the summary
    themselves, 46 words): skipped when the document is known, the other rules still apply; without the document
    only a body cut below MIN_BODY_WORDS counts as emptied."""
    document = ("My fellow redditors! Within reason, turn your ridiculous ideas into porn. There is no question in "
                "the headline. What kind of porn would you make if you could? I am developing a website for my alter "
                "ego and want memorable films with real stories, costumes and jokes, not the normal boring stuff.")
    draft = ("My fellow redditors! Within reason, turn your ridiculous ideas into porn! I am developing a website "
             "for my alter ego and want memorable films.")
    rules = [kinds.MaxSentences(1), kinds.NoExclamation()]
    assert apply_rules(draft, rules)[0] == "My fellow redditors."
    out, applied = apply_rules(draft, rules, document)
    assert out == draft.replace("!", ".") and applied == [kinds.NoExclamation()]
    assert apply_rules(out, rules, document) == (out, [])
    kept = ("Within reason, turn your ridiculous ideas into porn. My fellow redditors, the website wants memorable "
            "films.")
    assert apply_rules(kept, rules, document)[0] == "Within reason, turn your ridiculous ideas into porn."


def test_appended_text_is_not_cut_by_a_length_limit():
    rules = [kinds.MaxWords(6), kinds.EndText("How would you feel?")]
    out, applied = apply_rules("One two three. Four five six. Seven eight nine.", rules)
    assert out == "One two three. Four five six. How would you feel?"
    assert apply_rules(out, rules) == (out, [])


@pytest.mark.parametrize("rule,draft,expected", [
    # the draft already opens (closes) with the line's sentence inside a longer line: the rule makes it a line of
    # its own instead of writing it a second time (drafts and rules of a 40-round summarize run, redline)
    (kinds.OpeningLine("Ever wondered what comes next?"),
     "Ever wondered what comes next? FGN is a challenging task. Chinese characters carry glyph information.",
     "Ever wondered what comes next?\n\nFGN is a challenging task. Chinese characters carry glyph information."),
    (kinds.ClosingLine("How would you feel?"), "You walk in. It rains. How would you feel?",
     "You walk in. It rains.\n\nHow would you feel?"),
    (kinds.ClosingLine("How would you feel?"), "TL;DR: How would you feel? How would you feel?",
     "TL;DR: How would you feel?\n\nHow would you feel?"),
    # a text that is all frame line already ends with the ending: nothing to append
    (kinds.EndText("How would you feel?"), "TL;DR: You feel shy. How would you feel?",
     "TL;DR: You feel shy. How would you feel?"),
    # the draft has the closing line as a line of its own, but not at the end: the line moves there (two of the
    # three looping drafts of a 40-round email run, 2026-12-06)
    (kinds.ClosingLine("Thank you so much for your time,"),
     "Hi there,\n\nThank you so much for your time.\n\nI'm writing about the IP address blocked on Wikipedia.",
     "Hi there,\n\nI'm writing about the IP address blocked on Wikipedia.\n\nThank you so much for your time,"),
    (kinds.OpeningLine("Hi there,"), "Thanks for the notes.\n\nHi there,\n\nThe launch moves to May.",
     "Hi there,\n\nThanks for the notes.\n\nThe launch moves to May."),
    # ... or as the first sentence of a paragraph (the loop left in the email run with both fixes above)
    (kinds.ClosingLine("Thank you so much for your time,"),
     "Hi there,\n\nThank you so much for your time. Craig Mundie will pursue philanthropy. Ray Ozzie takes over.",
     "Hi there,\n\nCraig Mundie will pursue philanthropy. Ray Ozzie takes over.\n\nThank you so much for your time,"),
    # looping drafts of the 2026-12-06 summarize runs (code a5bcc3d): the line as a later sentence of a labelled
    # line, the line opening a row where no capital follows its end, the line as a list item
    (kinds.ClosingLine("How would you feel?"),
     "TL;DR: I feel very sad and frustrated. How would you feel? How do you feel?",
     "TL;DR: I feel very sad and frustrated. How do you feel?\n\nHow would you feel?"),
    (kinds.OpeningLine("Ever wondered what comes next?"),
     "Ever wondered what comes next? 🚀✨ asks questions; with emojis.",
     "Ever wondered what comes next?\n\n🚀✨ asks questions; with emojis."),
    (kinds.OpeningLine("Here's the story."), "1. Here's the story.\n2. The email came.\n3. He knew my schedule.",
     "Here's the story.\n\n1. The email came.\n2. He knew my schedule."),
    (kinds.ClosingLine("Thanks for reading!"), "- The film is long.\n- Thanks for reading!\n- The cast is good.",
     "- The film is long.\n- The cast is good.\n\nThanks for reading!"),
])
def test_frame_line_rules_do_not_repeat_a_sentence_the_draft_has(rule, draft, expected):
    out, _ = apply_rules(draft, [rule])
    assert out == expected
    assert not loops(out)
    assert apply_rules(out, [rule]) == (out, [])


@pytest.mark.parametrize("draft,expected", [
    # the two looping drafts of the 2026-12-06 email run with rule scopes: the opening line split the greeting off
    # a first sentence that said the closing line, after the closing rule had run
    ("Hi there, thank you so much for your time. I hope this email finds you well. I am writing about Genoa.",
     "Hi there,\n\nI hope this email finds you well. I am writing about Genoa.\n\nThank you so much for your time,"),
    ("Hi there, thank you so much for your time. You want to write to me.",
     "Hi there,\n\nYou want to write to me.\n\nThank you so much for your time,"),
])
def test_a_copy_one_frame_rule_uncovers_is_moved_by_the_other(draft, expected):
    rules = [kinds.ClosingLine("Thank you so much for your time,"), kinds.OpeningLine("Hi there,")]
    out, _ = apply_rules(draft, rules)
    assert out == expected and not loops(out)
    assert apply_rules(out, rules) == (out, [])


@pytest.mark.parametrize("draft,expected", [
    # six looping drafts of the 2026-12-06 held-out summarize run: the numbered rule made the draft's opening line a
    # list item, and the opening rule wrote it again above the list
    ("Here's the story.", "Here's the story."),
    ("Here's the story.\nThe email came from a hacker. He knew my schedule.",
     "Here's the story.\n\n1. The email came from a hacker.\n2. He knew my schedule."),
])
def test_an_opening_line_the_list_rule_numbered_is_not_written_twice(draft, expected):
    rules = [kinds.NumberedList(), kinds.OpeningLine("Here's the story.")]
    out, _ = apply_rules(draft, rules)
    assert out == expected and not loops(out)
    assert apply_rules(out, rules) == (out, [])


def test_loosest_limit_of_a_kind_applies():
    out, applied = apply_rules("One. Two. Three. Four.", [kinds.MaxSentences(2), kinds.MaxSentences(3)])
    assert out == "One. Two. Three." and applied == [kinds.MaxSentences(3)]


@pytest.mark.parametrize("op,train,new,rule,untouched", kind_cases())
def test_apply_rules_with_every_kind_is_idempotent(op, train, new, rule, untouched):
    everything = [c.values[3] for c in kind_cases()]
    for text in (train, new, untouched):
        once, _ = apply_rules(text, everything)
        assert apply_rules(once, everything)[0] == once


# -- serialisation and editing ----------------------------------------------------------------------------

@pytest.mark.parametrize("rule", [c.values[3] for c in kind_cases()] + [kinds.MaxSentenceWords(15)],
                         ids=lambda r: r.kind)
def test_round_trip(rule):
    data = json.loads(json.dumps(rule.to_dict()))
    assert rule_from_dict(data) == rule
    assert data["kind"] in KINDS and data["description"] == rule.describe()


def test_every_kind_is_covered():
    covered = {c.values[3].kind for c in kind_cases()} | {"max_sentence_words"}
    assert covered == set(KINDS)


@pytest.mark.parametrize("data,message", [
    ({"kind": "shout", "params": {}}, "unknown rule kind 'shout'"),
    ({"kind": "max_words", "params": {"n": 0}}, "n must be a whole number"),
    ({"kind": "max_words", "params": {"words": 3}}, "unknown parameter"),
    ({"kind": "replace_phrase", "params": {"old": "use", "new": "use"}}, "must change"),
    ({"kind": "replace_phrase", "params": {"old": "use", "new": "make use"}}, "contains the old one"),
    ({"kind": "delete_phrase", "params": {"phrase": "well"}}, "at least two words"),
    ({"kind": "opening_line", "params": {"line": ""}}, "must not be empty"),
    ({"kind": "bullets", "params": {"marker": "+"}}, "marker must be one of"),
    ("max_words", "an object"),
])
def test_from_dict_validates(data, message):
    with pytest.raises(ValueError, match=message):
        rule_from_dict(data)


def test_with_text_changes_the_editable_part():
    assert kinds.ReplacePhrase("utilize", "use").with_text("employ") == kinds.ReplacePhrase("utilize", "employ")
    assert kinds.ClosingLine("Best, Lee").with_text("Cheers, Lee").describe() == "end with the line 'Cheers, Lee'"
    assert kinds.MaxWords(60).with_text("45") == kinds.MaxWords(45)
    assert kinds.MaxWords(60).text == "60" and kinds.NoExclamation().text is None
    for bad, message in [("", "must not be empty"), ("   ", "must not be empty"), ("x" * 201, "longer than 200")]:
        with pytest.raises(ValueError, match=message):
            kinds.OpeningLine("Hey!").with_text(bad)
    with pytest.raises(ValueError, match="no text to change"):
        kinds.NoExclamation().with_text("anything")
    with pytest.raises(ValueError, match="whole number"):
        kinds.MaxWords(60).with_text("sixty")


def test_describe_in_plain_words():
    assert kinds.ReplacePhrase("utilize", "use").describe() == "replace 'utilize' with 'use'"
    assert kinds.ClosingLine("Best, Lee").describe() == "end with the line 'Best, Lee'"
    assert kinds.MaxWords(60).describe() == "at most 60 words"
    assert kinds.MaxSentences(1).describe() == "at most 1 sentence"


# -- the product module stands alone; its text helpers agree with the simulated users' --------------------

def test_rules_do_not_import_evals():
    code = "import sys, redline.agent.rules; print('redline.evals' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"


def test_frame_and_sentences_agree_with_the_simulated_users():
    texts = [t for task, src in [("summarize", "news"), ("summarize", "reddit"), ("email", "reddit"),
                                 ("email", "paper_abstract")] for t in drafts(task, src)[:15]]
    for text in texts:
        assert tx.split_frame(text) == ops.split_frame(text)
        assert tx.sentences(text) == ops.sentences(text)


# -- the headline: rule users reproduced from a few edits -------------------------------------------------

TRAIN, HELD_OUT = 4, range(10, 20)


def learn_user(task: str, source: str, n: int = TRAIN):
    user = RuleUser(load_user_specs(task))
    stream = drafts(task, source)
    rules: dict = {}
    history = []
    for i in range(n):
        edited = user.feedback(source, "", stream[i]).edited
        update_evidence(rules, stream[i], edited, f"{source}-{i}", when=T0, history=history)
        history.append((f"{source}-{i}", stream[i], edited))
    active = [ev.rule for ev in rules.values() if ev.active()]
    without = with_rules = reproduce = 0
    for i in HELD_OUT:
        draft = stream[i]
        ruled, _ = apply_rules(draft, active)
        without += edit_cost(draft, user.feedback(source, "", draft).edited)
        with_rules += edit_cost(ruled, user.feedback(source, "", ruled).edited)
        reproduce += edit_cost(ruled, user.feedback(source, "", draft).edited)
    n_held = len(HELD_OUT)
    return rules, active, without / n_held, with_rules / n_held, reproduce / n_held


# (task, source): the highest mean token cost left on held-out drafts after 4 edits. What is left is evidence still
# to come (a stock phrase seen once: the email reddit user deletes a different one in each draft; a sentence-length
# limit read from one edit); after 10 edits every one of these users is reproduced to within a token per draft.
EXPECTED_LEFT = {
    ("summarize", "news"): 6, ("summarize", "reddit"): 1, ("summarize", "wikipedia"): 1, ("summarize", "arxiv"): 1,
    ("summarize", "movie_review"): 0,  # the question-answer layout, under the user's own questions
    ("email", "paper_abstract"): 1, ("email", "reddit"): 13, ("email", "peer_review"): 1,
    ("email", "paper_tweet"): 1,
}


@pytest.mark.parametrize("task,source", sorted(EXPECTED_LEFT))
def test_rule_users_are_reproduced_after_four_edits(task, source):
    rules, active, without, with_rules, reproduce = learn_user(task, source)
    assert active, "no rule learned"
    assert with_rules < without
    assert with_rules <= EXPECTED_LEFT[task, source]
    assert len(rules) <= 4 * 5                       # a handful of candidates per edit, not a flood


@pytest.mark.parametrize("draft,expected", [
    # the two looping drafts of the 2026-12-06 summarize run on 9049647: the generator wrote the questions as the draft
    ("Once upon a time, here is what happened. What do you think happened next? What is the movie about? What did "
     "the reviewer like or dislike? Is it worth watching?",
     "Q: What is the movie about?\nA: Once upon a time, here is what happened.\nQ: What did the reviewer like or "
     "dislike?\nA: What do you think happened next?"),
    ("What is the movie about?", "What is the movie about?"),
])
def test_question_answer_rule_does_not_answer_with_its_questions(draft, expected):
    rule = kinds.QuestionAnswer("What is the movie about?\nWhat did the reviewer like or dislike?\n"
                                "Is it worth watching?")
    out, _ = apply_rules(draft, [rule])
    assert out == expected and not loops(out)
    assert apply_rules(out, [rule]) == (out, [])


def test_question_answer_rule_keeps_one_rule_whatever_questions_an_edit_used():
    rules, active, *_ = learn_user("summarize", "movie_review")
    [qa] = [ev for ev in rules.values() if ev.rule.kind == "question_answer"]
    assert qa.rule in active and qa.support == TRAIN and qa.contradictions == 0
    assert kinds.QuestionAnswer("Why?").key == kinds.QuestionAnswer("What?\nWhen?").key
    qa = kinds.QuestionAnswer("What?\nWhen?")
    assert qa.apply("One. Two. Three.") == "Q: What?\nA: One. Two.\nQ: When?\nA: Three."


# -- idempotence under any mix of rules and drafts ----------------------------------------------------------

def _all_rules():
    return [c.values[3] for c in kind_cases()] + [
        kinds.MaxSentenceWords(12), kinds.BulletList("*"), kinds.ClosingLine("Best,\nLee"),
        kinds.OpeningLine("Once upon a time, here is what happened."), kinds.EndText("#research 🚀✨"),
        kinds.DeletePhrase("Thank you for your time"), kinds.ReplacePhrase("it is", "it's"), kinds.MaxWords(20)]


def test_any_mix_of_rules_is_idempotent_on_any_draft():
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    texts = [d for task, src in [("summarize", "news"), ("summarize", "arxiv"), ("email", "reddit"),
                                 ("email", "paper_abstract"), ("summarize", "wikipedia"), ("email", "peer_review")]
             for d in drafts(task, src)[:12]]

    @hypothesis.settings(max_examples=400, deadline=None, derandomize=True)
    @hypothesis.given(st.sampled_from(texts), st.lists(st.sampled_from(_all_rules()), max_size=6))
    def check(text, rules):
        once, _ = apply_rules(text, rules)
        assert apply_rules(once, rules) == (once, [])

    check()


def test_a_body_cut_to_one_short_sentence_stays_the_body():
    rules = [kinds.OpeningLine("Hey!"), kinds.MaxSentences(1), kinds.EndText("What do you think?"),
             kinds.ClosingLine("Kind regards,")]
    draft = ("Hi Sam,\n\nI hope this message finds you well. The match went to extra time and we won it on "
             "penalties.\n\nBest,\nAl")
    out, _ = apply_rules(draft, rules)
    assert out == "Hey!\n\nI hope this message finds you well. What do you think?\n\nKind regards,"
    assert apply_rules(out, rules) == (out, [])
    assert tx.split_frame("Hey!\n\nShort body.\n\nKind regards,") == (["Hey!"], "Short body.", ["Kind regards,"])


def test_no_rule_empties_a_draft_to_its_frame_lines():
    # seed 1 of the 2026-12-06 night email run: the deletion left 'Hey!' and the user wrote the whole email
    draft = "Hey! I hope this email finds you well."
    delete, no_exclamation = kinds.DeletePhrase("I hope this email finds you well"), kinds.NoExclamation()
    assert apply_rules(draft, [delete]) == (draft, [])
    assert apply_rules(draft, [delete, no_exclamation])[0].endswith("I hope this email finds you well.")
    assert apply_rules(draft + " See you Friday.", [delete]) == ("Hey! See you Friday.", [delete])
