"""``redline rewards train|eval``: the shared reward — retrain on demand, evaluate on real writers' edits.

Only parses arguments and prints; the work is in ``Agent.train_rewards`` and ``redline.evals.lamp``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ._common import State, emit, json_option, pass_state

__all__ = ["rewards"]

@click.group("rewards")
def rewards():
    """The shared reward: retrain it from the pair log, or evaluate it on writers' real edits."""


@rewards.command("train")
@click.option("--pairs", "pairs_file", type=click.Path(dir_okay=False, path_type=Path),
              help="JSONL of pairs to import first: context, chosen, rejected, optional user.")
@click.option("--heads", type=click.IntRange(1, 64), help="Number of reward heads [default: setting reward_heads].")
@click.option("--seed", type=int, help="Training seed [default: setting reward_seed].")
@click.option("--tenant", default="default", show_default=True, help="Tenant of the users named in --pairs.")
@json_option
@pass_state
def train(state: State, pairs_file, heads, seed, tenant):
    """Import pairs (optional), retrain the shared reward on every stored pair and swap the checkpoint."""
    imported = 0
    if pairs_file is not None:
        if not pairs_file.is_file():
            raise click.ClickException(f"cannot read pairs file {pairs_file}: no such file")
        imported = state.agent.import_pairs_file(pairs_file, tenant=tenant)
    summary = state.agent.train_rewards(force=True, n_heads=heads, seed=seed)
    if summary is None:
        raise click.ClickException("no preference pairs to train on: learn some edits or pass --pairs")
    summary["imported"] = imported
    emit(summary, f"trained {summary['heads']} heads on {summary['pairs']} pairs "
                  f"(imported {imported}) in {summary['seconds']} s; checkpoint {summary['checkpoint']}; "
                  f"state replayed for {summary['users_routed']} users")


@rewards.command("eval")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of writer edit files in the LAMP format (JSON lists with preedit/postedit, one file per "
                   "writer, at least two writers) [default: the LAMP edits shipped in redline/evals/data].")
@click.option("--heads", type=click.IntRange(1, 64), default=4, show_default=True, help="Reward heads (K).")
@click.option("--folds", type=click.IntRange(2, 20), default=5, show_default=True,
              help="Cross-validation folds over paragraphs.")
@click.option("--tau", type=float, default=1.0, show_default=True, help="Routing (Hedge) temperature.")
@click.option("--router/--no-router", default=False, show_default=True,
              help="Also train the context router (embeds the instructions with the configured embedder).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for folds and training.")
@click.option("--limit", type=click.IntRange(1), help="Use only the first N records of each writer (quick runs).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Results file (JSON; a .md table is written beside it) [default: DATA_DIR/rewards/eval.json].")
@json_option
@pass_state
def eval_(state: State, data_dir, heads, folds, tau, router, seed, limit, out):
    """Held-out pairwise accuracy of single BT, the mixture and the routed reward on real writers' edits: each
    writer's edit against the draft and against other writers' edits of the same paragraph."""
    from redline.evals.lamp import LAMP_DATA, evaluate_lamp, format_table, load_writers

    if tau <= 0:
        raise click.ClickException("tau must be greater than 0")
    data_dir = data_dir or LAMP_DATA
    try:
        writers = load_writers(data_dir)
        if limit:
            writers = {w: rows[:limit] for w, rows in writers.items()}
        encode = None
        if router:
            from redline.evals.backends import load_embedder

            encode = load_embedder(state.settings).encode
        result = evaluate_lamp(writers, n_heads=heads, folds=folds, seed=seed, tau=tau, router=router,
                               encode=encode)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    result["setup"]["data"] = str(data_dir)
    table = format_table(result)
    out = out or state.settings.rewards_dir / "eval.json"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
        out.with_suffix(".md").write_text("```\n" + table + "\n```\n")
    except OSError as exc:
        raise click.ClickException(f"cannot write results file {out}: {exc.strerror or exc}") from exc
    emit(result, table + f"\n\nresults: {out}")


eval_.name = "eval"
