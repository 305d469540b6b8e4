"""The agent's CIPHER loop with the hash embedder and a scripted generator (fast, deterministic)."""

import logging
import re
import time

import pytest
from stores import job_counts

from redline.agent import (
    EditConflict,
    GenerateOptions,
    GeneratorUnavailable,
    InvalidInput,
    UnknownInteraction,
    UnknownPreference,
    UnknownUser,
)
from redline.agent.preferences import consensus_preference

from doubles import ScriptedGenerator

BIKES = "The city council voted to expand the bike lane network by forty miles over five years."
BIKES2 = "County officials approved new protected bike lanes downtown after a rise in cycling crashes."
BAKING = "This sourdough recipe needs flour, water, salt and a long cold fermentation overnight."


def answering(*, combined, inferred, draft=lambda content, i: f"draft {i} for: {content[:30]}"):
    """A ScriptedGenerator responder with fixed answers to the aggregation and inference prompts."""
    def respond(prompt, i):
        content = prompt[-1]["content"]
        if "Combine them" in content:
            return combined
        if "What the edit changed" in content:
            return inferred
        return draft(content, i)
    return respond


responder = answering(combined="Combined: bullets and brevity", inferred="Preference: bullet points, brief")


@pytest.fixture
def agent(make_agent):
    return make_agent(ScriptedGenerator(responder), k=1)


def test_learned_preference_is_retrieved_for_a_similar_context(agent):
    first = agent.generate("alice", BIKES)
    assert first.preference is None and first.neighbours == []
    learned = agent.learn(first.interaction_id, "- Council adds 40 miles of bike lanes")
    assert learned.is_edit and learned.kind == "inferred" and learned.preference == "bullet points, brief"
    second = agent.generate("alice", BIKES2)
    assert second.preference == "bullet points, brief"
    assert second.neighbours[0]["interaction_id"] == first.interaction_id
    assert 0 < second.neighbours[0]["similarity"] <= 1
    assert "bullet points, brief" in second.prompt[-1]["content"]


def test_a_draft_of_the_preference_s_lines_alone_is_drafted_again_without_the_preference(make_agent):
    def draft(content, i):  # what Qwen2.5-Coder-0.5B did in the rule-user runs, given 'end with Thanks for reading!'
        return "Thanks for reading!" if "preference" in content else "The council expands the bike lanes."
    agent = make_agent(ScriptedGenerator(answering(combined="x", inferred="Preference: end with 'Thanks for reading!'",
                                                   draft=draft)), k=1)
    first = agent.generate("alice", BIKES)
    agent.learn(first.interaction_id, first.text + "\n\nThanks for reading!")
    second = agent.generate("alice", BIKES2)
    assert second.text == "The council expands the bike lanes." and second.preference is None
    assert "preference" not in second.prompt[-1]["content"]  # the prompt that wrote the draft
    assert second.tokens_out == len("Thanks for reading!".split()) + len(second.text.split())  # both calls count
    assert second.candidates[0]["drafted_again"] == "frame lines only"
    assert first.candidates[0]["drafted_again"] is None


def test_a_draft_that_writes_the_preference_back_is_drafted_again_without_it(make_agent):
    def draft(content, i):  # Qwen2.5-Coder-0.5B in the shipped email run: the preference list as the email
        asked = content.partition("this user's preference: ")[2]
        return f"Subject: {asked}" if asked else "Subject: Bike lanes\n\nShall we talk about the bike lanes?"
    agent = make_agent(ScriptedGenerator(answering(
        combined="x", inferred="start with the line 'Subject: Bikes'; write short sentences; ask the reader questions",
        draft=draft)), k=1)
    first = agent.generate("alice", BIKES)
    learned = agent.learn(first.interaction_id, "Subject: Bikes\n\nCan we expand the lanes? It is safer. It is cheap.")
    second = agent.generate("alice", BIKES2)
    assert second.text.endswith("Shall we talk about the bike lanes?") and second.preference is None
    assert "preference" not in second.prompt[-1]["content"]
    assert second.candidates[0]["drafted_again"] == "the preference written back"
    echoed = len(f"Subject: {learned.preference}.".split())  # the draft asked for it, then thrown away
    assert second.tokens_out == echoed + len("Subject: Bike lanes\n\nShall we talk about the bike lanes?".split())


def test_a_draft_that_writes_one_phrase_over_and_over_is_drafted_again_without_the_preference(make_agent):
    def draft(content, i):  # Qwen2.5-Coder-0.5B, asked for a summary with a film reviewer's preference, 2026-12-06
        return "The movie about" + " the movie about" * 20 if "preference" in content else "Bike lanes grow."
    agent = make_agent(ScriptedGenerator(answering(combined="x", inferred="bullet points, brief", draft=draft)), k=1)
    first = agent.generate("alice", BIKES)
    agent.learn(first.interaction_id, "- Bike lanes grow.\n- By forty miles.")
    second = agent.generate("alice", BIKES2)
    assert "movie" not in second.text and second.preference is None
    assert second.candidates[0]["drafted_again"] == "one phrase over and over"


