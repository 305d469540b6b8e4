"""``redline eval``: the evaluation harness from the command line (parsing, progress bars, printing only)."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import click

from redline.agent import GeneratorUnavailable

from ._common import State, emit, json_option

__all__ = ["eval_command"]

DEFAULT_METHODS = "no-learning,oracle,icl-edit-5,cipher-1,cipher-5,redline"


def _run_and_tag(text: str) -> tuple[Path, str | None]:
    """``--from RUN[=TAG]``: the run's folder and its tag (None without one)."""
    folder, tag = text, None
    if "=" in text and not Path(text).is_dir():
        folder, tag = text.rsplit("=", 1)
    if not Path(folder).is_dir():
        raise click.BadParameter(f"{folder} is not a folder", param_hint="--from")
    return Path(folder), tag


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError as exc:
        raise click.BadParameter("seeds must be comma-separated integers, e.g. 0,1,2") from exc
    if not seeds:
        raise click.BadParameter("give at least one seed")
    return seeds


@click.command("eval", context_settings={"max_content_width": 100})
@click.option("--task", required=True, type=click.Choice(["summarize", "email", "replay-lamp", "replay-coauthor"]),
              help="PRELUDE task (documents from several sources, one latent preference per source), or a replay "
                   "of real writers' edits (learn from a writer's first edits, revise their held-out drafts): "
                   "replay-lamp (three professional writers, LAMP), replay-coauthor (three CoAuthor writers' edits "
                   "of GPT-3 suggestions).")
@click.option("--user-model", type=click.Choice(["rule", "llm"]), default="rule", show_default=True,
              help="Simulated user: deterministic text operations, or the paper's protocol with the generator as user.")
@click.option("--users-file", type=click.Path(dir_okay=False, exists=True),
              help="YAML/JSON spec of the users (name, source, description, operations); default: the shipped one.")
@click.option("--methods", default=DEFAULT_METHODS, show_default=True,
              help="Comma-separated: no-learning, oracle, icl-edit-K, cipher-K, redline (=redline-rps; with the "
                   "users' edit rules), redline-best_of_n, redline-no-rules (RPS without rules), rules-only (no "
                   "preference in the prompt, edit rules only).")
