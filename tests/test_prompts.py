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