ELM = ("The council voted to close the Elm Street library branch in March, citing repair costs of two million "
       "dollars, falling visits since 2019, and a newer branch three miles away that opens longer hours on weekends "
       "and holds most of the same collection.")
ELM2 = ("The school board voted to close the Oak Avenue pool in June, citing repair costs of one million dollars, "
        "falling swim classes since 2020, and a newer pool two miles away that opens longer hours on weekends.")


def test_a_draft_that_takes_nothing_from_the_document_is_drafted_again_without_the_preference(make_agent):
    def draft(content, i):  # Qwen2.5-Coder-0.5B, given a story-teller's preference for a summary, 2026-12-07
        if "preference" in content:
            return "Here's the story."
        return "The board closes the Oak Avenue pool in June." if "Oak" in content else "The library closes."
    agent = make_agent(ScriptedGenerator(answering(combined="x", inferred="start with 'Here's the story.'",
                                                   draft=draft)), k=1)
    first = agent.generate("alice", ELM)
    agent.learn(first.interaction_id, "Here's the story.\n\nThe library closes.")
    second = agent.generate("alice", ELM2)
    assert second.text == "The board closes the Oak Avenue pool in June." and second.preference is None
    assert second.candidates[0]["drafted_again"] == "nothing of the document"
    # a short request is no document to draw on: the same answer to it stands
    short = agent.generate("alice", "Tell me a story")
    assert short.text == "Here's the story." and short.candidates[0]["drafted_again"] is None


def test_other_users_history_never_influences(agent):
    first = agent.generate("alice", BIKES)
    agent.learn(first.interaction_id, "- edited by alice")
    bob = agent.generate("bob", BIKES2)
    assert bob.preference is None and bob.neighbours == []
    other_tenant = agent.generate("alice", BIKES2, tenant="acme")
    assert other_tenant.preference is None


def test_no_edit_at_or_below_delta_stores_the_used_preference(make_agent):
    agent = make_agent(ScriptedGenerator(responder), k=1, delta=2)
    first = agent.generate("alice", BIKES)
    agent.learn(first.interaction_id, "- edited")
    second = agent.generate("alice", BIKES2)
    result = agent.learn(second.interaction_id, second.text + " ok.")  # cost 2 <= delta
    assert result.cost == 2 and not result.is_edit
    assert result.kind == "accepted" and result.preference == "bullet points, brief"
    no_pref = agent.generate("carol", BAKING)
    unchanged = agent.learn(no_pref.interaction_id, no_pref.text)
    assert unchanged.cost == 0 and unchanged.preference is None
    assert agent.preferences("carol")["stats"]["preferences"] == 0


def test_edit_is_learned_exactly_once(agent):
    gen = agent.generate("alice", BIKES)
    first = agent.learn(gen.interaction_id, "- mine")
    again = agent.learn(gen.interaction_id, "- mine")
    assert again.already_learned and again.preference_id == first.preference_id
    assert agent.preferences("alice")["stats"]["preferences"] == 1
    with pytest.raises(EditConflict, match="already has a different edit"):
        agent.learn(gen.interaction_id, "- something else")


def test_aggregation_with_k_gt_1_is_one_cached_call(make_agent):
    gen = ScriptedGenerator(responder)
    agent = make_agent(gen, k=3, aggregation="llm")
    for ctx in (BIKES, BIKES2):
        r = agent.generate("alice", ctx)
        agent.learn(r.interaction_id, "- edited " + ctx[:10])
    agent.update_preference("alice", 1, "short sentences")
    calls_before = len(gen.calls)
    third = agent.generate("alice", BIKES + " Again.")
    assert third.preference == "bullets and brevity"
    assert len(gen.calls) == calls_before + 2  # one aggregation call + one generation call
    agent.generate("alice", BIKES + " Once more.")
    assert len(gen.calls) == calls_before + 3  # aggregation came from the cache


label_echo = answering(combined='The edited version: "The edited version: The edited version: The edited version:',
                       inferred="The edited version", draft=lambda content, i: f"draft {i}")


def test_answers_that_echo_prompt_labels_are_not_stored_as_preferences(make_agent):
    agent = make_agent(ScriptedGenerator(label_echo), k=3)
    first = agent.generate("alice", BIKES)
    learned = agent.learn(first.interaction_id, "- Council adds 40 miles\n- Five years")
    assert learned.preference == "bullet points; more detailed"  # the observed form changes stand in
    agent.update_preference("alice", learned.preference_id, "formal tone")
    second = agent.generate("alice", BIKES2)
    agent.learn(second.interaction_id, "- Protected lanes\n- After crashes")
    third = agent.generate("alice", BIKES + " Again.")
    nearest = third.neighbours[0]["preference"]
    assert len(third.neighbours) == 2 and third.preference == nearest  # the nearest one, not the loop


