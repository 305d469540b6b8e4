"""`redline generate --strategy/--n` and the routing line of `redline preferences`, in process with the hash
embedder and a scripted generator (reward heads trained on scripted edits; fast)."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

import redline.cli._common as cli_common
import redline.cli.commands as cli_commands
from redline.cli import cli
from redline.testing import ScriptedGenerator

CONTEXTS = [
    "The city council voted to extend library hours on weekends after a petition gathered 3,000 signatures.",
    "A local bakery started donating unsold bread to the shelter every evening, cutting its waste by half.",
    "The school district will replace its old buses with electric ones over the next four years.",
]
NEW = "The city council approved longer library opening hours on Sundays after residents asked for them."


@pytest.fixture
def trained(make_agent, monkeypatch, tmp_path):
    """An agent whose heads are trained and whose user alice has a routing state; the CLI uses it."""
    said = iter(range(10**6))
    gen = ScriptedGenerator(lambda prompt, i: f"plain words number {next(said)}")
    agent = make_agent(gen, max_tokens=8, reward_retrain_every=2, reward_heads=2, seed=1, k=2)
    for ctx in CONTEXTS:
        r = agent.generate("alice", ctx, "summarize")
        agent.learn(r.interaction_id, f"In short: {ctx.split(',')[0]}.")
    agent.maintenance()
    assert agent.rewards.current() is not None and agent.store.router_state(1) is not None
    monkeypatch.setattr(cli_common, "Agent", lambda settings: agent)
    context = tmp_path / "context.txt"
    context.write_text(NEW)
    return agent, gen, str(context)


def run(*args):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_generate_strategy_and_n_reach_the_agent_and_candidates_are_listed(trained):
    agent, gen, context = trained
    for strategy in ("best_of_n", "rps"):
        out = run("generate", "--user", "alice", "--context-file", context, "--strategy", strategy, "--n", "3")
        iid = out.split("interaction: ")[1].split()[0]
        stored = agent.store.interaction(iid)
        assert stored["strategy"] == strategy and len(stored["candidates"]) == 3
        assert f"strategy: {strategy}, 3 candidates" in out
        listed = [line for line in out.splitlines() if line[2:5] in ("1. ", "2. ", "3. ")]
        assert len(listed) == 3 and sum(line.startswith("*") for line in listed) == 1
        for line, c in zip(listed, stored["candidates"]):
            assert f"{c['score']:.3f}" in line and f"[{c['source']}]" in line
        chosen = next(c for c in stored["candidates"] if c["chosen"])
        assert out.startswith(chosen["text"])
        prompts, params = gen.calls[-1]  # the one batched candidate call
        assert (len(prompts), params.n) == ((1, 3) if strategy == "best_of_n" else (3, 1))


def test_generate_json_includes_the_candidates(trained):
    _, _, context = trained
    data = json.loads(run("--json", "generate", "--user", "alice", "--context-file", context,
                          "--strategy", "best_of_n", "--n", "2"))
    assert data["strategy"] == "best_of_n" and len(data["candidates"]) == 2
    assert all(isinstance(c["score"], float) and "source" in c and "preference" in c for c in data["candidates"])
    assert sum(c["chosen"] for c in data["candidates"]) == 1


def test_generate_greedy_and_cold_start_print_no_candidate_list(trained):
    _, _, context = trained
    greedy = run("generate", "--user", "alice", "--context-file", context)
    assert "candidates" not in greedy and "strategy:" not in greedy
    cold = run("generate", "--user", "bob", "--context-file", context, "--strategy", "rps")
    assert "strategy: rps fell back to one candidate" in cold and "candidates (score" not in cold


def test_generate_rejects_unknown_strategy_and_bad_n(trained):
    _, _, context = trained
    for args, message in ((["--strategy", "beam"], "'beam' is not one of"), (["--n", "0"], "0 is not in the range")):
        result = CliRunner().invoke(cli, ["generate", "--user", "alice", "--context-file", context, *args])
        assert result.exit_code == 2 and message in result.output, result.output


def test_preferences_shows_the_routing_state(trained):
    agent, _, _ = trained
    routing = agent.preferences("alice")["routing"]
    out = run("preferences", "--user", "alice")
    line = next(line for line in out.splitlines() if line.startswith("routing:"))
    lean = "no lean yet across 2" if routing["entropy"] >= 0.995 else f"reward head {routing['top_head']} of 2"
    assert lean in line and f"{routing['steps']} steps" in line
    assert " ".join(f"{w:.2f}" for w in routing["weights"]) in line
    assert json.loads(run("--json", "preferences", "--user", "alice"))["routing"] == routing
    run("generate", "--user", "bob", "--context-file", trained[2])
    assert "routing:" not in run("preferences", "--user", "bob")  # no learned edit: no routing state


def test_routing_line_names_the_head_the_user_leans_on():
    leaning = {"weights": [0.1, 0.7, 0.2], "steps": 4, "heads": 3, "top_head": 1, "entropy": 0.73}
    assert cli_commands._routing_text(leaning) == ("routing: leans on reward head 1 of 3 (weights 0.10 0.70 0.20; "
                                              "entropy 0.73, 1 = no lean; 4 steps)")
    even = {"weights": [0.5, 0.5], "steps": 3, "heads": 2, "top_head": 0, "entropy": 1.0}
    assert cli_commands._routing_text(even).startswith("routing: no lean yet across 2 reward heads")


def test_json_is_accepted_before_and_after_the_command(trained):
    _, _, context = trained
    assert json.loads(run("--json", "preferences", "--user", "alice")) == json.loads(
        run("preferences", "--user", "alice", "--json"))
    assert json.loads(run("generate", "--user", "alice", "--context-file", context, "--json"))["interaction_id"]


def test_every_command_takes_json_after_its_name():
    def leaves(command, path):
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from leaves(sub, path + [name])
        else:
            yield path, command

    for path, command in leaves(cli, []):
        assert any("--json" in p.opts for p in command.params), " ".join(path)
