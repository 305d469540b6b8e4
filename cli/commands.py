"""The ``redline`` group, its global options and the learning-loop commands (generate, feedback, preferences,
learn-pending); ``serve`` and ``worker``, ``keys``, ``rewards`` and ``eval`` live in their own modules."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from redline.agent import AgentError, GenerateOptions
from redline.agent.types import STRATEGIES, TASKS
from redline.runtime import quiet_offline_models

from ._common import State, emit, json_option, pass_state, read_text
from .eval import eval_command
from .generator_server import generator_server
from .keys import keys
from .rewards import rewards
from .rules import rule_line, rules
from .serve import serve, worker

__all__ = ["main", "cli"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Data directory [env REDLINE_DATA_DIR; default ~/.redline].")
@click.option("--generator", type=click.Choice(["llama-server", "transformers", "openai", "vllm"]),
              help="Generator back-end [env REDLINE_GENERATOR; default llama-server].")
@click.option("--generator-url",
              help="Base URL of a running server, e.g. http://127.0.0.1:8000/v1: llama-server attaches to it instead "
                   "of starting one; openai needs it [env REDLINE_GENERATOR_URL].")
@click.option("--generator-model",
              help="qwen2.5-coder-0.5b (default), smollm2, or a .gguf file (llama-server) / model folder "
                   "(transformers, vllm); openai: the served model name [env REDLINE_GENERATOR_MODEL].")
@click.option("-k", "k", type=int, help="CIPHER: nearest past contexts to retrieve [env REDLINE_K; default 5].")
@click.option("--delta", type=int, help="Edit costs at or below this count as no edit [env REDLINE_DELTA; default 0].")
@click.option("--max-tokens", type=int, help="Maximum tokens per generation [env REDLINE_MAX_TOKENS].")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("-v", "--verbose", count=True, help="Log progress (-v info, -vv debug) to stderr.")
@click.pass_context
def cli(ctx, data_dir, generator, generator_url, generator_model, k, delta, max_tokens, as_json, verbose):
    """redline: responses shaped by what each user's edits taught it.

    \b
    Typical loop:
      redline generate --user alice --context-file article.txt --task summarize
      redline feedback --interaction ID --edited-file my_version.txt
      redline preferences --user alice
    """
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)],
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    ctx.obj = State(dict(data_dir=data_dir, generator=generator, generator_url=generator_url,
                         generator_model=generator_model, k=k, delta=delta, max_tokens=max_tokens), as_json)


for command in (serve, worker, keys, rewards, rules, eval_command, generator_server):
    cli.add_command(command)


@cli.command()
@click.option("--user", required=True, help="The user the response is for.")
@click.option("--context-file", required=True, help="File with the document/notes/message ('-' for stdin).")
@click.option("--task", type=click.Choice(TASKS), default="summarize", show_default=True, help="What to write.")
@click.option("--strategy", type=click.Choice(STRATEGIES), default="greedy", show_default=True,
              help="greedy: one text; best_of_n: n samples of the target-preference prompt; rps: one candidate per "
                   "neighbourhood preference. The user's routed reward picks among several.")
@click.option("--n", "n", type=click.IntRange(1, 16),
              help="Candidates for best_of_n / rps [env REDLINE_REWARD_N; default 4].")
@click.option("--temperature", type=float, help="Sampling temperature (0 = greedy).")
@click.option("--seed", type=int, help="Sampling seed.")
@click.option("--no-rules", is_flag=True, help="Return the text as generated, without the user's edit rules.")
@click.option("--tenant", default="default", show_default=True, help="Tenant the user belongs to.")
@json_option
@pass_state
def generate(state: State, user, context_file, task, strategy, n, temperature, seed, no_rules, tenant):
    """Write a response for USER, shaped by preferences learned from similar past contexts and fixed by the
    user's learned edit rules."""
    context = read_text(context_file, "context")
    options = GenerateOptions(strategy=strategy, n=n, temperature=temperature, seed=seed, rules=not no_rules)
    result = state.agent.generate(user, context, task, options, tenant=tenant)
    neighbours = ", ".join(f"{nb['interaction_id'][:8]} ({nb['similarity']:.2f})" for nb in result.neighbours) or "none"
    human = (f"{result.text}\n\n---\ninteraction: {result.interaction_id}\n"
             f"preference used: {result.preference or '(none yet)'}\nneighbours: {neighbours}")
    if result.applied_rules:
        human += "\nrules applied: " + "; ".join(f"#{r['id']} {r['description']}" for r in result.applied_rules)
    human += _candidates_text(result.strategy, result.candidates, result.selection)
    emit(result.to_dict(), human)