@pytest.mark.parametrize("preferences,expected", [
    (["asks questions", "asks questions, short sentences", "Bullet points, asks questions"], "asks questions"),
    (["brief; formal tone", "formal tone, brief", "with emojis"], "brief; formal tone"),
    (["formal tone", "bullet points"], "formal tone"),  # no majority: the nearest
    (["asks questions", "asks questions", "bullet points"], "asks questions"),  # repeats count
])
def test_consensus_keeps_the_phrases_most_neighbours_share(preferences, expected):
    assert consensus_preference(preferences) == expected


def test_unusable_aggregation_answer_is_replaced_by_the_neighbours_consensus(make_agent):
    agent = make_agent(ScriptedGenerator(label_echo), k=3, aggregation="llm")
    _bullet_points_and_one_more_each(agent, ", ")
    assert agent.generate("alice", BIKES + " Again.").preference == "bullet points"


def _bullet_points_and_one_more_each(agent, separator):
    """Three of alice's edits, whose preferences she rewrote to 'bullet points' and one other thing each."""
    for extra, ctx in zip(("formal tone", "brief", "with emojis"), (BIKES, BIKES2, BIKES + " Also.")):
        r = agent.generate("alice", ctx)
        learned = agent.learn(r.interaction_id, "- edited")
        agent.update_preference("alice", learned.preference_id, f"bullet points{separator}{extra}")


def test_an_answer_copying_the_instructions_is_not_a_preference(make_agent):
    # SmolLM2's answer to a real email edit (docs/results.md)
    echo = "The user requested a draft of a text. The assistant wrote a draft and the user edited it"
    agent = make_agent(ScriptedGenerator(lambda p, i: echo if "What the edit changed" in p[-1]["content"]
                                         else "A short draft about the new bike lanes."), k=1)
    first = agent.generate("alice", BIKES)
    learned = agent.learn(first.interaction_id, "Hello,\nA short draft about the new bike lanes.")
    assert learned.preference.startswith("start with the line 'Hello,'")  # the measured evidence, not the echo


@pytest.mark.parametrize("answer", ["Dear colleagues", "# Summary; Start with the line '# Summary'", "Hey!"])
def test_an_answer_restating_a_line_of_the_kept_text_is_not_a_preference(make_agent, answer):
    # Qwen2.5-Coder-0.5B's answers in the 2026-12-06 40 x 3 runs: a line of the text, not a preference about it
    agent = make_agent(ScriptedGenerator(lambda p, i: answer if "What the edit changed" in p[-1]["content"]
                                         else "A short draft about the new bike lanes."), k=1)
    first = agent.generate("alice", BIKES)
    learned = agent.learn(first.interaction_id, f"{answer.split(';')[0]}\nA short draft about the new bike lanes.")
    assert learned.inferred_by == "evidence" and learned.preference != answer  # the measured evidence


def test_an_aggregation_that_adds_what_no_neighbour_showed_is_replaced_by_the_consensus(make_agent):
    made_up = "TL;DR: You're a busy and demanding person who's always looking for a way to make a difference"

    def respond(prompt, i):
        content = prompt[-1]["content"]
        if "Combine them" in content:
            return made_up
        return "bullet points" if "What the edit changed" in content else f"draft {i}"

    agent = make_agent(ScriptedGenerator(respond), k=3, aggregation="llm")
    _bullet_points_and_one_more_each(agent, "; ")
    assert agent.generate("alice", BIKES + " Again.").preference == "bullet points"


def test_by_default_the_neighbours_vote_is_the_target_without_a_generator_call(make_agent):
    """The vote (``aggregation="vote"``, the default): what most retrieved preferences name, with no call the
    generator could answer with content ('Summary: This paper proposes ...', a 2026-12-07 held-out email user's
    aggregate) and nothing cached."""
    gen = ScriptedGenerator(responder)  # it would answer the aggregation prompt 'bullets and brevity'
    agent = make_agent(gen, k=3)
    _bullet_points_and_one_more_each(agent, "; ")
    calls_before = len(gen.calls)
    third = agent.generate("alice", BIKES + " Again.")
    assert third.preference == "bullet points" and len(third.neighbours) == 3
    assert len(gen.calls) == calls_before + 1  # the draft only
    assert agent.export_user("alice")["aggregations"] == []
    agent.update_preference("alice", third.neighbours[0]["preference_id"], "formal tone")
    agent.update_preference("alice", third.neighbours[1]["preference_id"], "formal tone; with hashtags")
    assert agent.generate("alice", BIKES + " Again.").preference == "formal tone"


def test_user_edits_and_deletes_of_preferences_apply_at_once(agent):
    gen = agent.generate("alice", BIKES)
    learned = agent.learn(gen.interaction_id, "- mine")
    agent.update_preference("alice", learned.preference_id, "formal tone")
    assert agent.generate("alice", BIKES2).preference == "formal tone"
    agent.delete_preference("alice", learned.preference_id)
    assert agent.generate("alice", BIKES2).preference is None
    with pytest.raises(UnknownPreference):
        agent.delete_preference("alice", learned.preference_id)


