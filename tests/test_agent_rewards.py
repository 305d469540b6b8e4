"""The reward in the agent (fast: scripted generator, hash embedder): each learned edit stores its pair's features
and the user's state in one step; retraining reads stored numbers; candidates differ at temperature 0 and are chosen
relative to the greedy draft, differently for users who edit differently; hard delete retrains without the user."""

from __future__ import annotations

import json

import numpy as np
import pytest
from stores import job_counts

from redline.agent import GenerateOptions
from redline.policies import FEATURES_VERSION, EditFeatures

from doubles import ScriptedGenerator

SENTENCES = ("It matters to many people in town", "Officials said more would follow soon",
             "Residents reacted with a mix of hope and doubt")
CONTEXTS = [f"Story {i}: the council voted on plan number {i} after a long debate about the budget" for i in range(12)]


def respond(prompt, i):
    """Drafts of four sentences; revision ``i`` of a draft keeps its first i + 1 sentences."""
    last = prompt[-1]["content"]
    if last.startswith("Here is a draft"):
        draft = last.split("\n\n")[1]
        return ". ".join(draft.split(". ")[: i + 1]).rstrip(".") + "."
    if last.startswith(("A user", "Here are preferences")):
        return "short and plain"
    context = last.split("Text:\n")[-1].split("\n\n")[0]
    return ". ".join([context, *SENTENCES]) + "."


def keep(text: str, sentences: int) -> str:
    return ". ".join(text.split(". ")[:sentences]).rstrip(".") + "."


@pytest.fixture
def agent(make_agent):
    # the edit rules would make the cuts before the user does; the selection as such: from the user's first pair,
    # any better score (the cold-start gates have their own test)
    return make_agent(ScriptedGenerator(respond), reward_retrain_every=4, reward_heads=2, k=2, temperature=0.0,
                      rules=False, reward_min_pairs=1, reward_min_confidence=0.5)


def teach(agent, user: str, sentences: int, contexts=CONTEXTS[:6]) -> None:
    """The user edits every greedy draft down to its first ``sentences`` sentences; train_rewards after each edit."""
    for context in contexts:
        r = agent.generate(user, context)
        agent.learn(r.interaction_id, keep(r.text, sentences))
        agent.train_rewards()


def test_learning_stores_the_pair_features_and_the_state_in_one_step(agent):
    r = agent.generate("alice", CONTEXTS[0])
    agent.learn(r.interaction_id, keep(r.text, 1))
    row = agent.store._sql.db.execute("SELECT features, version FROM pair_features").fetchone()
    expected = EditFeatures().transform([keep(r.text, 1)], r.text)[0]
    np.testing.assert_array_equal(np.frombuffer(row[0], dtype=np.float64), expected)
    assert row[1] == FEATURES_VERSION
    assert agent.store.reward_state(1) is None  # no reward trained yet: the first retraining replays the state
    teach(agent, "alice", 1, CONTEXTS[1:4])
    checkpoint, model = agent.rewards.current_named()
    state = agent.store.reward_state(1)
    assert state["checkpoint"] == checkpoint and state["n"] == 4
    np.testing.assert_allclose(state["sum"], agent.store.pair_features(FEATURES_VERSION)["features"].sum(axis=0))
    r = agent.generate("alice", CONTEXTS[4])
    agent.learn(r.interaction_id, keep(r.text, 1))  # one online step under the published reward
    after = agent.store.reward_state(1)
    assert after["n"] == 5 and after["checkpoint"] == checkpoint
    replayed = model.replay(agent.store.pair_features(FEATURES_VERSION)["features"])
    np.testing.assert_allclose(after["log_weights"], replayed["log_weights"], rtol=1e-12)


def test_retraining_reads_stored_numbers_not_texts(agent):
    teach(agent, "alice", 1, CONTEXTS[:5])
    first = agent.train_rewards(force=True)
    heads = agent.rewards.current().heads_.copy()
    agent.store._sql.db.execute("UPDATE pairs SET context = 'x', chosen = 'x', rejected = 'x'")  # texts gone
    again = agent.train_rewards(force=True)
    np.testing.assert_array_equal(agent.rewards.current().heads_, heads)
    assert again["pairs"] == first["pairs"] == 5 and again["features_backfilled"] == 0
    assert set(again) >= {"checkpoint", "seconds", "read_seconds", "users_routed", "reason"}


def test_pairs_of_an_older_redline_get_their_features_once(agent):
    agent.store.add_pairs([{"user_id": agent.store.user_id("default", "old"), "context": c, "chosen": "Short.",
                            "rejected": c + ". " + ". ".join(SENTENCES) + "."} for c in CONTEXTS[:3]])
    assert len(agent.store.pairs_without_features(FEATURES_VERSION)) == 3
    first = agent.train_rewards(force=True)
    assert first["features_backfilled"] == 3 and first["pairs"] == 3 and first["users_routed"] == 1
    assert agent.store.pairs_without_features(FEATURES_VERSION) == []
    assert agent.train_rewards(force=True)["features_backfilled"] == 0


