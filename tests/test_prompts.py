import pytest

from redline.agent import prompts


def test_task_prompt_includes_context_and_preference():
    msgs = prompts.task_prompt("summarize", "The article text.", "bullet points, brief.")
    assert msgs[0]["role"] == "system"
    assert "The article text." in msgs[-1]["content"]
    assert msgs[-1]["content"].endswith("bullet points, brief.")


def test_task_prompt_without_preference_and_truncation():
    msgs = prompts.task_prompt("email", "word " * 5000, None, context_chars=300)
    assert "preference" not in msgs[-1]["content"]
    assert len(msgs[-1]["content"]) < 450


def test_unknown_task():
    with pytest.raises(ValueError, match="unknown task 'poem'"):
        prompts.task_prompt("poem", "x")


def test_inference_prompt_sees_the_kept_text_and_the_evidence_not_the_document():
    evidence = ["start with the line 'Hey!'", "brief"]
    content = prompts.inference_prompt("summarize", "EDITED TEXT", evidence)[0]["content"]
    assert "EDITED TEXT" in content and "- start with the line 'Hey!'\n- brief" in content
    assert "next summary" in content
    assert "- small rewording" in prompts.inference_prompt("email", "E", [])[0]["content"]


@pytest.mark.parametrize("raw,clean", [
    ("Preference: bullet points, brief.\nMore text", "bullet points, brief"),
    ('  "casual tone, no closing"  ', "casual tone, no closing"),
    ("\n\n- short sentences", "short sentences"),
    ("Here's a possible combination of your preferences:\n\n* brief, formal", "brief, formal"),
    ("", ""),
    ("- Start with 'Hey!'\n- use contractions\n\nI hope this helps!", "Start with 'Hey!'; use contractions"),
    ("start with the line 'Hi there,'; no closing", "start with the line 'Hi there,'; no closing"),
])
def test_clean_preference(raw, clean):
    assert prompts.clean_preference(raw) == clean


def test_clean_preference_caps_words():
    assert len(prompts.clean_preference("word " * 100, max_words=10).split()) == 10


@pytest.mark.parametrize("text,kept", [
    # drafts and revisions of the 2026-12-06 runs (email, summarize, CoAuthor) that wrote the prompt back
    ("Hi there,\n\nThank you so much for your time.\n\nYou are a writing assistant, and I am writing to suit this "
     "user's preference: start with the line 'Hi there,'; addresses the reader as 'you'.",
     "Hi there,\n\nThank you so much for your time."),
    ("The couple's relationship has been good for many years.\n\nRevise the draft to suit this user's preference: "
     "asks questions; more detailed. Keep its content.", "The couple's relationship has been good for many years."),
    ("He had tried being a white guy, a black guy.\n\nWrite it to suit this user's preference: Small rewording; "
     "brief.", "He had tried being a white guy, a black guy."),
    ("The launch moves to May. Answer with the revised text only.", "The launch moves to May."),
    # sentences as redline.text reads them: "Dr." does not end one
    ("Dr. Smith met us. Dr. Jones wrote to suit this user's preference: brief.", "Dr. Smith met us."),
    # nothing to cut, or nothing would be left
    ("The launch moves to May. It suits the team.", "The launch moves to May. It suits the team."),
    ("Write it to suit this user's preference: brief.", "Write it to suit this user's preference: brief."),
])
def test_without_echo_cuts_the_instructions_a_generator_writes_back(text, kept):
    assert prompts.without_echo(text) == kept
    assert prompts.without_echo(kept) == kept


ASK = "Ask questions; begin with a 'Subject:' line; keep sentences short; end with the line 'Kind regards,'"


@pytest.mark.parametrize("text,echo", [
    # the preference written back as the email (the shipped email run of 2026-12-06 had 20 such drafts)
    ("Subject: Ask questions; begin with a 'Subject:' line; keep sentences short.\n\nKind regards,", True),
    ("Subject: Meeting\n\nHi! Begin with a \u201cSubject:\u201d line. Keep sentences short. Kind regards,", True),
    # a draft that follows the preference quotes its lines, never its clauses whole
    ("Subject: The launch\n\nCan we move the launch to May? It suits the team.\n\nKind regards,", False),
    # one clause alone may be the user's own words
    ("Subject: Notes\n\nPlease keep sentences short in the report.\n\nKind regards,", False),
])
def test_echoes_preference_finds_a_preference_written_back_as_the_text(text, echo):
    assert prompts.echoes_preference(text, ASK) is echo
    assert prompts.echoes_preference(text, None) is False


LINES = (
    "Hey! Want to send me your thoughts by Friday? Could you send me your thoughts by Friday? boring slow Kind regards")


@pytest.mark.parametrize("text,echo", [
    # cipher-5 emails of the 2026-12-06 shipped run: the preference's lines strung together, nothing of the notes
    ("Hey! Want to send me your thoughts by Friday? Could you send me your thoughts by Friday? Kind regards.", True),
    ("Hey!\n\nCould you send me your thoughts by Friday?\n\nKind regards,", True),
    # the lines around an email of its own
    ("Hey!\n\nThe levee in New Orleans gave way again after Hurricane Rita, and parts of the city are flooded. "
     "Could you send me your thoughts by Friday?\n\nKind regards,", False),
    ("Hey! Kind regards.", False),  # too short to tell
])
def test_echoes_preference_finds_a_text_made_of_the_preference_s_words(text, echo):
    assert prompts.echoes_preference(text, LINES) is echo
