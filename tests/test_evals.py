"""The evaluation harness on cheap parts: rule operations, users, tasks, methods, cache, report (scripted generator)."""

from __future__ import annotations

import json
from contextlib import contextmanager

import numpy as np
import pytest

from redline.agent import GenerationParams
from redline.evals.ops import OPERATIONS, build_operation, sentences, split_frame

from conftest import HashEmbedder
from doubles import ScriptedGenerator

DRAFT = ("Hello team,\n\nThe new model is great! It uses a novel method, which improves results by a lot and "
         "makes everything much faster than before for almost every user. We utilize public data."
         "\n\nBest regards,\nAnn")

# one parameterised example per operation kind
OPS = {
    "bullets": {"op": "bullets"},
    "numbered": {"op": "numbered"},
    "max_sentences": {"op": "max_sentences", "n": 2},
    "max_words": {"op": "max_words", "n": 12},
    "split_long_sentences": {"op": "split_long_sentences", "n": 8},
    "prefix_line": {"op": "prefix_line", "text": "Dear colleagues,"},
    "closing_line": {"op": "closing_line", "text": "Thanks a lot,"},
    "remove_closing": {"op": "remove_closing"},
    "replace_terms": {"op": "replace_terms", "terms": {"utilize": "use", "novel": "new"}},
    "delete_phrases": {"op": "delete_phrases", "phrases": ["by a lot"]},
    "no_exclamation": {"op": "no_exclamation"},
    "append_emojis": {"op": "append_emojis", "emojis": "🚀", "min_count": 2},
    "question_answer": {"op": "question_answer"},
    "tldr_first": {"op": "tldr_first"},
    "heading": {"op": "heading"},
    "hashtags": {"op": "hashtags", "tags": ["AI"]},
    "end_with_question": {"op": "end_with_question", "question": "What do you think?"},
}



@contextmanager
def _learner(agent):
    """The learner the server's ``redline serve`` runs beside its API processes, here as threads of this process
    on the same agent (its learning is what the HTTP harness waits for)."""
    from redline.learner import LearningWorker

    worker = LearningWorker(agent, poll_interval=0.02).start()
    try:
        yield worker
    finally:
        worker.stop(timeout=10)

def test_every_operation_kind_has_an_example():
    assert set(OPS) == set(OPERATIONS) and len(OPERATIONS) >= 12


@pytest.mark.parametrize("kind", sorted(OPS))
def test_operation_check_edit_and_idempotence(kind):
    op = build_operation(OPS[kind])
    assert op.kind == kind and op.description
    assert not op.check(DRAFT), "the example draft should need this edit"
    edited = op.edit(DRAFT)
    assert edited != DRAFT
    assert op.check(edited), edited
    assert op.apply(edited) == edited  # a fine text is left alone


def test_operation_details():
    assert build_operation({"op": "max_words", "n": 3}).edit("One two three. Four five.") == "One two three."
    assert build_operation({"op": "bullets"}).edit("A b. C d!") == "- A b.\n- C d!"
    assert build_operation({"op": "numbered"}).edit("A b. C d!") == "1. A b.\n2. C d!"
    split_op = build_operation({"op": "split_long_sentences", "n": 5})
    split = split_op.edit("One two three four, and five six seven eight.")
    assert split == "One two three four. Five six seven eight."
    assert build_operation({"op": "replace_terms", "terms": {"utilize": "use"}}).edit("Utilize it.") == "Use it."
    assert build_operation({"op": "no_exclamation"}).edit("Wow!! Yes!") == "Wow. Yes."
    # layout operations see the body, not the greeting or the sign-off
    assert build_operation({"op": "max_sentences", "n": 1}).edit(DRAFT).startswith("Hello team,\n\nThe new model")
    assert build_operation({"op": "max_sentences", "n": 1}).edit(DRAFT).endswith("Best regards,\nAnn")
    # a greeting prefix replaces an existing greeting rather than stacking
    assert build_operation({"op": "prefix_line", "text": "Hey!"}).edit(DRAFT).count("Hello team") == 0
    # the line heads the text once, also where a list operation before it numbered the line (held-out reddit user)
    story = [build_operation({"op": "numbered"}), build_operation({"op": "prefix_line", "text": "Here's the story."})]
    assert _edited("Here's the story.", story) == "Here's the story."
    assert _edited("Here's the story.\nThe email came. He knew.", story) == \
        "Here's the story.\n\n1. The email came.\n2. He knew."


def _edited(text: str, operations) -> str:
    for op in operations:
        text = op.apply(text)
    return text


def test_frame_and_sentences():
    head, body, tail = split_frame(DRAFT)
    assert head == ["Hello team,"] and tail == ["Best regards,", "Ann"] and body.startswith("The new model")
    assert sentences("- One thing. Two\n- Three!") == ["One thing.", "Two", "Three!"]


def test_bad_operation_specs():
    with pytest.raises(ValueError, match="unknown operation 'shout'"):
        build_operation({"op": "shout"})
    with pytest.raises(ValueError, match="bad parameters for operation 'max_words'"):
        build_operation({"op": "max_words", "words": 3})


# -- users and tasks ------------------------------------------------------------------------------

def test_shipped_users_load_and_cover_every_source():
    from redline.evals.tasks import TASKS, load_documents
    from redline.evals.users import load_user_specs

    for task in TASKS:
        specs = load_user_specs(task)
        sources = {d.source for d in load_documents(task)}
        assert set(specs) == sources
        assert all(s.description and s.operations and s.prelude for s in specs.values())
    assert len(load_user_specs("summarize")) == 5 and len(load_user_specs("email")) == 4