@pytest.mark.parametrize("user,context,task,message", [
    ("alice", "   ", "summarize", "context is empty"),
    ("al ice", "text", "summarize", "user must be 1-128 characters"),
    ("alice", "text", "poem", "unknown task 'poem'"),
    ("alice", "x" * 30_001, "summarize", "context is 30001 characters; the limit is 20000"),
])
def test_bad_input_is_rejected_with_a_clear_message(agent, user, context, task, message):
    with pytest.raises(InvalidInput, match=message):
        agent.generate(user, context, task)
    assert agent.store.counts()["interactions"] == 0


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x08", "\x07", "\x1f", "\x7f"])
def test_control_characters_in_texts_are_rejected_naming_the_character(agent, char):
    """Issue 16.6: NUL, ESC and the other C0 controls (and DEL) are a clear InvalidInput (the API's 400) in a
    context, a chat turn, an edit and a preference correction; nothing is stored or changed."""
    code = re.escape(f"U+{ord(char):04X}")
    with pytest.raises(InvalidInput) as err:
        agent.generate("alice", f"Hi {char}there", "summarize")
    assert str(err.value) == (f"context contains the control character U+{ord(char):04X} at position 3; only tab, "
                              "newline, carriage return, vertical tab and form feed may appear")
    history = [{"role": "user", "content": "fine"}, {"role": "assistant", "content": f"bad{char}"}]
    with pytest.raises(InvalidInput, match=f"chat history message 1 contains the control character {code}"):
        agent.generate("alice", "next question", "chat", GenerateOptions(history=history))
    assert agent.store.counts()["interactions"] == 0 and agent.store.counts()["users"] == 0
    gen = agent.generate("alice", BIKES)
    with pytest.raises(InvalidInput, match=f"edited text contains the control character {code} at position 4"):
        agent.submit_edit(gen.interaction_id, f"kept{char}")
    assert agent.store.edit(gen.interaction_id) is None
    learned = agent.learn(gen.interaction_id, "- kept")
    with pytest.raises(InvalidInput, match=f"preference text contains the control character {code}"):
        agent.update_preference("alice", learned.preference_id, f"brief{char}")
    assert agent.preferences("alice")["items"][0]["text"] == learned.preference


def test_layout_controls_and_c1_characters_are_kept(agent):
    """Tab, newline, CR, vertical tab and form feed lay out text; C1 (here U+0096, a mis-decoded en dash, as in
    the vendored email data) is kept too: both arrive in real documents."""
    context = "Title\r\n\tIndented\x0bline\x0cpage 1990\x962000"
    gen = agent.generate("alice", context)
    assert agent.store.interaction(gen.interaction_id)["context"] == context
    agent.submit_edit(gen.interaction_id, "kept\ttext\x96")
    assert agent.store.edit(gen.interaction_id)["edited_text"] == "kept\ttext\x96"


def test_info_logs_carry_lengths_not_texts_unless_log_text_asks(make_agent, tmp_path, caplog):
    """Issue 16.6: generation and learning log ids and lengths at INFO; REDLINE_LOG_TEXT adds the texts."""
    context, edit = f"{BIKES} zebraquokka", "- zebraquokka kept"
    caplog.set_level("INFO", logger="redline")
    for log_text in (False, True):
        caplog.clear()
        agent = make_agent(ScriptedGenerator(responder), k=1, log_text=log_text, data_dir=tmp_path / str(log_text))
        learned = agent.learn(agent.generate("alice", context).interaction_id, edit)
        lines = [r.getMessage() for r in caplog.records if r.name.startswith("redline.agent")]
        assert any(line.startswith("generate user=alice interaction=") and f"context_chars={len(context)}" in line
                   for line in lines), lines
        assert any(line.startswith("learned interaction=") and f"preference_chars={len(learned.preference)}" in line
                   for line in lines), lines
        texts = [line for line in lines if "zebraquokka" in line or learned.preference in line]
        assert len(texts) == (2 if log_text else 0), lines


def test_unknown_ids(agent):
    with pytest.raises(UnknownInteraction, match="unknown interaction id 'nope'"):
        agent.learn("nope", "text")
    with pytest.raises(UnknownUser):
        agent.preferences("ghost")
    with pytest.raises(InvalidInput, match="edited text is empty"):
        agent.learn("nope", "")


