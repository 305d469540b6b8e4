"""policies/ driven by the agent on the real embedded models (MiniLM, SmolLM2), and ``redline rewards``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from redline.agent import GenerateOptions

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]

CONTEXTS = [
    "The city council voted to extend library hours on weekends after a petition gathered 3,000 signatures.",
    "A local bakery started donating unsold bread to the shelter every evening, cutting its waste by half.",
    "The school district will replace its old buses with electric ones over the next four years.",
]


class Recording:
    """Wraps a generator and records each call: (number of prompts, n), the prompts and the parameters."""

    def __init__(self, inner):
        self.inner = inner
        self.model_name = inner.model_name
        self.calls, self.prompts, self.params = [], [], []

    def generate(self, prompts, params):
        self.calls.append((len(prompts), params.n))
        self.prompts.append(list(prompts))
        self.params.append(params)
        return self.inner.generate(prompts, params)

    def clear(self):
        self.calls.clear()
        self.prompts.clear()
        self.params.clear()

    def candidate_calls(self, context):
        """The calls whose prompts write about ``context`` (CIPHER's aggregation call does not)."""
        return [c for c, prompts in zip(self.calls, self.prompts) if any(context in p[-1]["content"] for p in prompts)]


@pytest.fixture
def trained_agent(make_agent, smollm):
    """Edits learned and heads trained with a scripted generator (fast); then SmolLM2 writes the candidates."""
    from doubles import ScriptedGenerator

    said = iter(range(10**6))
    agent = make_agent(ScriptedGenerator(lambda prompt, i: f"plain words number {next(said)}"), max_tokens=8,
                       reward_retrain_every=2, reward_heads=2, seed=1,
                       reward_min_pairs=1)  # alice's 3 pairs are enough: alternatives from the first generation
    for i, ctx in enumerate(CONTEXTS):
        r = agent.generate("alice", ctx, "summarize")
        agent.learn(r.interaction_id, f"In short: {ctx.split(',')[0]}.")
    assert agent.rewards.current() is None
    agent.train_rewards()  # 3 new pairs >= 2: retrain, publish, replay the routing of every user
    assert agent.rewards.current() is not None
    gen = Recording(smollm)
    agent._generator = gen
    return agent, gen


NEW = "Volunteers planted two hundred trees along the river on Saturday."


def test_best_of_n_and_rps_draft_the_greedy_target_then_one_batched_call_of_alternatives(trained_agent):
    agent, gen = trained_agent
    routing = agent.preferences("alice")["routing"]
    assert routing["heads"] == 2 and routing["steps"] == 3
    for strategy in ("best_of_n", "rps"):
        gen.clear()
        result = agent.generate("alice", NEW, "summarize", GenerateOptions(strategy=strategy, n=3, temperature=0))
        assert gen.candidate_calls(NEW) == [(1, 1)], gen.calls  # the greedy target draft, at the request's t=0
        assert gen.calls[-2] == (1, 1) and gen.params[-2].temperature == 0.0
        assert gen.params[-1].temperature == 0.8  # then ONE call for every alternative, sampled
        prompts_, n = gen.calls[-1]
        assert (prompts_, n) == (1, 2) if strategy == "best_of_n" else prompts_ * n >= 2
        assert all(p[-1]["content"].startswith("Here is a draft") for p in gen.prompts[-1])  # revisions
        assert len(result.candidates) == 3 and result.candidates[0]["kind"] == "greedy"
        assert len({c["text"] for c in result.candidates}) >= 2  # candidates that differ, also at temperature 0
        assert all(isinstance(c["score"], float) and c["source"] for c in result.candidates)
        assert sum(c["chosen"] for c in result.candidates) == 1
        chosen = next(c for c in result.candidates if c["chosen"])
        assert result.text == chosen["text"] and chosen["reward"] == max(c["reward"] for c in result.candidates)
        assert result.selection["differs_from_greedy"] == (chosen["text"] != result.candidates[0]["text"])
        stored = agent.store.interaction(result.interaction_id)
        assert stored["candidates"] == result.candidates and stored["strategy"] == strategy
        assert stored["preference_used"] == chosen["preference"] == result.preference
        if strategy == "rps":
            assert any(c["source"].startswith("neighbour:") for c in result.candidates)


def test_routing_state_updates_after_an_edit_and_cold_start(trained_agent):
    agent, gen = trained_agent
    from doubles import ScriptedGenerator

    agent._generator = ScriptedGenerator(lambda prompt, i: f"a short plain summary {i}")
    before = agent.preferences("alice")["routing"]
    r = agent.generate("alice", CONTEXTS[0], "summarize", GenerateOptions(strategy="best_of_n", n=2))
    agent.learn(r.interaction_id, "Weekend library hours are longer now, thanks to a petition.")
    after = agent.preferences("alice")["routing"]
    assert after["steps"] == before["steps"] + 1 and sum(after["weights"]) == pytest.approx(1.0, abs=1e-3)
    # a user with no edits: the target prompt only, no scoring
    agent._generator = gen
    gen.clear()
    cold = agent.generate("bob", CONTEXTS[1], "summarize", GenerateOptions(strategy="rps", n=4))
    assert len(cold.candidates) == 1 and cold.candidates[0]["score"] is None
    assert gen.candidate_calls(CONTEXTS[1]) == [(1, 1)]
    agent.delete_user("alice")
    assert agent.preferences("bob")["routing"] is None


def run_cli(*args, data_dir):
    """The CLI in process (the models load once per session); returns (exit code, stdout, stderr)."""
    from click.testing import CliRunner

    from redline.cli import cli

    result = CliRunner().invoke(cli, ["--data-dir", str(data_dir), *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_rewards_eval_json_on_vendored_data(tmp_path):
    from redline.evals.lamp import LAMP_DATA

    out = tmp_path / "eval.json"
    proc = run_cli("rewards", "eval", "--data", str(LAMP_DATA), "--limit", "10", "--folds", "2",
                   "--json", "--out", str(out), data_dir=tmp_path / "d")
    code, stdout, stderr = proc
    assert code == 0, stderr
    figures = json.loads(stdout)
    assert figures["writers"] == 3  # the vendored LAMP writers (evals/data/lamp_W*_edits.json)
    for method in ("single_bt", "mixture", "routed"):
        assert set(figures[method]) == {"vs_draft", "vs_other_writer"}
        assert 0.0 <= figures[method]["vs_draft"] <= 1.0
    assert json.loads(out.read_text())["writers"] == 3 and out.with_suffix(".md").exists()


def test_rewards_train_errors_and_pairs_import(tmp_path):
    code, _, stderr = run_cli("rewards", "train", data_dir=tmp_path / "d")
    assert code == 1
    assert stderr.strip() == "Error: no preference pairs to train on: learn some edits or pass --pairs"
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("\n".join(json.dumps({"context": c, "chosen": c.split(",")[0] + ".", "rejected": c,
                                           "user": "u1"}) for c in CONTEXTS))
    code, stdout, stderr = run_cli("rewards", "train", "--pairs", str(pairs), "--heads", "2", "--json",
                                   data_dir=tmp_path / "d")
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["imported"] == 3 and summary["pairs"] == 3 and summary["users_routed"] == 1