def test_users_file_json_and_errors(tmp_path):
    from redline.evals.users import RuleUser, load_user_specs

    path = tmp_path / "users.json"
    path.write_text(json.dumps({"summarize": [{"name": "terse", "source": "news", "description": "one sentence",
                                               "operations": [{"op": "max_sentences", "n": 1}]}]}))
    specs = load_user_specs("summarize", path)
    fb = RuleUser(specs).feedback("news", "doc", "First. Second.")
    assert fb.edited == "First." and not fb.satisfied
    assert RuleUser(specs).feedback("news", "doc", "Only one.").satisfied
    with pytest.raises(ValueError, match="has no users for task 'email'"):
        load_user_specs("email", path)
    path.write_text(json.dumps({"email": [{"name": "x", "source": "s", "description": "d",
                                           "operations": [{"op": "nope"}]}]}))
    with pytest.raises(ValueError, match="user 'x' in .*unknown operation 'nope'"):
        load_user_specs("email", path)


COUNCIL = ("The council met on Monday. It approved the budget for the new bridge after a long debate. "
           "Work starts in May and should take two years. The bridge will carry four lanes of traffic and a "
           "protected path for bikes and walkers. Residents asked for more parking.")


def one_op_user(op: dict):
    """A rule user for the source 'news' with one operation."""
    from redline.evals.ops import build_operation
    from redline.evals.users import RuleUser, UserSpec

    return RuleUser({"news": UserSpec("one op", "news", "one operation", [build_operation(op)])})


@pytest.mark.parametrize("draft", ["Hey!", "Thanks for reading!", "# FlauBERT: A Language Model for French"])
def test_a_rule_user_writes_the_content_of_a_draft_that_is_frame_lines_only(draft):
    document = COUNCIL
    user = one_op_user({"op": "prefix_line", "text": "In short:"})
    fb = user.feedback("news", document, draft)
    assert "should take two years." in fb.edited and "four lanes" not in fb.edited  # up to 40 words
    assert fb.edited.startswith("In short:") and draft in fb.edited and not fb.satisfied
    kept = "In short:\n\nThe council approved the budget on Monday."
    assert user.feedback("news", document, kept).satisfied  # a draft with a body is only edited
    one_line = "TL;DR: The council approved the budget for the new bridge after a long debate on Monday."
    assert user.feedback("news", document, one_line).edited == "In short:\n" + one_line  # a line with content


@pytest.mark.parametrize("draft", ["Here's the story.", "Hi friend, talk soon.",
                                   "I'm sorry, but I can't assist with that request.",
                                   "Ever wondered what comes next?\n\nIt is worth watching. #research"])
def test_a_rule_user_writes_the_content_of_a_draft_that_takes_nothing_from_the_document(draft):
    document = COUNCIL
    user = one_op_user({"op": "closing_line", "text": "Thoughts?"})
    fb = user.feedback("news", document, draft)
    # these cost a user who only adds a line almost nothing before: 'Here's the story.' passed a summary user for 0
    assert "approved the budget for the new bridge" in fb.edited and fb.edited.endswith("Thoughts?")
    assert not fb.satisfied
    with_content = "The council approved the bridge budget; work starts in May.\n\nThoughts?"
    assert user.feedback("news", document, with_content).satisfied
    # a short request is not a document to draw on: its drafts are only edited
    assert "bridge" not in user.feedback("news", "Write a haiku about spring", draft).edited


def test_held_out_users_load_cover_every_source_and_differ_from_the_shipped_ones():
    from redline.evals.tasks import TASKS, load_documents
    from redline.evals.users import DATA_DIR, load_user_specs

    for task in TASKS:
        shipped, held_out = load_user_specs(task), load_user_specs(task, DATA_DIR / "users-heldout.yaml")
        assert set(held_out) == {d.source for d in load_documents(task)}
        for source, spec in held_out.items():
            assert [o.params for o in spec.operations] != [o.params for o in shipped[source].operations], source


@pytest.mark.parametrize("users_file", ["users.yaml", "users-heldout.yaml"])
def test_rule_users_accept_their_own_edits(users_file):
    from redline.evals.tasks import TASKS, load_documents
    from redline.evals.users import DATA_DIR, RuleUser, load_user_specs

    for task in TASKS:
        user = RuleUser(load_user_specs(task, DATA_DIR / users_file))
        for doc in load_documents(task)[::20]:
            draft = doc.text[:600]
            first = user.feedback(doc.source, doc.text, draft)
            assert user.feedback(doc.source, doc.text, first.edited).satisfied, (task, doc.source, first.edited)


def test_llm_user_judges_then_rewrites_without_the_document():
    from redline.evals.users import LLMUser, load_user_specs

    seen = []

    def respond(prompt, i):
        seen.append(prompt[-1]["content"])
        return "no" if "yes or no" in prompt[-1]["content"] else "Rewritten."

    user = LLMUser(load_user_specs("summarize"), ScriptedGenerator(respond))
    fb = user.feedback("news", "SECRET DOCUMENT", "A draft.")
    assert fb.edited == "Rewritten." and not fb.satisfied and fb.tokens_in > 0
    assert len(seen) == 2 and all("SECRET DOCUMENT" not in s for s in seen)
    yes = LLMUser(load_user_specs("summarize"), ScriptedGenerator(lambda p, i: "Yes."))
    assert yes.feedback("news", "doc", "A draft.").satisfied


def test_round_order_is_balanced_and_seeded():
    from redline.evals.tasks import load_documents, round_order

    docs = load_documents("summarize")
    a, b, c = round_order(docs, 20, 0), round_order(docs, 20, 0), round_order(docs, 20, 1)
    assert [d.id for d in a] == [d.id for d in b] != [d.id for d in c]
    assert sorted({d.source for d in a}) == sorted({d.source for d in docs})
    assert all(sum(d.source == s for d in a) == 4 for s in {d.source for d in docs})
    assert [d.id for d in round_order(docs, 50, 0)[:20]] == [d.id for d in a]  # prefix-stable