def test_generator_down_stores_nothing_and_keeps_accepted_edits(agent):
    gen = agent.generate("alice", BIKES)
    time.sleep(0.002)  # health stamps are milliseconds: a failure stamped in the success's millisecond is no outage
    agent.generator.down = True
    with pytest.raises(GeneratorUnavailable):
        agent.generate("alice", BIKES2)
    assert agent.store.counts()["interactions"] == 1
    agent.submit_edit(gen.interaction_id, "- kept")
    with pytest.raises(GeneratorUnavailable):
        agent.process_pending()
    assert job_counts(agent.store) == {"pending": 1}
    assert agent.store.jobs.get(gen.interaction_id)["error_kind"] == "generator"
    assert agent.generator_down()["error"] == "GeneratorUnavailable: scripted generator is down"
    agent.generator.down = False
    assert agent.process_pending() == 1  # the generator answers again: its job is queued at once, not after 30 s
    assert job_counts(agent.store) == {"done": 1}
    assert agent.preferences("alice")["stats"]["preferences"] == 1


def test_explicit_preference_overrides_retrieval(agent):
    r = agent.generate("alice", BIKES, options=GenerateOptions(preference="pirate speak"))
    assert r.preference == "pirate speak" and r.neighbours == []


def test_export_and_delete_user(agent):
    gen = agent.generate("alice", BIKES)
    agent.learn(gen.interaction_id, "- mine")
    dump = agent.export_user("alice")
    assert dump["user"]["name"] == "alice" and len(dump["interactions"]) == 1 and len(dump["preferences"]) == 1
    removed = agent.delete_user("alice")
    assert removed["preferences"] == 1
    with pytest.raises(UnknownUser):
        agent.export_user("alice")


def test_delete_user_drops_the_cached_index_and_aggregations(make_agent):
    agent = make_agent(ScriptedGenerator(responder), k=3, aggregation="llm")
    for ctx in (BIKES, BIKES2):
        r = agent.generate("alice", ctx)
        agent.learn(r.interaction_id, "- edited " + ctx[:10])
    agent.update_preference("alice", 1, "short sentences")  # two different texts: an aggregation call
    assert agent.generate("alice", BIKES + " Again.").preference == "bullets and brevity"
    uid = agent.store.user_id("default", "alice", create=False)
    assert uid in agent.index_cache
    assert agent.export_user("alice")["aggregations"][0]["text"] == "bullets and brevity"
    removed = agent.delete_user("alice")
    assert removed["aggregations"] == 1
    assert uid not in agent.index_cache
    assert agent.store._sql.db["aggregations"].count == 0


def test_one_failure_rule_for_queued_jobs(agent, monkeypatch, caplog):
    """run_jobs (the learner) and process_pending (learn-pending) treat a failing job alike: a deleted interaction is
    dropped; any other failure backs off (30 s ± 20% after the first attempt), then parks the job, which is kept
    (visible, with its error) and learned once retried; nothing accepted fails for good."""
    from redline.agent.jobs import Backoff, JobRunner
    from redline.store import now_iso

    ids = []
    for ctx in (BIKES, BIKES2, BAKING):
        r = agent.generate("alice", ctx)
        agent.submit_edit(r.interaction_id, "- kept " + ctx[:12])
        ids.append(r.interaction_id)
    real = agent.learner._read_step  # one edit's part of a (batched) learning step

    def failing(interaction_id):
        if interaction_id == ids[0]:
            raise UnknownInteraction("deleted meanwhile")
        if interaction_id == ids[1]:
            raise RuntimeError("boom")
        return real(interaction_id)

    monkeypatch.setattr(agent.learner, "_read_step", failing)
    with caplog.at_level("WARNING", logger="redline.agent.jobs"):
        outcomes = agent.run_jobs()
    assert [(o.outcome, o.requeued) for o in outcomes] == [("dropped", False), ("error", True)]
    assert job_counts(agent.store) == {"dropped": 1, "pending": 2}  # nothing is left 'running'
    assert f"learning job 1 dropped: its interaction {ids[0]} was deleted" in caplog.text
    job = agent.store.jobs.get(ids[1])
    assert (job["error"], job["error_kind"], job["attempts"]) == ("RuntimeError: boom", "error", 1)
    assert now_iso(23) < job["run_after"] < now_iso(37)
    learning = agent.interaction(ids[1])["learning"]
    assert (learning["status"], learning["attempts"], learning["error"], learning["retry_at"]) == (
        "pending", 1, "RuntimeError: boom", job["run_after"])
    assert agent.process_pending() == 1  # the third edit; the second waits out its back-off
    assert job_counts(agent.store) == {"dropped": 1, "pending": 1, "done": 1}

    assert agent.retry_learning() == 1 and agent.store.jobs.get(ids[1])["attempts"] == 0
    runner = JobRunner(agent.store.jobs, agent.process_edit, owner="test", max_attempts=3,
                       backoff=Backoff(clock=lambda: 0.0))  # every back-off ends in 1970
    assert [runner.drain()[-1].outcome for _ in range(3)] == ["error", "error", "parked"]
    assert runner.drain() == [] and agent.process_pending() == 0  # a parked job is never claimed
    assert job_counts(agent.store) == {"dropped": 1, "parked": 1, "done": 1} and agent.parked_jobs() == 1
    learning = agent.interaction(ids[1])["learning"]
    assert (learning["status"], learning["attempts"], learning["error"], learning["retry_at"]) == (
        "parked", 3, "RuntimeError: boom", None)
    assert agent.retry_generator_jobs() == 0  # the generator did not fail it: only a retry on command requeues it

    monkeypatch.undo()
    assert agent.retry_learning(tenant="other") == 0 and agent.retry_learning() == 1
    assert agent.process_pending() == 1
    assert job_counts(agent.store) == {"dropped": 1, "done": 2} and agent.parked_jobs() == 0
    assert agent.interaction(ids[1])["learning"]["status"] == "learned"


