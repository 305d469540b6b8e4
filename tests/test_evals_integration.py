"""``redline eval`` end to end on the real embedded models (MiniLM, SmolLM2), through the CLI."""

from __future__ import annotations

import json

import pytest

from redline.agent import edit_cost

pytestmark = pytest.mark.integration


def test_eval_cli_three_rounds_two_methods(tmp_path):
    from click.testing import CliRunner

    from redline.cli import cli

    out = tmp_path / "out"
    args = ["--data-dir", str(tmp_path / "data"), "--generator-model", "smollm2", "--max-tokens", "16",
            "eval", "--task", "summarize", "--methods", "no-learning,cipher-1", "--rounds", "3", "--seeds", "0",
            "--workers", "2", "--context-chars", "400", "--out", str(out)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "| cipher-1 |" in res.output and "| no-learning |" in res.output
    for name in ("summary.json", "report.md", "cumulative_cost.png", "cost_per_source.png",
                 "logs/no-learning-s0.jsonl", "logs/cipher-1-s0.jsonl", "generator-cache.sqlite"):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    for method in ("no-learning", "cipher-1"):
        rows = [json.loads(x) for x in (out / "logs" / f"{method}-s0.jsonl").read_text().splitlines()]
        assert len(rows) == 3
        for row in rows:  # the logged cost is the word edit distance between the logged draft and edit
            assert row["cost"] == edit_cost(row["draft"], row["edited"])
            assert row["cost"] == 0 or not row["satisfied"]
        assert summary["methods"][method]["cumulative_cost_mean"] == sum(r["cost"] for r in rows)
        assert summary["methods"][method]["tokens_out"] > 0
    # the same documents in the same order for both methods
    docs = [[json.loads(x)["doc_id"] for x in (out / "logs" / f"{m}-s0.jsonl").read_text().splitlines()]
            for m in ("no-learning", "cipher-1")]
    assert docs[0] == docs[1]
    # a rerun is served from the generator cache and reproduces the costs
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    rerun = json.loads((out / "summary.json").read_text())
    assert {m: v["cumulative_cost_mean"] for m, v in rerun["methods"].items()} == \
           {m: v["cumulative_cost_mean"] for m, v in summary["methods"].items()}


def test_eval_cli_redline_selects_with_trained_heads(tmp_path, monkeypatch):
    """redline at temperature 0 on SmolLM2: heads trained after the first edit (--retrain-every 1), later
    rounds ask for several candidates (greedy copies, which transformers cannot sample) and the reward picks
    (REDLINE_REWARD_MIN_PAIRS=1: one learned pair is evidence enough to explore)."""
    from click.testing import CliRunner

    from redline.cli import cli
    monkeypatch.setenv("REDLINE_REWARD_MIN_PAIRS", "1")
    out = tmp_path / "out"
    args = ["--data-dir", str(tmp_path / "data"), "--generator-model", "smollm2", "--max-tokens", "8",
            "eval", "--task", "email", "--methods", "redline", "--rounds", "3", "--seeds", "0", "--workers", "1",
            "--context-chars", "300", "--retrain-every", "1", "--out", str(out)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in (out / "logs" / "redline-s0.jsonl").read_text().splitlines()]
    assert rows[0]["selection"] == "cold-start" and rows[0]["heads_trained"]
    assert [r["selection"] for r in rows[1:]] == ["reward", "reward"] and rows[1]["candidates"] > 1
    assert "| redline | seed 0: round 2 of 3 |" in res.output