def test_methods_parse():
    from redline.evals.methods import parse_method, parse_methods

    assert parse_method("icl-edit-3").icl_k == 3 and not parse_method("icl-edit-3").learns
    assert parse_method("cipher-1").k == 1 and parse_method("cipher-1").learns
    assert parse_method("redline").strategy == "rps" and parse_method("redline-best_of_n").strategy == "best_of_n"
    assert parse_method("oracle").oracle and not parse_method("no-learning").use_retrieval
    assert parse_method("redline").rules and parse_method("redline-best_of_n").rules
    ablation, rules_only = parse_method("redline-no-rules"), parse_method("rules-only")
    assert ablation.strategy == "rps" and ablation.learns and not ablation.rules
    assert rules_only.rules and rules_only.learns and not rules_only.use_preference and rules_only.strategy == "greedy"
    assert not parse_method("cipher-5").rules
    assert parse_method("cipher-5").aggregation == "llm"  # the paper's baseline: the generator combines
    assert {parse_method(m).aggregation for m in ("redline", "redline-no-rules", "rules-only")} == {"vote"}
    with pytest.raises(ValueError, match="unknown method 'gpt'"):
        parse_methods("oracle,gpt")
    with pytest.raises(ValueError, match="listed twice"):
        parse_methods("oracle,oracle")


# -- fakes ---------------------------------------------------------------------------------------

def test_preference_accuracy():
    from redline.evals.harness import PreferenceScorer
    from redline.evals.users import load_user_specs

    specs = load_user_specs("summarize")
    scorer = PreferenceScorer(HashEmbedder(), specs)
    for source, spec in specs.items():
        assert scorer.correct(spec.description, source)
    assert not scorer.correct(None, "news") and not scorer.correct("", "news")
    assert scorer.closest("question-answer format, each line 'Q:' followed by an 'A:' line") == "movie_review"


# -- generator wrappers ----------------------------------------------------------------------------

def test_caching_generator_persists_and_keys_on_params(tmp_path):
    from redline.agent.generators.cache import CachingGenerator

    inner = ScriptedGenerator(lambda p, i: p[-1]["content"].upper())
    path = tmp_path / "cache.sqlite"
    gen = CachingGenerator(inner, path)
    prompt = [{"role": "user", "content": "hi there"}]
    greedy = GenerationParams(temperature=0.0, max_tokens=8)
    first = gen.generate([prompt], greedy)[0]
    again = CachingGenerator(inner, path).generate([prompt, [{"role": "user", "content": "new"}]], greedy)
    assert again[0].texts == first.texts == ["HI THERE"] and again[0].extra["cached"]
    assert again[0].prompt_tokens == first.prompt_tokens
    assert len(inner.calls) == 2 and len(inner.calls[1][0]) == 1  # only the miss went to the back-end
    gen.generate([prompt], GenerationParams(temperature=0.0, max_tokens=9))
    assert len(inner.calls) == 3  # other params, other key
    gen.generate([prompt], GenerationParams(temperature=0.7, seed=None))
    gen.generate([prompt], GenerationParams(temperature=0.7, seed=None))
    assert len(inner.calls) == 5  # unseeded sampling is never cached


def test_caching_generators_sharing_a_file_give_one_answer_per_prompt(tmp_path):
    """Two processes' caches on one file (methods evaluated side by side): a prompt both missed is answered by
    whichever stored it first, in both, and in the file; a prompt only one sent is theirs."""
    from redline.agent.generators.cache import CachingGenerator

    path = tmp_path / "shared.sqlite"
    first = CachingGenerator(ScriptedGenerator(lambda p, i: "first " + p[-1]["content"]), path)
    greedy = GenerationParams(temperature=0.0)
    prompt = lambda text: [{"role": "user", "content": text}]  # noqa: E731
    second_inner = ScriptedGenerator(lambda p, i: "second " + p[-1]["content"])
    sent = second_inner.generate

    def racing(prompts, params):  # the other process stores its answer while this one decodes
        first.generate([prompt("same")], params)
        return sent(prompts, params)

    second_inner.generate = racing
    second = CachingGenerator(second_inner, path)
    answers = second.generate([prompt("same"), prompt("own")], greedy)
    assert [a.texts for a in answers] == [["first same"], ["second own"]]
    assert answers[0].extra["cached"] and not answers[1].extra.get("cached")
    again = CachingGenerator(ScriptedGenerator(lambda p, i: "third"), path).generate(
        [prompt("same"), prompt("own")], greedy)
    assert [a.texts for a in again] == [["first same"], ["second own"]]