def test_jobs_the_generator_failed_are_parked_and_queued_again_once_it_answers(agent):
    """A generator that answers what the client cannot use (an unexpected error) fails a job as the generator's
    ('generator'); once parked, it is queued again when a probe of the generator succeeds, attempts reset."""
    from redline.agent.jobs import Backoff, JobRunner

    r = agent.generate("alice", BIKES)
    agent.submit_edit(r.interaction_id, "- kept")
    inner = agent.generator.inner
    real = inner.respond
    inner.respond = lambda prompt, i: (_ for _ in ()).throw(KeyError("choices"))
    runner = JobRunner(agent.store.jobs, agent.process_edit, owner="test", max_attempts=2,
                       backoff=Backoff(clock=lambda: 0.0))
    assert [runner.drain()[-1].outcome for _ in range(2)] == ["retry", "parked"]
    job = agent.store.jobs.get(r.interaction_id)
    assert (job["status"], job["error_kind"], job["error"]) == ("parked", "generator", "KeyError: 'choices'")
    assert agent.generator_down()["error"] == "KeyError: 'choices'"
    assert agent.retry_generator_jobs() == 0 and agent.store.jobs.get(r.interaction_id)["status"] == "parked"
    inner.respond = real
    assert agent.retry_generator_jobs() == 1 and agent.generator_down() is None
    job = agent.store.jobs.get(r.interaction_id)
    assert (job["status"], job["attempts"], job["error"], job["run_after"]) == ("pending", 0, None, None)
    assert agent.process_pending() == 1 and job_counts(agent.store) == {"done": 1}


def test_a_batch_of_edits_is_learned_as_one_step_each_exactly_once(agent):
    """process_edits: every edit of the batch is learned once (a second call only reports them), and two edits
    of one user chain their routing steps."""
    agent.import_pairs([{"context": c, "chosen": "- " + c[:20], "rejected": c, "user": "alice"}
                        for c in (BIKES, BIKES2, BAKING)])
    assert agent.train_rewards(force=True, n_heads=2)["users_routed"] == 1
    steps_before = agent.store.reward_state(agent.store.user_id("default", "alice"))["n"]
    ids = []
    for user, ctx in (("alice", BIKES), ("bob", BAKING), ("alice", BIKES2)):
        r = agent.generate(user, ctx)
        agent.submit_edit(r.interaction_id, "- kept " + ctx[:12])
        ids.append(r.interaction_id)
    results = agent.process_edits(ids + ["nope"])
    assert [r.already_learned for r in results[:3]] == [False] * 3 and isinstance(results[3], UnknownInteraction)
    assert all(r.preference == "bullet points, brief" for r in results[:3])
    alice = agent.store.reward_state(agent.store.user_id("default", "alice"))
    assert alice["n"] == steps_before + 2
    assert agent.store.reward_state(agent.store.user_id("default", "bob"))["n"] == 1
    again = agent.process_edits(ids)
    assert all(r.already_learned for r in again) and [r.preference_id for r in again] == \
        [r.preference_id for r in results[:3]]
    assert agent.store.counts()["preferences"] == 3 and agent.store.counts()["pairs"] == 6
    assert job_counts(agent.store) == {"done": 3}