def test_a_checkpoint_of_other_features_is_retrained_on_recomputed_ones(agent, monkeypatch):
    from redline.agent import learning, reward_training

    teach(agent, "alice", 1, CONTEXTS[:3])
    trained = agent.train_rewards(force=True)
    assert agent.rewards.current_info()["features_version"] == FEATURES_VERSION
    assert agent.train_rewards() is None  # nothing new: nothing due
    for module in (learning, reward_training):  # an upgrade redefined a feature
        monkeypatch.setattr(module, "FEATURES_VERSION", FEATURES_VERSION + 1)
    summary = agent.train_rewards()
    assert summary["reason"] == "features changed" and summary["features_backfilled"] == trained["pairs"] == 3
    assert agent.rewards.current_info()["features_version"] == FEATURES_VERSION + 1
    assert agent.train_rewards() is None


def test_an_older_checkpoint_and_embedding_cache_are_replaced(make_agent, tmp_path):
    rewards = tmp_path / "data" / "rewards"
    (rewards / "ckpt-old").mkdir(parents=True)
    (rewards / "ckpt-old" / "config.json").write_text(json.dumps({"format": "redline.mixture_reward"}))
    (rewards / "CURRENT").write_text(json.dumps({"name": "ckpt-old", "last_pair_id": 3, "pairs": 3}))
    np.savez(rewards / "embeddings.npz", keys=np.array(["k"]), vectors=np.ones((1, 4), np.float32))
    agent = make_agent(ScriptedGenerator(respond), reward_retrain_every=50, reward_heads=2)
    assert not (rewards / "embeddings.npz").exists()  # text embeddings a hard delete could not reach
    assert agent.rewards.current() is None
    r = agent.generate("alice", CONTEXTS[0])
    agent.learn(r.interaction_id, keep(r.text, 1))
    assert not (rewards / "ckpt-old").exists() and not (rewards / "CURRENT").exists()  # checkpoints live in the store
    assert agent.train_rewards()["reason"] == "pairs deleted"  # a retraining was queued: no wait for 50 new pairs
    assert agent.rewards.current() is not None


def reward_state_rows(agent) -> list[tuple]:
    return agent.store._sql.db.execute("SELECT * FROM router_states ORDER BY user_id").fetchall()


def test_a_stale_state_is_replayed_from_the_stored_pairs(agent):
    teach(agent, "alice", 1, CONTEXTS[:4])
    checkpoint, model = agent.rewards.current_named()
    good = agent.store.reward_state(1)
    agent.store.put_reward_states({1: {**good, "checkpoint": "ckpt-older"}})
    assert agent.reward_trainer.state(1, model, checkpoint) == good
    agent.store.put_reward_states({1: {**good, "n": 2}})  # a learning step lost to a race
    assert agent.reward_trainer.state(1, model, checkpoint) == good
    assert agent.store.reward_state(1)["n"] == 2  # read, not stored: the next learning step stores its state


def test_reads_do_not_write_the_reward_state(agent):
    """Generating and reading a user's routing compute a stale state without storing it; learning stores it."""
    teach(agent, "alice", 1, CONTEXTS[:4])
    agent.import_pairs([{"context": CONTEXTS[5], "chosen": "Short.", "rejected": "A long draft. It goes on.",
                         "user": "alice"}])  # a pair the stored state has not seen: it is stale
    before = reward_state_rows(agent)
    r = agent.generate("alice", CONTEXTS[8], options=GenerateOptions(strategy="best_of_n", n=4))
    assert r.selection["user_pairs"] == 5  # the replayed state, counting the imported pair
    assert agent.preferences("alice")["routing"]["steps"] == 5
    assert reward_state_rows(agent) == before
    r = agent.generate("alice", CONTEXTS[9])
    agent.learn(r.interaction_id, keep(r.text, 1))  # the learning step stores the replayed state, one step on
    assert agent.store.reward_state(1)["n"] == 6


