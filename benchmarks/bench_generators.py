"""Generator back-ends side by side on this CPU, through redline's own generator protocol.

``speed`` (default): per back-end, the load time, resident memory, one prompt's tok/s and time to first streamed
token, the aggregate tok/s of 4 and 8 concurrent requests (each its own call, as the server makes them), and the
wall of best-of-4 (one call, ``n=4``) against best-of-1. Prompts are the summarize task's prompt on different
documents, cut to about ``--prompt-tokens`` tokens; answers ``--max-tokens`` tokens at temperature 0.7.

``priority``: requests before background work. One thread sends requests one after another (a summary each, as a
user of ``/v1/generate`` would), another sends learning's preference inferences back to back; the requests'
latency and tok/s are compared: alone, beside inferences of the same priority, beside inferences marked
``background`` (they wait while the server is busy), and beside inferences served by a second llama-server (the
learner loading its own copy of the model).

    .venv/bin/python benchmarks/bench_generators.py speed --backends llama-server,llama-server-2t,transformers
    .venv/bin/python benchmarks/bench_generators.py priority --seconds 120

Writes ``benchmarks/results/bench_generators.json`` (one entry per mode and back-end, with the machine load).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
RESULTS = REPO / "benchmarks" / "results" / "bench_generators.json"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def prompts_of(n: int, prompt_tokens: int) -> list:
    from redline.agent import prompts
    from redline.evals.tasks import load_documents

    docs = [d for d in load_documents("summarize") if len(d.text) > 4 * prompt_tokens] or load_documents("summarize")
    chars = int(prompt_tokens * 3.9)  # ~3.9 characters per token for these English documents (Qwen's tokenizer)
    return [prompts.task_prompt("summarize", docs[i % len(docs)].text[:chars], None, context_chars=chars)
            for i in range(n)]


def build(name: str, args):
    """(generator, load seconds, pid whose memory to read) for one back-end label."""
    from redline.agent.generators.llama_backend import LlamaServerGenerator
    from redline.agent.generators.llama_server import LlamaServer
    from redline.agent.generators.model_files import resolve_gguf, resolve_model

    started = time.perf_counter()
    if name.startswith("llama-server"):
        threads = 2 if name.endswith("-2t") else (1 if name.endswith("-1t") else None)
        server = LlamaServer(resolve_gguf(args.model, args.models_dir), slots=args.slots, context=args.slots * 4096,
                             threads=threads, log_path=REPO / ".redline" / "bench-llama-server.log",
                             extra_args=tuple(shlex.split(args.server_args)))
        # Every answer exactly --max-tokens long, so walls and rates compare like for like.
        gen = LlamaServerGenerator(server=server, timeout=1200, extra_body={"ignore_eos": True}).load()
        return gen, time.perf_counter() - started, server._proc.pid
    if name == "transformers":
        from redline.agent.generators.transformers_backend import TransformersGenerator

        gen = TransformersGenerator(resolve_model(args.model, args.converted_dir or args.models_dir),
                                    dtype="auto").load()
        return gen, time.perf_counter() - started, os.getpid()
    if name == "openai":
        from redline.agent.generators.openai_backend import OpenAIGenerator

        return OpenAIGenerator(args.url, timeout=1200), 0.0, None
    raise SystemExit(f"unknown back-end {name}")


def speed(name: str, args) -> dict:
    from redline.agent.generators import GenerationParams, stream_generation

    gen, load_s, pid = build(name, args)
    params = GenerationParams(temperature=0.7, max_tokens=args.max_tokens, seed=0)
    batch = prompts_of(8, args.prompt_tokens)
    out = {"backend": name, "load_s": round(load_s, 2)}
    try:
        gen.generate(batch[:1], GenerationParams(max_tokens=4))  # warm up (first-call set-up), not timed
        t = time.perf_counter()
        first, tokens, prompt_tokens = None, 0, 0
        for piece in stream_generation(gen, batch[1], params):
            if first is None:
                first = time.perf_counter() - t
            if not isinstance(piece, str):
                tokens, prompt_tokens = piece.completion_tokens, piece.prompt_tokens
        wall = time.perf_counter() - t
        out.update(prompt_tokens=prompt_tokens, one_prompt_tok_s=round(tokens / wall, 1), one_prompt_s=round(wall, 2),
                   one_prompt_tokens=tokens, first_token_s=round(first, 2))
        if args.one_prompt:
            out["rss_mb"] = rss_mb(pid) if pid else None
            return out
        for conc in (4, 8):
            t = time.perf_counter()
            with ThreadPoolExecutor(conc) as pool:
                gens = list(pool.map(lambda p: gen.generate([p], params)[0], batch[:conc]))
            wall = time.perf_counter() - t
            out[f"aggregate_tok_s_{conc}"] = round(sum(g.completion_tokens for g in gens) / wall, 1)
            out[f"wall_s_{conc}"] = round(wall, 1)
        for n in (1, 4):
            t = time.perf_counter()
            got = gen.generate(batch[2:3], GenerationParams(n=n, temperature=0.8, max_tokens=args.max_tokens, seed=1))
            out[f"best_of_{n}_s"] = round(time.perf_counter() - t, 2)
            out[f"best_of_{n}_tokens"] = got[0].completion_tokens
        out["best_of_4_over_1"] = round(out["best_of_4_s"] / out["best_of_1_s"], 2)
        out["rss_mb"] = rss_mb(pid) if pid else None
    finally:
        if hasattr(gen, "close"):
            gen.close()
        out.update(machine_load=round(os.getloadavg()[0], 2), date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    return out


def priority(args) -> dict:
    """Requests' latency alone, beside request-priority inferences, beside background ones, beside a second
    server's inferences."""
    import dataclasses

    from redline.agent import prompts
    from redline.agent.edit_analysis import edit_evidence
    from redline.agent.generators import GenerationParams
    from redline.agent.generators.llama_backend import LlamaServerGenerator
    from redline.agent.generators.llama_server import LlamaServer
    from redline.agent.generators.model_files import resolve_gguf

    model = resolve_gguf(args.model, args.models_dir)
    request_prompts = prompts_of(16, args.prompt_tokens)
    draft = "The council approved new bike lanes. The plan takes five years. Safety data was cited."
    edited = "- Council approves bike lanes\n- Five-year plan\n- Safety data cited"
    inference = prompts.inference_prompt("summarize", edited, edit_evidence(draft, edited))
    request = GenerationParams(temperature=0.7, max_tokens=args.max_tokens, seed=0)
    learn = GenerationParams(temperature=0.0, max_tokens=80, stop=("\n\n",))

    def server(threads=None):
        return LlamaServerGenerator(server=LlamaServer(model, slots=args.slots, context=args.slots * 4096,
                                                       threads=threads, log_path=REPO / ".redline" /
                                                       "bench-llama-server.log"), timeout=1200).load()

    def run(serving, learning, learn_params) -> dict:
        stop, latencies, tokens, learned = threading.Event(), [], [], [0]

        def learner():
            while not stop.is_set():
                learning.generate([inference], learn_params)
                learned[0] += 1

        thread = threading.Thread(target=learner, daemon=True) if learning is not None else None
        if thread:
            thread.start()
            time.sleep(1.0)  # the learner is busy before the first request
        started = time.perf_counter()
        i = 0
        while time.perf_counter() - started < args.seconds:
            t = time.perf_counter()
            g = serving.generate([request_prompts[i % len(request_prompts)]], request)[0]
            latencies.append(time.perf_counter() - t)
            tokens.append(g.completion_tokens)
            i += 1
        stop.set()
        if thread:
            thread.join()
        return {"requests": len(latencies), "latency_p50_s": round(statistics.median(latencies), 2),
                "latency_max_s": round(max(latencies), 2),
                "request_tok_s": round(sum(tokens) / sum(latencies), 1),
                "inferences": learned[0], "machine_load": round(os.getloadavg()[0], 2)}

    out = {}
    shared = server()
    try:
        out["requests alone"] = run(shared, None, learn)
        out["beside inferences, same priority"] = run(shared, shared, learn)
        out["beside inferences, background priority"] = run(
            shared, shared, dataclasses.replace(learn, priority="background"))
    finally:
        shared.close()
    first, second = server(threads=1), server(threads=1)
    try:
        out["beside inferences on a second llama-server (1 thread each)"] = run(first, second, learn)
    finally:
        first.close()
        second.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", nargs="?", default="speed", choices=["speed", "priority"])
    ap.add_argument("--backends", default="llama-server,transformers",
                    help="comma-separated: llama-server (default threads), llama-server-1t, llama-server-2t, "
                         "transformers, openai (at --url)")
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--models-dir", default=str(REPO / ".redline" / "models"))
    ap.add_argument("--converted-dir", help="where transformers' converted model folders are (default: --models-dir)")
    ap.add_argument("--url", default="http://127.0.0.1:8000/v1")
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--prompt-tokens", type=int, default=600)
    ap.add_argument("--max-tokens", type=int, default=150)
    ap.add_argument("--server-args", default="", help="more llama-server arguments for the llama-server back-ends "
                                                      "(e.g. '--poll 0'; results are keyed by back-end and these)")
    ap.add_argument("--seconds", type=float, default=120, help="priority: length of each phase")
    ap.add_argument("--one-prompt", action="store_true", help="speed: only load, memory, one prompt's tok/s and first "
                                                              "token (minutes instead of most of an hour on CPU)")
    args = ap.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if args.mode == "speed":
        for name in args.backends.split(","):
            result = speed(name, args)
            print(json.dumps(result), flush=True)
            key = f"{name} {args.server_args}".strip() if name.startswith("llama-server") else name
            result["server_args"] = args.server_args if name.startswith("llama-server") else ""
            results.setdefault("speed-one-prompt" if args.one_prompt else "speed", {})[key] = result
    else:
        result = priority(args)
        print(json.dumps(result, indent=2), flush=True)
        results["priority"] = result
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