def test_a_batch_whose_write_loses_a_race_is_written_again_without_inferring_again(agent, monkeypatch, caplog):
    """A deadlock or serialization failure rolls the step's transaction back: the write is made again (on the
    states as they are then), the inferences kept; any other error, or a race lost every time, still raises."""
    ids = []
    for user, ctx in (("alice", BIKES), ("bob", BAKING), ("alice", BIKES2)):
        r = agent.generate(user, ctx)
        agent.submit_edit(r.interaction_id, "- kept " + ctx[:12])
        ids.append(r.interaction_id)

    class Deadlock(Exception):
        sqlstate = "40P01"  # what psycopg's DeadlockDetected carries

    real, tries = agent.store.complete_learnings, []

    def racing(lose: int, error: Exception):
        def complete_learnings(writes):
            tries.append(len(writes))
            if len(tries) <= lose:
                raise error
            return real(writes)
        return complete_learnings

    monkeypatch.setattr(agent.store, "complete_learnings", racing(3, Deadlock("deadlock detected")))
    with pytest.raises(Deadlock):  # lost three times: the runner's one-at-a-time rule takes over
        agent.process_edits(ids)
    assert tries == [3, 3, 3] and agent.store.counts()["preferences"] == 0
    tries.clear()
    monkeypatch.setattr(agent.store, "complete_learnings", racing(1, ValueError("a bug")))
    with pytest.raises(ValueError):
        agent.process_edits(ids)
    assert tries == [3]
    tries.clear()
    monkeypatch.setattr(agent.store, "complete_learnings", racing(1, Deadlock("deadlock detected")))
    calls = len(agent.generator.inner.calls)
    with caplog.at_level(logging.WARNING, logger="redline.agent.learning"):
        results = agent.process_edits(ids)
    assert tries == [3, 3] and "lost a race (Deadlock: deadlock detected); writing it again" in caplog.text
    assert len(agent.generator.inner.calls) == calls + 1  # the batch's one inference call, not one per retry
    assert [r.already_learned for r in results] == [False] * 3 and all(r.preference_id for r in results)
    assert agent.store.counts()["preferences"] == 3 and job_counts(agent.store) == {"done": 3}


def test_a_generator_outage_puts_the_whole_batch_back(agent):
    ids = []
    for ctx in (BIKES, BIKES2, BAKING):
        r = agent.generate("alice", ctx)
        agent.submit_edit(r.interaction_id, "- kept " + ctx[:12])
        ids.append(r.interaction_id)
    agent.generator.down = True
    outcomes = agent.run_jobs()
    assert outcomes[-1].outcome == "retry" and job_counts(agent.store) == {"pending": 3}
    assert agent.store.counts()["preferences"] == 0
    agent.generator.down = False
    assert agent.process_pending() == 3 and job_counts(agent.store) == {"done": 3}


def test_backoff_grows_fourfold_from_30_seconds_to_its_cap_with_jitter():
    import random
    from datetime import datetime

    from redline.agent.jobs import Backoff

    exact = Backoff(jitter=0.0, cap=21600)
    assert [exact.delay(n) for n in range(1, 9)] == [30, 120, 480, 1920, 7680, 21600, 21600, 21600]
    assert Backoff(jitter=0.0, cap=100).delay(1) == 30 and Backoff(jitter=0.0, cap=10).delay(1) == 10
    assert Backoff(jitter=0.0).delay(10_000) == 21600  # no overflow however many attempts
    jittered = Backoff(rng=random.Random(7))
    delays = [jittered.delay(2) for _ in range(500)]
    assert 96 <= min(delays) < 100 and 140 < max(delays) <= 144  # 120 s ± 20%, spread over the whole range
    assert all(d <= 21600 for d in (jittered.delay(7) for _ in range(100)))  # the cap holds after the jitter
    assert Backoff(jitter=0.0, clock=lambda: 1_000_000_000.0).until(1) == "2001-09-09T01:47:10.000+00:00"
    assert datetime.fromisoformat(Backoff(clock=lambda: 0.0).until(3)).timestamp() == pytest.approx(480, rel=0.2)


def test_a_watched_generator_records_its_health_throttled_and_passes_everything_else_through(agent):
    from redline.agent.health import WatchedGenerator, generator_failed

    inner = ScriptedGenerator()
    writes = []

    class Recording:
        def ok(self, name):
            writes.append(("ok", name))

        def failed(self, name, error):
            writes.append(("failed", name, error))

    watched = WatchedGenerator(inner, Recording(), write_every=3600)
    params = agent.pipeline.params(GenerateOptions())
    for _ in range(3):
        watched.generate([[{"role": "user", "content": "hi"}]], params)
    watched.down = True  # a switch of the wrapped generator
    assert inner.down and watched.model_name == "scripted" and len(watched.calls) == 3
    for _ in range(2):
        with pytest.raises(GeneratorUnavailable) as caught:
            watched.generate([[{"role": "user", "content": "hi"}]], params)
        assert generator_failed(caught.value)
    assert not watched.probe()
    inner.down = False
    assert watched.probe()
    # each state once while it lasts (within write_every), a change of state at once
    assert writes == [("ok", "generator"), ("failed", "generator", "GeneratorUnavailable: scripted generator is down"),
                      ("ok", "generator")]
    assert watched.last_ok > watched.last_failure > 0
    assert not generator_failed(RuntimeError("not through the generator"))


class _RefusingEmbedder:
    """An embedder that fails the test if it is ever called."""

    def encode(self, texts):
        raise AssertionError(f"the learner embedded {len(texts)} texts")


def test_learning_embeds_nothing(make_agent, tmp_path):
    """README ("Embedding"): learning reads each interaction's stored context vector, so a learner whose embedder
    refuses every call still learns the edit, and its preference is retrieved for a similar context."""
    from redline.agent import Agent, Settings

    api = make_agent(ScriptedGenerator(responder), k=1)
    gen = api.generate("alice", BIKES)
    api.submit_edit(gen.interaction_id, "- mine")
    learner = Agent(Settings(data_dir=tmp_path / "data", max_tokens=48, k=1), embedder=_RefusingEmbedder(),
                    generator=ScriptedGenerator(responder))
    try:
        assert learner.process_pending() == 1
    finally:
        learner.close()
    assert api.generate("alice", BIKES2).preference == "bullet points, brief"