def test_candidates_differ_at_temperature_zero_and_the_choice_is_logged(agent):
    teach(agent, "alice", 1)
    gen = agent.generator
    gen.calls.clear()
    result = agent.generate("alice", CONTEXTS[8], options=GenerateOptions(strategy="best_of_n", n=4, temperature=0))
    (greedy_prompts, greedy_params), (more, params) = gen.calls[-2:]
    assert (len(greedy_prompts), greedy_params.n, greedy_params.temperature) == (1, 1, 0.0)
    assert (len(more), params.n, params.temperature) == (1, 3, agent.settings.reward_candidate_temperature)
    assert more[0][-1]["content"].startswith("Here is a draft") and result.candidates[0]["text"] in more[0][-1][
        "content"]
    assert [c["kind"] for c in result.candidates] == ["greedy", "revision", "revision", "revision"]
    assert len({c["text"] for c in result.candidates}) == 4
    sel = result.selection
    assert sel["mode"] == "revisions" and sel["distinct"] == 4 and sel["chosen"] == 1  # one sentence, as alice
    assert sel["differs_from_greedy"] and result.text == result.candidates[1]["text"]
    assert result.candidates[1]["reward"] == max(c["reward"] for c in result.candidates)
    again = agent.generate("alice", CONTEXTS[8], options=GenerateOptions(strategy="best_of_n", n=4, temperature=0))
    assert again.selection["seed"] == sel["seed"]  # a temperature-0 request is reproducible
    seeded = agent.generate("alice", CONTEXTS[8], options=GenerateOptions(strategy="rps", n=2, seed=7))
    assert seeded.selection["seed"] != sel["seed"] and gen.calls[-1][1].seed == seeded.selection["seed"]
    assert "score_ms" in seeded.timings_ms and "alternatives_ms" in seeded.timings_ms
    stored = agent.store.interaction(result.interaction_id)
    assert stored["candidates"] == result.candidates and stored["draft"] == result.text


def test_users_who_edit_differently_get_different_candidates(agent):
    teach(agent, "alice", 1)
    teach(agent, "bob", 3)
    agent.train_rewards(force=True)
    picks = {}
    for user in ("alice", "bob"):
        r = agent.generate(user, CONTEXTS[9], options=GenerateOptions(strategy="best_of_n", n=4))
        picks[user] = len(r.text.split(". "))
    assert picks == {"alice": 1, "bob": 3}


def test_samples_are_scored_on_form_only(make_agent):
    agent = make_agent(ScriptedGenerator(respond), reward_retrain_every=4, reward_heads=2, k=2, temperature=0.0,
                       reward_candidates="samples", rules=False, reward_min_pairs=1, reward_min_confidence=0.5)
    teach(agent, "alice", 1)
    agent.generator.calls.clear()
    r = agent.generate("alice", CONTEXTS[9], options=GenerateOptions(strategy="best_of_n", n=3))
    assert [c["kind"] for c in r.candidates] == ["greedy", "sample", "sample"]
    assert r.selection["mode"] == "samples" and r.selection["distinct"] == 1  # the script writes one draft per prompt
    assert not r.selection["differs_from_greedy"] and r.selection["chosen"] == 0  # ties go to the greedy draft
    assert agent.generator.calls[-1][0][0][-1]["content"].startswith("Summarize")


def test_no_price_for_exploring_before_the_reward_has_evidence(make_agent):
    """Alternatives only once the user's reward state holds reward_min_pairs of their pairs; and the reward replaces
    the greedy draft only by a candidate it prefers with a probability above reward_min_confidence."""
    agent = make_agent(ScriptedGenerator(respond), reward_retrain_every=2, reward_heads=2, k=2, temperature=0.0,
                       rules=False, reward_min_pairs=4, reward_min_confidence=0.5)
    teach(agent, "alice", 1, CONTEXTS[:3])
    assert agent.store.reward_state(1)["n"] == 3 and agent.rewards.current() is not None
    r = agent.generate("alice", CONTEXTS[9], options=GenerateOptions(strategy="rps", n=4))
    assert len(r.candidates) == 1 and r.selection is None  # 3 pairs < 4: the greedy draft alone
    teach(agent, "alice", 1, CONTEXTS[3:4])
    r = agent.generate("alice", CONTEXTS[9], options=GenerateOptions(strategy="best_of_n", n=4))
    assert len(r.candidates) == 4 and r.selection["user_pairs"] == 4
    assert r.selection["chosen"] == 1 and not r.selection["kept_greedy"]  # alice keeps one sentence
    confidence = r.selection["confidence"]
    assert 0.5 < confidence < 1
    agent.settings.reward_min_confidence = confidence + 1e-9
    r = agent.generate("alice", CONTEXTS[9], options=GenerateOptions(strategy="best_of_n", n=4))
    assert r.selection["chosen"] == 0 and r.selection["kept_greedy"] and r.selection["confidence"] == confidence
    assert not r.selection["differs_from_greedy"]
    assert [c["chosen"] for c in r.candidates] == [True, False, False, False] and r.text == r.candidates[0]["text"]


def test_cold_start_drafts_the_greedy_target_only(agent):
    r = agent.generate("carol", CONTEXTS[0], options=GenerateOptions(strategy="rps", n=4))
    assert len(r.candidates) == 1 and r.selection is None and r.candidates[0]["kind"] == "greedy"
    assert agent.preferences("carol")["routing"] is None


