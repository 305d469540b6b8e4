"""`redline generate --strategy/--n` and the routing line of `redline preferences`, in process with the hash
embedder and a scripted generator (reward heads trained on scripted edits; fast)."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner
from stores import job_counts

import redline.cli._common as cli_common
import redline.cli.commands as cli_commands
from redline.cli import cli

from doubles import ScriptedGenerator

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
    agent = make_agent(gen, max_tokens=8, reward_retrain_every=2, reward_heads=2, seed=1, k=2, reward_min_pairs=1,
                       reward_min_confidence=0.5)
    for ctx in CONTEXTS:
        r = agent.generate("alice", ctx, "summarize")
        agent.learn(r.interaction_id, f"In short: {ctx.split(',')[0]}.")
    agent.train_rewards()
    assert agent.rewards.current() is not None and agent.store.reward_state(1) is not None
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
            assert f"{c['score']:.3f}" in line and f"[{c['kind']}, {c['source']}]" in line
        assert [c["kind"] for c in stored["candidates"]] == ["greedy", "revision", "revision"]
        chosen = next(c for c in stored["candidates"] if c["chosen"])
        assert out.startswith(chosen["text"])
        (greedy_prompts, greedy_params), (prompts, params) = gen.calls[-2:]  # the greedy draft, then the rest
        assert (len(greedy_prompts), greedy_params.n) == (1, 1)
        assert params.temperature == agent.settings.reward_candidate_temperature
        assert (len(prompts), params.n) == ((1, 2) if strategy == "best_of_n" else (2, 1))


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


# -- redline rules ----------------------------------------------------------------------------------------------

DRAFT = "We utilize the new plan for the city. It helps everyone in town."


@pytest.fixture
def ruled(make_agent, monkeypatch, tmp_path):
    """An agent whose user alice replaced 'utilize' with 'use' twice; the CLI uses it."""
    agent = make_agent(ScriptedGenerator(lambda prompt, i: DRAFT), k=2)
    for ctx in CONTEXTS[:2]:
        r = agent.generate("alice", ctx)
        agent.learn(r.interaction_id, r.text.replace("utilize", "use"))
    monkeypatch.setattr(cli_common, "Agent", lambda settings: agent)
    context = tmp_path / "context.txt"
    context.write_text(NEW)
    return agent, str(context)


def test_rules_are_listed_applied_and_switched_from_the_command_line(ruled, capsys):
    agent, context = ruled
    [rule] = agent.rules("alice")
    listed = run("rules", "list", "--user", "alice")
    assert listed.startswith("alice: 1 rules, 1 active")
    assert (f"#{rule['id']} [active] replace 'utilize' with 'use' — 2 supporting, 0 contradicting edits "
            "(precision 1.00)") in listed and "taught by: " in listed
    assert json.loads(run("rules", "list", "--user", "alice", "--json"))["rules"] == agent.rules("alice")
    out = run("generate", "--user", "alice", "--context-file", context)
    assert out.startswith(DRAFT.replace("utilize", "use")) and f"rules applied: #{rule['id']} replace" in out
    assert run("generate", "--user", "alice", "--context-file", context, "--no-rules").startswith(DRAFT)
    assert "edit rules (1 active of 1" in run("preferences", "--user", "alice")

    assert "[off (by user)]" in run("rules", "disable", str(rule["id"]), "--user", "alice")
    assert run("generate", "--user", "alice", "--context-file", context).startswith(DRAFT)
    assert "[on (by user)]" in run("rules", "enable", str(rule["id"]), "--user", "alice")
    assert "[active]" in run("rules", "auto", str(rule["id"]), "--user", "alice")
    edited = run("rules", "edit", str(rule["id"]), "--text", "employ", "--user", "alice")
    assert "replace 'utilize' with 'employ'" in edited and "rewritten by user" in edited
    assert run("rules", "delete", str(rule["id"]), "--user", "alice").strip() == f"deleted rule {rule['id']}"
    assert agent.rules("alice") == []

    for args, message in ((["rules", "disable", "99", "--user", "alice"], "Error: unknown rule id 99"),
                          (["rules", "delete", str(rule["id"]), "--user", "alice"],
                           f"Error: unknown rule id {rule['id']}"),
                          (["rules", "list", "--user", "ghost"], "Error: unknown user 'ghost'")):
        with pytest.raises(SystemExit) as exit_info:
            cli_commands.main(args)
        assert exit_info.value.code == 1 and capsys.readouterr().err.strip() == message


def test_a_bad_rule_text_is_one_line_on_stderr(ruled, capsys):
    agent, _ = ruled
    rule_id = str(agent.rules("alice")[0]["id"])
    for text, message in (("  ", "rule text must not be empty"),
                          ("x" * 201, "rule text is longer than 200 characters")):
        with pytest.raises(SystemExit) as exit_info:
            cli_commands.main(["rules", "edit", rule_id, "--text", text, "--user", "alice"])
        assert exit_info.value.code == 1 and capsys.readouterr().err.strip() == f"Error: {message}"
    assert agent.rules("alice")[0]["text"] == "use"


def test_learn_pending_failed_queues_the_parked_edits_again_and_learns_them(make_agent, monkeypatch):
    """A job parked after failing for a cause other than the generator waits for a retry on command."""
    from redline.agent.jobs import Backoff, JobRunner

    agent = make_agent(ScriptedGenerator(lambda prompt, i: "plain words"), max_tokens=8)
    monkeypatch.setattr(cli_common, "Agent", lambda settings: agent)
    iid = agent.generate("alice", CONTEXTS[0], "summarize").interaction_id
    agent.submit_edit(iid, "In short: the library.")
    real = agent.learner._read_step
    monkeypatch.setattr(agent.learner, "_read_step", lambda interaction_id: (_ for _ in ()).throw(RuntimeError("boom")))
    runner = JobRunner(agent.store.jobs, agent.process_edit, owner="test", max_attempts=1,
                       backoff=Backoff(clock=lambda: 0.0))
    assert runner.drain()[-1].outcome == "parked"
    monkeypatch.setattr(agent.learner, "_read_step", real)
    assert run("learn-pending") == "learned 0 pending edits\n"  # parked: not claimed
    assert job_counts(agent.store) == {"parked": 1}
    assert run("learn-pending", "--failed") == "queued 1 failed edits again; learned 1 pending edits\n"
    assert json.loads(run("learn-pending", "--failed", "--json")) == {"learned": 0, "requeued": 0}
    assert job_counts(agent.store) == {"done": 1}