@click.option("--rounds", type=click.IntRange(1, 10_000), default=200, show_default=True,
              help="Rounds per seed (documents drawn evenly from the sources, shuffled by seed). For "
                   "replay-*: held-out drafts per writer (at most 50 minus --learn-edits).")
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma-separated seeds (document order, sampling).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder: logs/*.jsonl, summary.json, report.md, PNG plots, generator cache.")
@click.option("--workers", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Simulated users run concurrently so the generator can batch their prompts.")
@click.option("--temperature", type=click.FloatRange(0, 2), default=0.0, show_default=True,
              help="Sampling temperature of drafts (0 = greedy; >0 samples with a per-round seed).")
@click.option("--n", "n", type=click.IntRange(1, 16), default=4, show_default=True,
              help="Candidates per round for redline's best-of-n / RPS.")
@click.option("--retrain-every", type=click.IntRange(1, 10_000), default=4, show_default=True,
              help="In process: each redline stream retrains its reward heads (agent train_rewards after each "
                   "learned edit, as the server's worker does) once this many new preference pairs arrived; "
                   "until the first training, selection falls back to greedy (cold start). The server's default "
                   "(REDLINE_REWARD_RETRAIN_EVERY=20) would leave a short run without heads. With --target the "
                   "server trains on its own schedule and this option is ignored.")
@click.option("--learn-edits", type=click.IntRange(1, 49), default=10, show_default=True,
              help="replay-*: edits learned from per writer before the held-out drafts.")
@click.option("--data", "replay_data", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="replay-*: a folder of LAMP-format edit files (JSON lists of instruction/preedit/postedit, "
                   "one file per writer, any number of writers) [default: the task's shipped edits].")
@click.option("--cache", "cache_path", type=click.Path(dir_okay=False, path_type=Path),
              help="SQLite generator-output cache [default: OUT/generator-cache.sqlite]. Give runs of one task that "
                   "are judged together (one process per method) the same file: the first answer stored for a prompt "
                   "is every run's, so two methods sending the same prompt get the same draft.")
@click.option("--no-cache", is_flag=True, help="Do not cache generator outputs.")
@click.option("--context-chars", type=click.IntRange(200), help="Context characters shown to the generator.")
@click.option("--target", metavar="URL", help="Evaluate a running redline server over HTTP instead of in process.")
@click.option("--api-key", envvar="REDLINE_EVAL_API_KEY", help="Bearer key for --target [env REDLINE_EVAL_API_KEY].")
@click.option("--resume", is_flag=True,
              help="Continue the run in OUT from its per-round logs (in process only; the same options as the run "
                   "that wrote them, --rounds may grow): finished rounds are not run again.")
@click.option("--generator-wait", type=click.FloatRange(0), default=600, show_default=True,
              help="Seconds to wait for a generator server that does not answer at all (a restart) before the run "
                   "stops (resumable with --resume); a server that answers but is slow is waited for as long as "
                   "it takes.")
@click.option("--claim", "claims", multiple=True, metavar="'X <= [R] Y [in every window]'",
              help="A claim the report judges at 95% from the paired per-round costs (repeatable), besides the "
                   "default ones (redline <= cipher-5, in every window too, redline <= 0.7 cipher-5, ...).")
@click.option("--report-only", is_flag=True,
              help="Do not run: rebuild summary.json, report.md and plots from OUT/logs (e.g. of a stopped run; "
                   "every method is cut to the rounds all completed).")
@click.option("--from", "runs", multiple=True, metavar="RUN[=TAG]",
              help="With --report-only, repeatable: judge several runs' logs together in OUT (e.g. one process per "
                   "method, run side by side), paired per round as if one run had made them. The runs must share "
                   "task, users, generator and --max-tokens; the report names each run's command. RUN=TAG judges "
                   "that run's methods as METHOD-TAG, so two runs of one method (two versions of the code) are "
                   "compared too: --from old --from new=new --claim 'redline-new <= redline'.")
@json_option
@click.pass_context
def eval_command(ctx, task, user_model, users_file, methods, rounds, seeds, out, workers, temperature, n,
                 retrain_every, learn_edits, replay_data, cache_path, no_cache, context_chars, target, api_key,
                 resume, generator_wait, claims, report_only, runs):
    """Run simulated users against the agent and compare methods by cumulative edit cost.

    \b
    Example (a quick look; the paper's protocol is --rounds 200 --seeds 0,1,2):
      redline --max-tokens 96 eval --task summarize --methods no-learning,oracle,cipher-5 \\
          --rounds 20 --seeds 0 --out results/summarize

    Writes per-round logs (logs/*.jsonl), summary.json, report.md and plots (cumulative_cost.png,
    cost_per_source.png). The generator, its URL and --max-tokens come from the global options.
    For redline methods each round's log says how the draft was selected (selection: reward, or
    cold-start before the stream's reward heads exist) and the report from which round the reward
    picked the drafts.
    """
    from redline.evals.methods import parse_methods
    from redline.evals.paired import DEFAULT_CLAIMS, parse_claim

    try:
        claim_list = [*DEFAULT_CLAIMS, *(parse_claim(c) for c in claims)]
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if runs and not report_only:
        raise click.UsageError("--from gathers finished runs' logs: use it with --report-only")
    if report_only:
        from redline.evals.harness import merge_runs, results_from_logs
        from redline.evals.report import write_report

        try:
            if runs:
                folders, tags = zip(*(_run_and_tag(r) for r in runs))
                merge_runs(list(folders), out, "redline " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
                           task=task, tags=list(tags))
            summary = write_report(results_from_logs(out), out, claim_list)
        except (OSError, ValueError) as exc:
            raise click.ClickException(f"cannot rebuild the report from {out}: {exc}") from exc
        emit(summary, _tables(summary))
        return

    state = ctx.find_object(State)
    overrides = dict(state.overrides)
    if context_chars:
        overrides["context_chars_in_prompt"] = context_chars
    try:
        method_list = parse_methods(methods, n=n)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    seed_list = _seeds(seeds)
    if target and ctx.get_parameter_source("retrain_every") == click.core.ParameterSource.COMMANDLINE:
        click.echo("note: --retrain-every is ignored with --target; the server retrains its reward heads on its "
                   "own schedule (REDLINE_REWARD_RETRAIN_EVERY)", err=True)
    if temperature == 0 and any(m.strategy == "best_of_n" for m in method_list):
        click.echo("note: at --temperature 0 best-of-n draws n identical greedy drafts, so its selection cannot "
                   "change the draft; use --temperature > 0 to evaluate it", err=True)
    replay = task.startswith("replay-")
    if resume and (target or replay):
        raise click.ClickException("--resume works for in-process runs of summarize and email only")
    out.mkdir(parents=True, exist_ok=True)
    command = "redline " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    bars = _Progress()
    settings = state.settings_with(**overrides)
    started = time.perf_counter()
    from redline.evals.backends import load_embedder, load_run_generator

    embedder = load_embedder(settings)
    generator = meter = None
    if target is None or user_model == "llm" or replay:
        generator, meter = load_run_generator(settings, cache_path=None if no_cache else
                                              cache_path or out / "generator-cache.sqlite",
                                              down_wait=generator_wait, notify=bars.write)
        bars.meter = meter
    progress = bars.method
    try:
        if replay:
            if target:
                raise click.ClickException(f"{task} runs in process only; drop --target")
            from redline.evals.lamp import COAUTHOR_DATA, LAMP_DATA
            from redline.evals.replay import run_replay, write_replay_report

            replay_data = replay_data or (COAUTHOR_DATA if task == "replay-coauthor" else LAMP_DATA)

            results = run_replay(method_list, out, embedder=embedder, generator=generator, learn_edits=learn_edits,
                                 held_out=rounds, settings={**overrides, "reward_retrain_every": retrain_every},
                                 progress=progress, max_tokens=overrides.get("max_tokens"), data=replay_data,
                                 workers=workers)
            bars.close()
            emit(results, write_replay_report(results, out, command))
            return
        from redline.evals.harness import EvalConfig, run_eval
        from redline.evals.report import write_report

        config = EvalConfig(task=task, methods=method_list, rounds=rounds, seeds=seed_list, user_model=user_model,
                            users_file=users_file, out=out, workers=workers, temperature=temperature,
                            max_tokens=overrides.get("max_tokens"), target=target, api_key=api_key,
                            settings=overrides, command=command, retrain_every=None if target else retrain_every)
        results = run_eval(config, embedder=embedder, generator=generator, progress=progress, resume=resume)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    except GeneratorUnavailable as exc:
        raise click.ClickException(f"{exc}; the rounds done are logged in {out}/logs: add --resume to the same "
                                   "command to continue once the generator answers") from exc
    finally:
        bars.close()
    if meter is not None:
        results["generator"] = meter.summary()
    summary = write_report(results, out, claim_list)
    emit(summary, _tables(summary) + f"\n\nwrote {out}/summary.json, report.md, cumulative_cost.png, "
                                     f"cost_per_source.png, logs/ in {time.perf_counter() - started:.0f} s")


class _Progress:
    """tqdm bars for concurrent streams: one per method (rounds done over all its seeds) under one for the whole
    run, whose postfix is the tokens per second the generator produced (``meter``; cache hits not counted);
    ``write`` prints a line above the bars (the generator's outages). Without a terminal, one bar for the run,
    refreshed at most every 30 s."""

    def __init__(self):
        from tqdm import tqdm

        self._tqdm = tqdm
        self.tty = sys.stderr.isatty()
        self.total = tqdm(total=0, desc=f"{'all streams':>18}", position=0, dynamic_ncols=True,
                          mininterval=0.5 if self.tty else 30)
        self.bars: list = []
        self.meter = None

    def method(self, name: str, total: int):
        self.total.total += total
        self.total.refresh()
        bar = self._tqdm(total=total, desc=f"{name:>18}", position=len(self.bars) + 1, dynamic_ncols=True,
                         leave=True) if self.tty else None
        if bar is not None:
            self.bars.append(bar)

        def tick(row: dict | None = None) -> None:
            if bar is not None:
                bar.update(1)
            rate = self.meter.summary()["tokens_per_second"] if self.meter is not None else None
            if rate is not None:
                self.total.set_postfix_str(f"generator {rate:.1f} tok/s", refresh=False)
            self.total.update(1)
        return tick

    def write(self, message: str) -> None:
        self._tqdm.write(message, file=sys.stderr)

    def close(self) -> None:
        for bar in [*self.bars, self.total]:
            bar.close()


def _tables(summary: dict) -> str:
    """The methods' table, the generator's throughput, the claims judged, the selection table when a method
    selects among candidates, and the edit rules per stream when a method has them."""
    from redline.evals.report import format_claims, format_generator, format_rules, format_selection, format_table

    extra = [t for t in (format_generator(summary), format_claims(summary), format_selection(summary),
                         format_rules(summary)) if t]
    return "\n\n".join([format_table(summary), *extra])