def test_caching_generator_sends_a_prompt_already_in_flight_once(tmp_path):
    """Two callers asking the same greedy prompt at once: the back-end sees it once, both get its answer; a failure
    reaches both; nothing stays marked in flight."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from redline.agent.generators.cache import CachingGenerator

    release = threading.Event()
    inner = ScriptedGenerator(lambda p, i: p[-1]["content"].upper())
    sent = inner.generate

    def slow(prompts, params):
        assert release.wait(10)
        if any(p[-1]["content"] == "boom" for p in prompts):
            raise RuntimeError("generator failed")
        return sent(prompts, params)

    inner.generate = slow
    gen = CachingGenerator(inner, tmp_path / "cache.sqlite")
    greedy = GenerationParams(temperature=0.0)
    ask = lambda *texts: gen.generate([[{"role": "user", "content": t}] for t in texts], greedy)  # noqa: E731
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(ask, "same")
        while not gen._in_flight:
            assert not first.done(), first.result()
            threading.Event().wait(0.01)
        second = pool.submit(ask, "same", "other", "other")
        threading.Event().wait(0.2)
        release.set()
        assert [g.texts for g in first.result()] == [["SAME"]]
        answers = second.result()
    assert [g.texts for g in answers] == [["SAME"], ["OTHER"], ["OTHER"]] and answers[0].extra["cached"]
    assert sorted(len(call[0]) for call in inner.calls) == [1, 1]  # "same" once, "other" once: no second copy
    release.clear()
    with ThreadPoolExecutor(2) as pool:
        failing = [pool.submit(ask, "boom") for _ in range(2)]
        threading.Event().wait(0.2)
        release.set()
        for future in failing:
            with pytest.raises(RuntimeError, match="generator failed"):
                future.result()
    assert gen._in_flight == {}


def test_batching_generator_merges_concurrent_calls():
    import threading

    from redline.evals._batching import BatchingGenerator

    inner = ScriptedGenerator(lambda p, i: p[-1]["content"])
    gen = BatchingGenerator(inner, window=0.2)
    results = {}

    def call(i):
        results[i] = gen.generate([[{"role": "user", "content": f"p{i}"}]], GenerationParams())[0].texts[0]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: f"p{i}" for i in range(4)}
    assert len(inner.calls) == 1 and len(inner.calls[0][0]) == 4


# -- the harness and the report --------------------------------------------------------------------

def _respond(prompt, i):
    content = prompt[-1]["content"]
    if "Combine them" in content:
        return "bullet points, brief"
    if "describe the writing style" in content:
        return "brief bullet points, one short sentence each"
    # drafts take words of the document, as any draft the agent keeps must (text.ignores_document)
    document = content.split("Text:\n")[-1].split("\n\nWrite it to suit")[0].split()
    if "bullet points" in content:
        return f"- {' '.join(document[:12])}.\n- {' '.join(document[12:24])}."
    return (f"The text says {' '.join(document[:15])}. It has details that matter a great deal to the people "
            "involved!")


def test_harness_and_report(tmp_path):
    from redline.evals.harness import EvalConfig, run_eval
    from redline.evals.methods import parse_methods
    from redline.evals.report import write_report

    gen = ScriptedGenerator(_respond)
    config = EvalConfig(task="summarize", methods=parse_methods("no-learning,oracle,icl-edit-2,cipher-1,redline"),
                        rounds=6, seeds=[0, 1], out=tmp_path / "out", workers=3, command="redline eval test")
    results = run_eval(config, embedder=HashEmbedder(), generator=gen)
    summary = write_report(results, tmp_path / "out")
    assert set(summary["methods"]) == {"no-learning", "oracle", "icl-edit-2", "cipher-1", "redline"}
    assert "redline" not in summary["skipped"]
    for name, m in summary["methods"].items():
        for key in ("cumulative_cost_mean", "cumulative_cost_std", "preference_accuracy", "tokens_in", "tokens_out",
                    "wall_time_s", "cost_per_source", "cumulative_curve_mean"):
            assert key in m, (name, key)
        per_round = []
        for seed in (0, 1):
            log = tmp_path / "out" / "logs" / f"{name}-s{seed}.jsonl"
            rows = [json.loads(x) for x in log.read_text().splitlines()]
            assert len(rows) == 6 and rows[-1]["cumulative_cost"] == sum(r["cost"] for r in rows)
            per_round.append(rows[-1]["cumulative_cost"])
        assert m["cumulative_cost_mean"] == pytest.approx(np.mean(per_round))
        assert m["tokens_in"] > 0
    assert summary["methods"]["no-learning"]["preference_accuracy"] is None
    assert summary["methods"]["oracle"]["preference_accuracy"] == 1.0
    # same documents in the same order for every method of one seed
    logs = {n: (tmp_path / "out" / "logs" / f"{n}-s0.jsonl").read_text().splitlines() for n in summary["methods"]}
    orders = {n: [json.loads(x)["doc_id"] for x in lines] for n, lines in logs.items()}
    assert len({tuple(v) for v in orders.values()}) == 1
    for f in ("summary.json", "report.md", "cumulative_cost.png", "cost_per_source.png"):
        assert (tmp_path / "out" / f).stat().st_size > 0
    assert (tmp_path / "out" / "cumulative_cost.png").read_bytes()[:4] == b"\x89PNG"
    assert "redline eval test" in (tmp_path / "out" / "report.md").read_text()
    # ICL-edit put past (draft, edit) pairs into later prompts
    assert any("The user's edited version" in m["content"] for ps, _ in gen.calls for p in ps for m in p)


RULE_METHODS = "redline,redline-no-rules,rules-only,cipher-5"


def _details_user(tmp_path) -> str:
    """A users file with one summarize user who always replaces 'details' with 'facts'."""
    path = tmp_path / "users.yaml"
    path.write_text("summarize:\n  - {name: facts, source: wikipedia, description: 'facts, not details',\n"
                    "     operations: [{op: replace_terms, terms: {details: facts}}]}\n")
    return str(path)


def _check_rule_streams(out, results) -> None:
    """rules-only learns the fix from two edits and makes it from then on; methods without rules log none."""
    streams = {s.method: s for s in results["streams"]}
    assert set(streams) == set(RULE_METHODS.split(","))
    rows = [json.loads(x) for x in (out / "logs" / "rules-only-s0.jsonl").read_text().splitlines()]
    assert [bool(r["applied_rules"]) for r in rows] == [False, False] + [True] * (len(rows) - 2)
    assert all(r["cost"] == 0 and "facts" in r["draft"] and "details" in r["draft_before_rules"] for r in rows[2:])
    assert rows[2]["applied_rules"][0]["description"] == "replace 'details' with 'facts'"
    assert [r["description"] for r in streams["rules-only"].rules if r["active"]] == ["replace 'details' with 'facts'"]
    assert json.loads((out / "rules" / "rules-only-s0.json").read_text()) == streams["rules-only"].rules
    for name in ("redline-no-rules", "cipher-5"):
        assert streams[name].rules is None and not (out / "rules" / f"{name}-s0.json").exists()
        assert all(not json.loads(x)["applied_rules"] for x in (out / "logs" / f"{name}-s0.jsonl").read_text()
                   .splitlines())


def test_rule_methods_in_process_and_their_report(tmp_path):
    from redline.evals.harness import EvalConfig, results_from_logs, run_eval
    from redline.evals.methods import parse_methods
    from redline.evals.report import write_report

    out = tmp_path / "out"
    config = EvalConfig(task="summarize", methods=parse_methods(RULE_METHODS), rounds=5, seeds=[0], out=out,
                        workers=2, users_file=_details_user(tmp_path))
    results = run_eval(config, embedder=HashEmbedder(), generator=ScriptedGenerator(_respond))
    _check_rule_streams(out, results)
    summary = write_report(results, out)
    rules = summary["methods"]["rules-only"]["rules"]
    assert rules["per_seed"]["0"]["rounds_applied"] == 3 and rules["active_mean"] == 1
    assert rules["per_seed"]["0"]["applied"] == {"replace 'details' with 'facts'": 3}
    assert summary["methods"]["cipher-5"]["rules"] is None and summary["methods"]["redline"]["rules"] is not None
    report = (out / "report.md").read_text()
    assert "## Edit rules" in report and "| rules-only | 0 | 1 | 1 | 3 of 5 | 3 | replace 'details' with 'facts' ×3 |" \
        in report
    assert write_report(results_from_logs(out), tmp_path / "again")["methods"]["rules-only"]["rules"] == rules


def test_rule_methods_over_http_against_the_real_app(tmp_path):
    from types import SimpleNamespace

    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    import redline.evals.harness as harness
    from redline.agent import Agent, Settings
    from redline.api.app import create_app
    from redline.evals.harness import EvalConfig, run_eval
    from redline.evals.methods import parse_methods

    settings = Settings(data_dir=tmp_path / "server", auth=False)
    agent = Agent(settings, embedder=HashEmbedder(), generator=ScriptedGenerator(_respond))
    app = create_app(settings, agent)
    out = tmp_path / "out"
    with TestClient(app) as client, _learner(agent):
        original = harness.HTTPBackend
        shared = SimpleNamespace(request=client.request, close=lambda: None)  # one app client for every stream
        harness.HTTPBackend = lambda method, url, **kwargs: original(method, url, client=shared)
        try:
            config = EvalConfig(task="summarize", methods=parse_methods(RULE_METHODS), rounds=5, seeds=[0], out=out,
                                workers=1, target="http://testserver", users_file=_details_user(tmp_path))
            results = run_eval(config, embedder=HashEmbedder(), generator=None)
        finally:
            harness.HTTPBackend = original
    assert results["skipped"] == {}
    _check_rule_streams(out, results)


def test_report_from_logs_of_a_stopped_run(tmp_path):
    from click.testing import CliRunner

    from redline.cli import cli
    from redline.evals.harness import EvalConfig, results_from_logs, run_eval
    from redline.evals.methods import parse_methods

    out = tmp_path / "out"
    config = EvalConfig(task="email", methods=parse_methods("no-learning,cipher-1"), rounds=5, seeds=[0], out=out,
                        workers=2)
    run_eval(config, embedder=HashEmbedder(), generator=ScriptedGenerator(_respond))
    log = out / "logs" / "cipher-1-s0.jsonl"
    log.write_text("".join(log.read_text().splitlines(keepends=True)[:3]))  # as if stopped after round 3
    results = results_from_logs(out)
    assert [len(s.costs) for s in results["streams"]] == [3, 3] and results["config"]["rounds_completed"] == 3
    res = CliRunner().invoke(cli, ["eval", "--task", "email", "--out", str(out), "--report-only"])
    assert res.exit_code == 0, res.output
    assert "| cipher-1 |" in res.output and "3 (of 5 requested" in (out / "report.md").read_text()
    res = CliRunner().invoke(cli, ["eval", "--task", "email", "--out", str(tmp_path / "none"), "--report-only"])
    assert res.exit_code == 1 and "cannot rebuild the report from" in res.output


def test_nearest_edits(tmp_path):
    from redline.agent import Agent, Settings

    agent = Agent(Settings(data_dir=tmp_path), embedder=HashEmbedder(), generator=ScriptedGenerator())
    assert agent.nearest_edits("ann", "cats and dogs", 3) == []
    for ctx, edit in (("cats and dogs play", "cats!"), ("stock markets fall", "stocks!"), ("dogs bark", "dogs!")):
        r = agent.generate("ann", ctx, "summarize")
        agent.submit_edit(r.interaction_id, edit)
    pairs = agent.nearest_edits("ann", "cats and dogs play", 2)
    assert [e for _, e in pairs] == ["cats!", "dogs!"] and pairs[0][0] == "draft 0"


def test_replay_lamp_with_scripted_generator(tmp_path):
    from redline.evals.methods import parse_methods
    from redline.evals.replay import run_replay, write_replay_report

    res = run_replay(parse_methods("cipher-1,oracle"), tmp_path, embedder=HashEmbedder(),
                     generator=ScriptedGenerator(lambda p, i: "A revised paragraph."), learn_edits=2, held_out=2)
    assert set(res["writers"]) == {"W3", "W12", "W16"}
    assert {"unrevised", "no-learning", "cipher-1"} <= set(res["writers"]["W3"])
    assert "oracle" in res["skipped"]
    assert "| W3 |" in write_replay_report(res, tmp_path)
    assert (tmp_path / "replay_cost.png").read_bytes()[:4] == b"\x89PNG"


def _echo(prompt, i):
    """Revises by returning the text as given (so the writers' own edits are what rules learn from)."""
    content = prompt[-1]["content"]
    if "Text:\n" not in content:
        return "plain words"
    return content.split("Text:\n", 1)[1].split("\n\nWrite it to suit", 1)[0]


def test_replay_lamp_reports_rules_on_vs_off(tmp_path):
    from redline.evals.methods import parse_methods
    from redline.evals.replay import run_replay, write_replay_report

    res = run_replay(parse_methods("redline,redline-no-rules,rules-only"), tmp_path, embedder=HashEmbedder(),
                     generator=ScriptedGenerator(_echo), learn_edits=8, held_out=6)
    for writer in ("W3", "W12"):
        assert {"redline", "redline-no-rules", "rules-only"} <= set(res["writers"][writer])
        assert set(res["rules"][writer]) == {"redline", "rules-only"}  # no rules without them
        effect = res["rules"][writer]["redline"]
        assert effect["held_out"] == 6 and 0 <= effect["fired"] <= 6 and effect["better"] + effect["worse"] <= \
            effect["fired"]
        logged = [json.loads(x) for x in (tmp_path / "logs" / f"{writer}-redline.jsonl").read_text().splitlines()]
        fired = [e for e in logged if e["applied_rules"]]
        assert len(fired) == effect["fired"]
        assert sum(e["cost_before_rules"] for e in fired) == effect["cost_without_rules"]
        assert all(e["revision_before_rules"] != e["revision"] for e in fired)
    report = write_replay_report(res, tmp_path)
    assert "## Edit rules" in report and "| W3 | redline |" in report


def test_replay_lamp_reads_any_folder_of_writers(tmp_path):
    """Any number of writers from any folder of LAMP-format files, named after their files."""
    from redline.evals.lamp import LAMP_DATA
    from redline.evals.methods import parse_methods
    from redline.evals.replay import run_replay

    rows = json.loads((LAMP_DATA / "lamp_W3_edits.json").read_text())[:4]
    data = tmp_path / "writers"
    data.mkdir()
    for name in ("ann", "bo", "cy"):
        (data / f"lamp_{name}_edits.json").write_text(json.dumps(rows))
    res = run_replay(parse_methods("cipher-1"), tmp_path / "out", embedder=HashEmbedder(),
                     generator=ScriptedGenerator(lambda p, i: "A revised paragraph."), learn_edits=2, data=data)
    assert set(res["writers"]) == {"ann", "bo", "cy"}


def test_http_backend_against_a_mock_transport():
    import httpx

    from redline.evals.backends import BackendError, HTTPBackend
    from redline.evals.methods import parse_method

    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, json.loads(request.content) if request.content else None))
        if request.url.path == "/v1/generate":
            return httpx.Response(200, json={"interaction_id": "abc", "text": "draft", "preference": None,
                                             "usage": {"prompt_tokens": 5, "completion_tokens": 2}})
        if request.url.path.endswith("/edit"):
            return httpx.Response(202, json={"cost": 3, "is_edit": True})
        polls = sum(path == "/v1/interactions/abc" for _, path, _ in seen)  # learned at the second poll
        return httpx.Response(200, json={"learning": {"status": "learned" if polls > 1 else "pending",
                                                      "preference": {"id": 1, "text": "brief", "kind": "inferred"}}})

    client = httpx.Client(base_url="http://redline", transport=httpx.MockTransport(handler))
    backend = HTTPBackend(parse_method("cipher-5"), "http://redline", client=client)
    draft = backend.generate("u", "ctx", "summarize", max_tokens=10)
    assert (draft.interaction_id, draft.text, draft.tokens_in, draft.tokens_out) == ("abc", "draft", 5, 2)
    outcome = backend.feedback("abc", "edited")
    assert (outcome.cost, outcome.preference) == (3, "brief")
    assert seen[0][2] == {"user": "u", "context": "ctx", "task": "summarize", "strategy": "greedy", "max_tokens": 10,
                          "rules": False}  # CIPHER alone: the server's edit rules are off for this request
    assert seen[1][:2] == ("POST", "/v1/interactions/abc/edit")
    assert [s[:2] for s in seen[2:]] == [("GET", "/v1/interactions/abc")] * 2  # polled until learned
    for name in ("icl-edit-5", "oracle", "no-learning"):
        with pytest.raises(BackendError, match=f"method {name} is not available over HTTP"):
            HTTPBackend(parse_method(name), "http://redline")
    failing = HTTPBackend(parse_method("cipher-1"), "http://redline", client=httpx.Client(
        base_url="http://redline", transport=httpx.MockTransport(lambda r: httpx.Response(422, json={"x": 1}))))
    with pytest.raises(BackendError, match="/v1/generate answered 422"):
        failing.generate("u", "ctx", "summarize")