def test_preferences_describe_where_the_user_departs(agent):
    teach(agent, "alice", 1)
    teach(agent, "bob", 3)
    routing = agent.preferences("alice")["routing"]
    assert routing["steps"] == 6 and routing["heads"] == 2 and sum(routing["weights"]) == pytest.approx(1.0)
    assert routing["departures"] and {"feature", "user", "population"} == set(routing["departures"][0])


def test_hard_delete_retrains_without_the_user_and_keeps_no_checkpoint_trained_on_them(agent):
    teach(agent, "alice", 1)
    teach(agent, "bob", 3)
    before = agent.rewards.current_info()
    agent.delete_user("bob")
    assert agent.rewards.current_info() == before  # the delete queued the retraining; a learner runs it
    assert job_counts(agent.store, kind="retrain") == {"pending": 1}
    summary = agent.train_rewards()
    after = agent.rewards.current_info()
    assert summary["reason"] == "pairs deleted" and after["name"] != before["name"] and after["pairs"] == 6
    assert agent.rewards.names() == [after["name"]]  # every checkpoint trained on bob's pairs is gone
    assert job_counts(agent.store, kind="retrain") == {"done": 1}
    assert agent.train_rewards() is None  # nothing due: the deletion is already accounted for
    agent.delete_user("alice")  # the last pairs: no reward is left
    assert agent.train_rewards() == {"forgotten": True, "reason": "pairs deleted", "pairs": 0}
    assert agent.rewards.current() is None and agent.rewards.names() == []
    assert not list(agent.settings.rewards_dir.glob("ckpt-*"))  # and nothing on disk outside the store


def test_a_deletion_elsewhere_makes_a_retraining_due(agent):
    teach(agent, "alice", 1)
    teach(agent, "bob", 3)
    agent.store.delete_user(agent.store.user_id("default", "bob"))  # e.g. another replica's delete
    summary = agent.train_rewards()
    assert summary["reason"] == "pairs deleted" and summary["pairs"] == 6


def test_the_context_router_trains_on_the_stored_context_vectors(make_agent):
    agent = make_agent(ScriptedGenerator(respond), reward_retrain_every=4, reward_heads=2, k=2, temperature=0.0,
                       reward_router=True, rules=False, reward_min_pairs=1, reward_min_confidence=0.5)
    teach(agent, "alice", 1)
    teach(agent, "bob", 3)
    model = agent.rewards.current()
    assert model.router_weights_.shape[0] == 2 and model.router_weights_.shape[1] > 0
    assert agent.store.pair_features(FEATURES_VERSION, contexts=True)["contexts"].shape == (12, 64)
    r = agent.generate("alice", CONTEXTS[9], options=GenerateOptions(strategy="best_of_n", n=4))
    assert r.selection["chosen"] == 1


LONG = ("The council voted to close the Elm Street library branch in March, citing repair costs of two million "
        "dollars, falling visits since 2019, and a newer branch three miles away that opens longer hours on weekends "
        "and holds most of the same collection")


def test_an_alternative_that_holds_nothing_of_the_document_is_never_offered_to_the_reward(make_agent):
    def answers(prompt, i):  # the first revision is a line any document would fit, and the shortest of all
        if prompt[-1]["content"].startswith("Here is a draft") and i == 0:
            return "Here's the story."
        return respond(prompt, i)
    agent = make_agent(ScriptedGenerator(answers), reward_retrain_every=4, reward_heads=2, k=2, temperature=0.0,
                       rules=False, reward_min_pairs=1, reward_min_confidence=0.5)
    teach(agent, "alice", 1)  # alice cuts every draft to its first sentence: a reward for short texts
    r = agent.generate("alice", LONG, options=GenerateOptions(strategy="best_of_n", n=4, temperature=0))
    assert [c["kind"] for c in r.candidates] == ["greedy", "revision", "revision"]
    assert "Here's the story." not in [c["text"] for c in r.candidates]
    assert r.text.startswith("The council voted") and r.selection["chosen"] == 1  # the shortest with content


def test_alternatives_are_screened_only_against_a_greedy_draft_with_content(make_agent):
    def answers(prompt, i):  # every draft of the long document is a line that fits any document
        content = prompt[-1]["content"]
        if "Elm Street" in content or (content.startswith("Here is a draft") and "story" in content):
            return "Here's the story." if i == 0 else "Here's the story, in short."
        return respond(prompt, i)
    agent = make_agent(ScriptedGenerator(answers), reward_retrain_every=4, reward_heads=2, k=2, temperature=0.0,
                       rules=False, reward_min_pairs=1, reward_min_confidence=0.5)
    teach(agent, "alice", 1)
    r = agent.generate("alice", LONG, options=GenerateOptions(strategy="best_of_n", n=3, temperature=0))
    assert len(r.candidates) == 3  # nothing better to keep: the reward still chooses among all of them