def test_only_the_neighbours_near_the_nearest_vote(make_agent, tmp_path):
    """Two contexts of another kind outvote the one like this context when all k vote (``vote_margin=2``); with
    the default margin their similarity, far below the nearest one's, keeps them out of the vote."""
    story = "council adds forty miles of protected bike lanes after crashes on the ring road"
    others = ("quarterly revenue rose on strong cloud demand analysts said", "the striker scored twice in the derby")

    def teach(agent):
        for ctx, pref in ((story, "bullet points"), (others[0], "with emojis"), (others[1], "with emojis")):
            r = agent.generate("alice", ctx)
            learned = agent.learn(r.interaction_id, "- edited")
            agent.update_preference("alice", learned.preference_id, pref)

    nearest_alone, all_vote = (make_agent(ScriptedGenerator(responder), k=3, data_dir=tmp_path / name, **m)
                               for name, m in (("margin", {}), ("all", {"vote_margin": 2.0})))
    for agent in (nearest_alone, all_vote):
        teach(agent)
    again = story + " again"
    outvoted = all_vote.generate("alice", again)
    assert len(outvoted.neighbours) == 3 and outvoted.preference == "with emojis"
    kept = nearest_alone.generate("alice", again)
    sims = [n["similarity"] for n in kept.neighbours]
    assert sims[0] - max(sims[1:]) > 0.1  # the premise: the other two are far below the nearest
    assert kept.preference == "bullet points"


def following(*answers):
    """A ScriptedGenerator responder whose inferences are ``answers`` in turn and whose draft follows the
    preference 'Hi team,' ... it is given."""
    answers = iter(answers)

    def respond(prompt, i):
        content = prompt[-1]["content"]
        if "What the edit changed" in content:
            return next(answers)
        if "Hi team," in content:
            return "Hi team,\n1. Lanes grow by forty miles!\n2. Work takes five years."
        return "The council will add forty miles of bike lanes."
    return respond


def test_an_edit_also_teaches_what_its_kept_text_still_does_of_the_draft_s_preference(make_agent):
    """The evidence of an edit of a draft that already did part of what the user wants names only the rest; the
    parts the kept text still does are learned with it, and the ones the user undid are not."""
    respond = following("start with the line 'Hi team,'; numbered points, one per line", "asks questions",
                        "no exclamation marks")
    agent = make_agent(ScriptedGenerator(respond), k=1)
    first = agent.generate("alice", BIKES)
    agent.learn(first.interaction_id, "Hi team,\n1. Forty more miles of lanes.\n2. Five years of work.")
    second = agent.generate("alice", BIKES2)
    assert second.preference == "start with the line 'Hi team,'; numbered points, one per line"
    learned = agent.learn(second.interaction_id, "Hi team,\n1. Lanes grow by forty miles!\n2. Ready in five years?")
    assert learned.preference == "start with the line 'Hi team,'; numbered points, one per line; asks questions"
    # undone: the list became prose, so only the greeting line stands beside what the edit said
    third = agent.generate("alice", BIKES + " Downtown first.")
    undone = agent.learn(third.interaction_id, "Hi team,\nLanes grow by forty miles, over five years.")
    assert undone.preference.startswith("start with the line 'Hi team,'")
    assert "numbered" not in undone.preference and undone.preference.endswith("no exclamation marks")


@pytest.mark.parametrize("keep_min_similarity,expected", [
    (None, "asks questions"),
    (0.0, "start with the line 'Hi team,'; numbered points, one per line; asks questions"),
])
def test_what_a_user_leaves_alone_of_another_kind_of_text_s_preference_is_not_taught(make_agent, keep_min_similarity,
                                                                                      expected):
    """A preference from an unlike context (below ``keep_min_similarity``) is no evidence of the user's taste for
    being left alone: only the edit's own preference is learned."""
    settings = {} if keep_min_similarity is None else {"keep_min_similarity": keep_min_similarity}
    agent = make_agent(ScriptedGenerator(following("start with the line 'Hi team,'; numbered points, one per line",
                                                   "asks questions")), k=1, **settings)
    first = agent.generate("alice", BIKES)
    agent.learn(first.interaction_id, "Hi team,\n1. Forty more miles of lanes.\n2. Five years of work.")
    unlike = agent.generate("alice", BAKING)
    assert unlike.preference and unlike.neighbours[0]["similarity"] < 0.25
    learned = agent.learn(unlike.interaction_id, "Hi team,\n1. Lanes grow by forty miles!\n2. Ready in five years?")
    assert learned.preference == expected