def test_harness_over_http_against_the_real_app(tmp_path):
    """--target mode end to end on the real FastAPI app (scripted generator, in-process transport)."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    import redline.evals.harness as harness
    from redline.agent import Agent, Settings
    from redline.api.app import create_app
    from redline.evals.harness import EvalConfig, run_eval
    from redline.evals.methods import parse_methods

    settings = Settings(data_dir=tmp_path / "server", auth=False)
    agent = Agent(settings, embedder=HashEmbedder(), generator=ScriptedGenerator(_respond))
    app = create_app(settings, agent)
    with TestClient(app) as client, _learner(agent):
        original = harness.HTTPBackend

        def backend(method, url, **kwargs):
            return original(method, url, client=client)

        harness.HTTPBackend = backend
        try:
            config = EvalConfig(task="email", methods=parse_methods("no-learning,cipher-5"), rounds=4, seeds=[0],
                                out=tmp_path / "out", workers=1, target="http://testserver")
            results = run_eval(config, embedder=HashEmbedder(), generator=None)
        finally:
            harness.HTTPBackend = original
    assert "no-learning" in results["skipped"]
    (stream,) = results["streams"]
    assert stream.method == "cipher-5" and len(stream.costs) == 4 and stream.tokens_in > 0
    rows = [json.loads(x) for x in (tmp_path / "out" / "logs" / "cipher-5-s0.jsonl").read_text().splitlines()]
    assert rows[0]["preference_used"] is None and rows[-1]["preference_used"]  # learned between rounds


def test_cli_errors_are_one_sentence(tmp_path):
    from click.testing import CliRunner

    from redline.cli import cli

    res = CliRunner().invoke(cli, ["eval", "--task", "summarize", "--methods", "gpt", "--out", str(tmp_path)])
    assert res.exit_code == 1 and res.output.strip().endswith(
        "unknown method 'gpt'; use no-learning, oracle, icl-edit-K, cipher-K, redline, redline-rps, "
        "redline-best_of_n, redline-no-rules or rules-only")
    res = CliRunner().invoke(cli, ["eval", "--task", "summarize", "--seeds", "a", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "seeds must be comma-separated integers" in res.output
    help_text = CliRunner().invoke(cli, ["eval", "--help"]).output
    assert "eval" in cli.commands and "--users-file" in help_text
    assert "--retrain-every" in help_text and "server trains on its own schedule" in " ".join(help_text.split())


def _respond_varied(prompt, i):
    """Like _respond, but a draft depends on the document (so reward features differ between rounds)."""
    content = prompt[-1]["content"]
    if "Combine them" in content or "describe the writing style" in content:
        return _respond(prompt, i)
    section = content.split("Text:\n")[-1].split("\n\nWrite it to suit")[0]
    if content.startswith("Here is a draft"):  # a revision keeps the draft's words (and so the document's)
        return section.replace(" It has details", " It has some details")
    words = [w for w in section.split() if w.isalpha()][-12:]
    return "The text says " + " ".join(words) + ". It has details that matter a great deal!"


def test_each_method_runs_the_agent_with_its_own_aggregation(tmp_path):
    from redline.evals.backends import LocalBackend
    from redline.evals.methods import parse_method

    for name, expected in (("cipher-5", "llm"), ("redline", "vote")):
        backend = LocalBackend(parse_method(name), tmp_path / name, embedder=HashEmbedder(),
                               generator=ScriptedGenerator(), settings={"aggregation": "llm" if expected == "vote"
                                                                        else "vote"})
        try:
            assert backend.agent.settings.aggregation == expected  # the method's, whatever the run's settings say
        finally:
            backend.close()


def test_redline_trains_reward_heads_during_a_run(tmp_path):
    """LocalBackend calls agent.train_rewards() after each learned edit: with --retrain-every 2 the redline
    stream gets reward heads after two edits and later drafts are picked by the reward; cipher-5 never."""
    from redline.evals.harness import EvalConfig, results_from_logs, run_eval
    from redline.evals.methods import parse_methods
    from redline.evals.report import write_report

    methods = parse_methods("cipher-5,redline")
    out = tmp_path / "out"
    config = EvalConfig(task="summarize", methods=methods, rounds=6, seeds=[0], out=out, workers=2,
                        retrain_every=2, command="redline eval test",
                        settings={"reward_min_pairs": 1, "reward_min_confidence": 0.5})  # select from the first pair
    results = run_eval(config, embedder=HashEmbedder(), generator=ScriptedGenerator(_respond_varied))
    summary = write_report(results, out)
    assert [s.selections for s in results_from_logs(out)["streams"]] == [s.selections for s in results["streams"]]
    logs = {n: [json.loads(x) for x in (out / "logs" / f"{n}-s0.jsonl").read_text().splitlines()]
            for n in ("cipher-5", "redline")}
    # the redline stream trained its heads: a checkpoint in its store, trainings logged after rounds 2, 4, 6
    from redline.store import SQLiteStore

    stored = SQLiteStore(out / "stores" / "redline-s0" / "redline.db")
    assert stored.checkpoints.current("reward") is not None
    stored.close()
    trained = [r["round"] for r in logs["redline"] if r["heads_trained"]]
    assert trained[0] == 1 and logs["redline"][1]["heads_trained"]["pairs"] == 2
    sel = [r["selection"] for r in logs["redline"]]
    assert sel[:2] == ["cold-start", "cold-start"] and set(sel[2:]) == {"reward"}, sel
    assert all(r["candidates"] > 1 for r in logs["redline"][2:])
    # every selected round logs the choice: chosen kind and source, every candidate's reward, whether it differs
    for r in logs["redline"][2:]:
        assert r["chosen_kind"] in ("greedy", "revision")
        assert r["chosen_source"] == "target" or r["chosen_source"].startswith("neighbour:")
        assert len(r["candidate_rewards"]) == r["candidates"] and isinstance(r["differs_from_greedy"], bool)
        assert r["distinct_candidates"] >= 1
    assert logs["redline"][0]["differs_from_greedy"] is None and logs["cipher-5"][3]["candidate_rewards"] is None
    differs = [r["differs_from_greedy"] for r in logs["redline"][2:]]
    assert summary["methods"]["redline"]["selection"]["differs_from_greedy"] == pytest.approx(sum(differs) / 4)
    # cipher-5: no heads, no selection
    stored = SQLiteStore(out / "stores" / "cipher-5-s0" / "redline.db")
    assert stored.checkpoints.current("reward") is None
    stored.close()
    assert {r["selection"] for r in logs["cipher-5"]} == {"greedy"}
    assert not any(r["heads_trained"] for r in logs["cipher-5"])
    # config and report record it
    assert json.loads((out / "config.json").read_text())["retrain_every"] == 2
    assert summary["methods"]["redline"]["selection"]["first_reward_round"] == {"0": 3}
    assert summary["methods"]["cipher-5"]["selection"] is None
    report = (out / "report.md").read_text()
    assert "retrained after every 2 new preference pairs" in report and "| redline | seed 0: round 3 of 6 |" in report


def test_redline_without_retraining_stays_cold(tmp_path):
    from redline.evals.harness import EvalConfig, run_eval
    from redline.evals.methods import parse_methods

    methods = parse_methods("redline")
    config = EvalConfig(task="email", methods=methods, rounds=3, seeds=[0], out=tmp_path / "out", workers=1,
                        retrain_every=50)
    (stream,) = run_eval(config, embedder=HashEmbedder(), generator=ScriptedGenerator(_respond_varied))["streams"]
    assert stream.selections == ["cold-start"] * 3


def test_greedy_copies():
    from redline.agent.generators import GreedyCopies

    inner = ScriptedGenerator(lambda p, i: f"text {i}")
    gen = GreedyCopies(inner)
    prompt = [{"role": "user", "content": "one two"}]
    (g,) = gen.generate([prompt], GenerationParams(n=3, temperature=0.0))
    assert g.texts == ["text 0"] * 3 and g.completion_tokens == 3 * 2 and g.prompt_tokens == 2
    assert inner.calls[-1][1].n == 1
    (g,) = gen.generate([prompt], GenerationParams(n=2, temperature=0.7, seed=1))  # sampling: passed through
    assert g.texts == ["text 0", "text 1"] and inner.calls[-1][1].n == 2


def test_the_report_counts_drafts_drafted_again_without_the_preference(tmp_path):
    from redline.evals.harness import EvalConfig, results_from_logs, run_eval
    from redline.evals.methods import parse_methods
    from redline.evals.report import summarize, write_report

    def respond(prompt, i):  # the 0.5B model asked for a preference's line writes the line alone
        content = prompt[-1]["content"]
        if "What the edit changed" in content or "Combine them" in content:
            return "end with the line 'Thanks for reading!'"
        return "Thanks for reading!" if "preference" in content else "The council met. It voted for bike lanes."
    config = EvalConfig(task="summarize", methods=parse_methods("no-learning,cipher-1"), rounds=3, seeds=[0],
                        out=tmp_path / "out", workers=1)
    summary = write_report(run_eval(config, embedder=HashEmbedder(), generator=ScriptedGenerator(respond)),
                           tmp_path / "out")
    assert summary["methods"]["cipher-1"]["drafted_again"] == {"frame lines only": 2}  # rounds 2 and 3
    assert summary["methods"]["no-learning"]["drafted_again"] == {}  # no preference, nothing to draft again
    assert "| 2 (frame lines only) |" in (tmp_path / "out" / "report.md").read_text()
    assert summarize(results_from_logs(tmp_path / "out"))["methods"]["cipher-1"]["drafted_again"] == {
        "frame lines only": 2}


def test_selection_of():
    from redline.evals.backends import selection_of

    assert selection_of("greedy", [{"score": None}]) == "greedy"
    assert selection_of("rps", [{"score": None}]) == "cold-start"
    assert selection_of("rps", [{"score": 0.6}, {"score": 0.4}]) == "reward"
    assert selection_of("best_of_n", None) is None


def test_the_report_counts_looping_drafts(tmp_path):
    from redline.evals.harness import EvalConfig, results_from_logs, run_eval
    from redline.evals.methods import parse_methods
    from redline.evals.report import summarize, write_report

    looping = ScriptedGenerator(lambda p, i: "It rains on the hill. The sky is grey. It rains on the hill.")
    config = EvalConfig(task="summarize", methods=parse_methods("no-learning"), rounds=3, seeds=[0],
                        out=tmp_path / "out", workers=1, settings={"loop_guard": "off"})  # the guard would cut them
    summary = write_report(run_eval(config, embedder=HashEmbedder(), generator=looping), tmp_path / "out")
    assert summary["methods"]["no-learning"]["looping_drafts"] == 3
    assert "| 3 of 3 |" in (tmp_path / "out" / "report.md").read_text()
    assert summarize(results_from_logs(tmp_path / "out"))["methods"]["no-learning"]["looping_drafts"] == 3


def test_a_tldr_user_moves_a_label_run_into_the_paragraph_up_instead_of_writing_it_twice():
    user = one_op_user({"op": "tldr_first", "prefix": "In short:"})
    draft = ("Here's the story.\n\nIn short: Bees carry pollen between flowers. Pollen tubes grow toward the ovule.")
    edited = user.feedback("news", "Bees carry pollen between flowers.", draft).edited
    assert "In short: In short:" not in edited and edited.count("In short:") == 1
    assert edited.splitlines()[0] == "In short: Bees carry pollen between flowers."
    assert "Pollen tubes grow toward the ovule." in edited