def _one_line(text: str | None, width: int) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _candidates_text(strategy: str, candidates: list[dict], selection: dict | None = None) -> str:
    """The candidates with their scores when there was a choice; a note when a strategy fell back to one."""
    if len(candidates) <= 1:
        if strategy == "greedy":
            return ""
        return (f"\nstrategy: {strategy} fell back to one candidate (no trained reward yet, or no learned edit "
                f"from this user)")
    differs = "differs from" if selection and selection.get("differs_from_greedy") else "is"
    lines = [f"\nstrategy: {strategy}, {len(candidates)} candidates (score: chance of beating the others under "
             f"the user's reward; * chosen, which {differs} the greedy draft)"]
    for i, c in enumerate(candidates, 1):
        score = "  n/a" if c.get("score") is None else f"{c['score']:.3f}"
        mark = "*" if c.get("chosen") else " "
        lines.append(f"{mark} {i}. {score}  [{c.get('kind')}, {c.get('source')}] {_one_line(c.get('text'), 72)!r}")
        lines.append(f"       preference: {_one_line(c.get('preference'), 80) or '(none)'}")
    return "\n".join(lines)


@cli.command()
@click.option("--interaction", "interaction_id", required=True, help="Interaction id printed by `generate`.")
@click.option("--edited-file", required=True, help="File with the text as the user kept it ('-' for stdin).")
@json_option
@pass_state
def feedback(state: State, interaction_id, edited_file):
    """Learn from the user's edit of a generated response."""
    edited = read_text(edited_file, "edited")
    result = state.agent.learn(interaction_id, edited)
    if result.already_learned:
        status = "already learned"
    elif result.is_edit:
        status = "learned"
    else:
        status = "no edit (cost at or below delta)"
    human = (f"{status}: edit cost {result.cost} words\n"
             f"preference stored: {result.preference or '(none)'}")
    emit(result.to_dict(), human)


@cli.command()
@click.option("--user", required=True, help="Whose preferences to show.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="How many, newest first.")
@click.option("--offset", type=click.IntRange(0), default=0, help="Skip this many.")
@click.option("--tenant", default="default", show_default=True, help="Tenant the user belongs to.")
@json_option
@pass_state
def preferences(state: State, user, limit, offset, tenant):
    """What redline believes USER prefers, and which edit taught each belief."""
    data = state.agent.preferences(user, tenant=tenant, limit=limit, offset=offset)
    lines = [f"{user}: {data['stats']['preferences']} preferences from {data['stats']['edits']} edits"]
    if data.get("routing"):
        lines.append(_routing_text(data["routing"]))
    active = [r for r in data["rules"] if r["active"]]
    if active:
        lines.append(f"edit rules ({len(active)} active of {len(data['rules'])}; `redline rules list` for all):")
        lines += [f"  {rule_line(r)}" for r in active]
    for item in data["items"]:
        mark = " (edited by user)" if item["user_edited"] else ""
        lines.append(f"\n#{item['id']} [{item['kind']}]{mark} {item['text']}")
        lines.append(f"  from: {item['context_snippet'][:100]!r}")
        if item.get("edited_text") is not None:
            lines.append(f"  draft: {(item['draft'] or '')[:100]!r}")
            lines.append(f"  edit:  {item['edited_text'][:100]!r} (cost {item['cost']})")
    emit(data, "\n".join(lines))


def _routing_text(routing: dict) -> str:
    """Which reward heads the user's online routing leans on."""
    weights = " ".join(f"{w:.2f}" for w in routing["weights"])
    lean = (f"no lean yet across {routing['heads']} reward heads" if routing["entropy"] >= 0.995
            else f"leans on reward head {routing['top_head']} of {routing['heads']}")
    line = (f"routing: {lean} (weights {weights}; entropy {routing['entropy']:.2f}, 1 = no lean; "
            f"{routing['steps']} steps)")
    departures = routing.get("departures") or []
    if departures:
        line += "\nedits depart most in: " + ", ".join(
            f"{d['feature']} {d['user']:+.2f} (everyone {d['population']:+.2f})" for d in departures)
    return line


@cli.command("learn-pending")
@click.option("--failed", is_flag=True, help="Also retry, at once, the edits whose learning failed: parked ones "
                                             "(every attempt failed) and ones waiting out a back-off.")
@json_option
@pass_state
def learn_pending(state: State, failed: bool):
    """Learn every accepted edit that was not learned yet (e.g. after a crash)."""
    requeued = state.agent.retry_learning() if failed else 0
    count = state.agent.process_pending(limit=1_000_000)
    emit({"learned": count, "requeued": requeued},
         (f"queued {requeued} failed edits again; " if failed else "") + f"learned {count} pending edits")


def main(argv: list[str] | None = None) -> None:
    # Model loading chatter (progress bars, hub notices) is noise on a terminal; -v shows our own logs.
    quiet_offline_models()
    try:
        cli.main(args=argv, prog_name="redline", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except AgentError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
