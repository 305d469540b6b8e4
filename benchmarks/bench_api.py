"""Load test of the HTTP server on loopback, on a store seeded with USERS x EDITS past learned edits.

The server runs in a subprocess (the real app on uvicorn, auth on) with the scripted generator
(``redline.testing.server``), whose call takes ~0.1 ms, so /generate's latency is everything but the
generator call: auth, validation, embedding the context (MiniLM on CPU), FAISS retrieval over the
user's past contexts, aggregation-cache lookup, storing the interaction. The learning worker runs
during the test, as in production.

Default run, in this order: the embedder's own batched throughput on the /generate contexts (in this process,
batches of 32, while the server idles); /generate at each concurrency with no retrain running; /generate at the
highest concurrency again while the server retrains its reward heads (started by learning a few edits), and the
p95 ratio of the two; then edits at each concurrency with the learner (and any retrain) running.
``--learning``: a 32-client edit load for ``--learning-seconds``, sampling /metrics: learned jobs per second
during and after the load, the backlog's peak, the time to drain it, and the retrains that ran meanwhile.
``--retrieval``: the server's retrieval time per /generate on stores of 100 and of 10,000 users.
Each mode updates its own part of ``--out``.

    .venv/bin/python benchmarks/bench_api.py                      # 1000 users x 50 edits; 1, 8, 32 clients
    .venv/bin/python benchmarks/bench_api.py --learning           # the learning queue under a 32-client edit load
    .venv/bin/python benchmarks/bench_api.py --retrieval          # retrieval cost at 100 vs 10,000 users
    .venv/bin/python benchmarks/bench_api.py --users 100 --edits 10 --requests 100 --generate-requests 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from redline.store import Store, now_iso, vector_to_blob  # noqa: E402
from redline.testing.server import wait_ready  # noqa: E402

WORDS = ("budget transit council report revenue growth team launch demo schedule customer product review "
         "summary quarterly market policy research paper results method data model training city school").split()


def seed(store: Store, users: int, edits: int, fresh: int, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """USERS users with EDITS learned edits each (interaction, edit, preference with vector, pair), plus
    ``fresh`` interactions without an edit; returns (user names, fresh interaction ids)."""
    names = [f"user{i:05d}" for i in range(users)]
    fresh_ids = []
    stamp = now_iso()
    with store.transaction() as conn:
        for u, name in enumerate(names):
            conn.execute("INSERT INTO users (tenant, name, created_at, version) VALUES ('bench', ?, ?, 0)",
                         (name, stamp))
            uid = conn.execute("SELECT id FROM users WHERE tenant = 'bench' AND name = ?", (name,)).fetchone()[0]
            vectors = rng.standard_normal((edits, 384)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            rows_i, rows_e, rows_p, rows_pair = [], [], [], []
            for j in range(edits):
                iid = uuid.uuid4().hex
                context = " ".join(rng.choice(WORDS, 60))
                draft, edited = " ".join(rng.choice(WORDS, 30)), " ".join(rng.choice(WORDS, 25))
                rows_i.append((iid, uid, "summarize", context, vector_to_blob(vectors[j]), "[]", draft, None, "[]",
                               "[]", "[]", "greedy", "bench", 0, 0, "{}", stamp))
                rows_e.append((iid, uid, edited, 10, 1, stamp, stamp))
                rows_p.append((uid, f"preference {j % 7} of {name}", "inferred", vector_to_blob(vectors[j]), iid,
                               stamp, stamp))
                rows_pair.append((uid, iid, context, edited, draft, stamp))
            conn.executemany("INSERT INTO interactions (id, user_id, task, context, context_vector, prompt, draft,"
                             " preference_used, preference_ids, neighbours, candidates, strategy, model, tokens_in,"
                             " tokens_out, timings, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows_i)
            conn.executemany("INSERT INTO edits (interaction_id, user_id, edited_text, cost, is_edit, created_at,"
                             " learned_at) VALUES (?,?,?,?,?,?,?)", rows_e)
            conn.executemany("INSERT INTO preferences (user_id, text, kind, context_vector, interaction_id,"
                             " created_at, updated_at, user_edited) VALUES (?,?,?,?,?,?,?,0)", rows_p)
            conn.executemany("INSERT INTO pairs (user_id, interaction_id, context, chosen, rejected, source,"
                             " created_at) VALUES (?,?,?,?,?, 'edit', ?)", rows_pair)
        for k in range(fresh):
            uid = 1 + k % users
            iid = uuid.uuid4().hex
            vector = rng.standard_normal(384).astype(np.float32)
            conn.execute("INSERT INTO interactions (id, user_id, task, context, context_vector, prompt, draft,"
                         " preference_used, preference_ids, neighbours, candidates, strategy, model, tokens_in,"
                         " tokens_out, timings, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                         (iid, uid, "summarize", " ".join(rng.choice(WORDS, 60)),
                          vector_to_blob(vector / np.linalg.norm(vector)), "[]", " ".join(rng.choice(WORDS, 30)),
                          None, "[]", "[]", "[]", "greedy", "bench", 0, 0, "{}", stamp))
            fresh_ids.append(iid)
    return names, fresh_ids


def start_server(data_dir: Path, **env: str) -> tuple[subprocess.Popen, str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("REDLINE_")}, **env}
    env.update(REDLINE_DATA_DIR=str(data_dir), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    log = open(data_dir / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "redline.testing.server", "--port", "0"], cwd=REPO, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    end = time.monotonic() + 180
    url = None
    while time.monotonic() < end and url is None:
        found = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", (data_dir / "server.log").read_text())
        url = found.group(1) if found else None
        if proc.poll() is not None:
            raise SystemExit((data_dir / "server.log").read_text())
        time.sleep(0.1)
    wait_ready(url, end - time.monotonic())
    return proc, url


def stop_server(proc: subprocess.Popen) -> float:
    """SIGTERM, then the seconds until the process exited (killed after 60 s)."""
    start = time.perf_counter()
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    return round(time.perf_counter() - start, 2)


def quantile(xs: list[float], p: float) -> float | None:
    return round(float(np.percentile(xs, p)), 2) if xs else None


async def run_level(url: str, key: str, concurrency: int, requests: list[tuple[str, dict]]) -> dict:
    """Send ``requests`` with ``concurrency`` clients; latency of each, wall time, server timings."""
    queue: asyncio.Queue = asyncio.Queue()
    for r in requests:
        queue.put_nowait(r)
    latencies, server_ms, retrieve_ms, statuses = [], [], [], {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, limits=limits,
                                 timeout=300) as client:
        async def worker():
            while not queue.empty():
                path, body = queue.get_nowait()
                t0 = time.perf_counter()
                resp = await client.post(path, json=body)
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
                if resp.status_code == 200 and "timings_ms" in resp.json():
                    t = resp.json()["timings_ms"]
                    server_ms.append(sum(v for k, v in t.items() if k != "generate_ms"))
                    retrieve_ms.append(t.get("retrieve_ms", 0.0))

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    out = {"concurrency": concurrency, "requests": len(requests), "statuses": statuses,
           "per_second": round(len(requests) / wall, 1), "p50_ms": quantile(latencies, 50),
           "p95_ms": quantile(latencies, 95)}
    if server_ms:
        out.update(server_non_generation_p50_ms=quantile(server_ms, 50), server_non_generation_p95_ms=quantile(
            server_ms, 95), retrieve_p50_ms=quantile(retrieve_ms, 50), retrieve_p95_ms=quantile(retrieve_ms, 95))
    return out


def server_metrics(url: str) -> dict:
    """The learning figures from /metrics: queue depth, jobs learned, retrains finished, a retrain running."""
    from prometheus_client.parser import text_string_to_metric_families

    found = {"queue_depth": 0.0, "learned": 0.0, "retrains": 0.0, "retraining": 0.0}
    for family in text_string_to_metric_families(httpx.get(url + "/metrics", timeout=60).text):
        for sample in family.samples:
            if sample.name == "redline_learning_queue_depth":
                found["queue_depth"] = sample.value
            elif sample.name == "redline_learning_seconds_count" and sample.labels.get("outcome") == "learned":
                found["learned"] = sample.value
            elif sample.name == "redline_reward_retrain_seconds_count":
                found["retrains"] = sample.value
            elif sample.name == "redline_reward_retraining":
                found["retraining"] = sample.value
    return found


def wait_for(check, timeout: float, every: float = 0.5) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(every)
    return False


def embedder_throughput(texts: list[str], batch: int = 32, rounds: int = 2) -> dict:
    """The embedder's own throughput on ``texts`` in batches of ``batch`` (this process, best of ``rounds``)."""
    from redline.retrieval import Embedder

    embedder = Embedder()
    embedder.encode(texts[:batch])  # load and warm up
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(0, len(texts), batch):
            embedder.encode(texts[i:i + batch])
        best = max(best, len(texts) / (time.perf_counter() - start))
    return {"batch": batch, "texts": len(texts), "per_second": round(best, 1)}


def edit_requests(fresh, rng: np.random.Generator, n: int) -> list[tuple[str, dict]]:
    return [(f"/v1/interactions/{next(fresh)}/edit", {"edited_text": " ".join(rng.choice(WORDS, 25))})
            for _ in range(n)]


def generate_requests(names: list[str], rng: np.random.Generator, n: int) -> list[tuple[str, dict]]:
    return [("/v1/generate", {"user": names[int(rng.integers(len(names)))], "context": " ".join(rng.choice(WORDS, 80))})
            for _ in range(n)]


def seeded_server(data: Path, args, fresh: int, rng: np.random.Generator, **env: str):
    store = Store(data / "redline.db")
    t0 = time.perf_counter()
    names, fresh_ids = seed(store, args.users, args.edits, fresh, rng)
    key, _ = store.keys.create("bench", "bench")
    counts = store.counts()
    store.close()
    print(f"seeded {counts} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    # Retrains start only when edits are learned (not on the 300 s timer), so each phase knows whether one runs.
    proc, url = start_server(data, REDLINE_MAINTENANCE_INTERVAL="86400", **env)
    return proc, url, key, names, iter(fresh_ids), counts


def run(url: str, key: str, level: int, requests: list, label: str) -> dict:
    res = asyncio.run(run_level(url, key, level, requests))
    print(f"{label:18s} c={level:<3d} {res}", file=sys.stderr)
    return res


def default_run(args, levels: list[int], rng: np.random.Generator) -> dict:
    with tempfile.TemporaryDirectory(prefix="redline-bench-") as tmp:
        data = Path(tmp)
        proc, url, key, names, fresh, counts = seeded_server(data, args, args.requests * len(levels) + 100, rng)
        results: dict = {"edit": [], "generate": []}
        try:
            gens = {level: generate_requests(names, rng, args.generate_requests) for level in levels}
            top = max(levels)
            contexts = [body["context"] for _, body in gens[top]]
            results["embedder_batched"] = embedder_throughput(contexts)
            print(f"embedder alone: {results['embedder_batched']}", file=sys.stderr)
            for level in levels:
                results["generate"].append(run(url, key, level, gens[level], "generate"))
            # A retrain: learn 40 edits (the retraining threshold is 20 new pairs) and wait until it runs.
            run(url, key, 8, edit_requests(fresh, rng, 40), "edit (to retrain)")
            started = wait_for(lambda: server_metrics(url)["retraining"] == 1, 120)
            during = run(url, key, top, generate_requests(names, rng, args.generate_requests), "generate+retrain")
            during["retrain_running_at_start"] = started
            during["retrain_running_at_end"] = server_metrics(url)["retraining"] == 1
            results["generate_during_retrain"] = during
            for level in levels:
                results["edit"].append(run(url, key, level, edit_requests(fresh, rng, args.requests), "edit"))
            results["after"] = server_metrics(url)
        finally:
            results["shutdown_seconds"] = stop_server(proc)
    no_retrain = next(r for r in results["generate"] if r["concurrency"] == top)
    results["ratios"] = {
        "generate_p95_during_retrain_over_without": round(during["p95_ms"] / no_retrain["p95_ms"], 2),
        "generate_per_second_over_embedder_batched": round(
            no_retrain["per_second"] / results["embedder_batched"]["per_second"], 2),
    }
    return {"users": args.users, "past_edits_per_user": args.edits, "store_rows": counts, **results}


def learning_run(args, rng: np.random.Generator) -> dict:
    """A 32-client edit load for ``--learning-seconds``; /metrics sampled every half second until the backlog
    is learned (or ``--drain-timeout``); then SIGTERM with whatever is still queued."""
    rate_guess = 600  # edits a second at most: enough fresh interactions for the whole load
    with tempfile.TemporaryDirectory(prefix="redline-bench-") as tmp:
        data = Path(tmp)
        proc, url, key, names, fresh, counts = seeded_server(data, args, int(rate_guess * args.learning_seconds),
                                                             rng)
        samples: list[dict] = []
        stop_sampling = False

        async def sample():
            while not stop_sampling:
                m = await asyncio.to_thread(server_metrics, url)
                samples.append({"t": time.perf_counter(), **m})
                await asyncio.sleep(0.5)

        async def load() -> dict:
            nonlocal stop_sampling
            sampler = asyncio.create_task(sample())
            end = time.perf_counter() + args.learning_seconds
            sent, latencies = 0, []
            limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
            async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, limits=limits,
                                         timeout=300) as client:
                async def worker():
                    nonlocal sent
                    while time.perf_counter() < end:
                        path, body = edit_requests(fresh, rng, 1)[0]
                        t0 = time.perf_counter()
                        resp = await client.post(path, json=body)
                        latencies.append((time.perf_counter() - t0) * 1000)
                        sent += resp.status_code == 202

                start = time.perf_counter()
                await asyncio.gather(*(worker() for _ in range(32)))
                wall = time.perf_counter() - start
            load_end = time.perf_counter()
            drained = await asyncio.to_thread(
                wait_for, lambda: samples and samples[-1]["t"] > load_end and samples[-1]["queue_depth"] == 0,
                args.drain_timeout)
            stop_sampling = True
            await sampler
            return {"accepted": sent, "accepted_per_second": round(sent / wall, 1), "p50_ms": quantile(latencies, 50),
                    "p95_ms": quantile(latencies, 95), "load_start": start, "load_end": load_end, "drained": drained}

        try:
            loaded = asyncio.run(load())
            pending_at_stop = server_metrics(url)["queue_depth"]
        finally:
            shutdown = stop_server(proc)
    start, end = loaded.pop("load_start"), loaded.pop("load_end")
    first = samples[0]
    at_end = min(samples, key=lambda s: abs(s["t"] - end))
    last = samples[-1]
    drained_at = next((s["t"] for s in samples if s["t"] > end and s["queue_depth"] == 0), None)
    during_backlog = [s for s in samples if s["queue_depth"] > 0]
    report = {
        "clients": 32, "load_seconds": args.learning_seconds, **loaded,
        "learned_per_second_during_load": round((at_end["learned"] - first["learned"]) / (at_end["t"] - start), 1),
        "learned_per_second_after_load": round((last["learned"] - at_end["learned"]) / max(last["t"] - at_end["t"],
                                                                                            1e-9), 1),
        "backlog_peak": int(max(s["queue_depth"] for s in samples)),
        "seconds_to_drain_after_load": round(drained_at - end, 1) if drained_at else None,
        "retrains_finished_during_backlog": int(sum(
            1 for a, b in zip(samples, samples[1:]) if b["retrains"] > a["retrains"] and a["queue_depth"] > 0)),
        "retrain_running_while_backlog_samples": sum(1 for s in during_backlog if s["retraining"] == 1),
        "backlog_samples": len(during_backlog),
        "pending_at_shutdown": int(pending_at_stop), "shutdown_seconds": shutdown,
    }
    print(f"learning: {report}", file=sys.stderr)
    return report


def retrieval_run(args, rng: np.random.Generator) -> dict:
    """The server's retrieve_ms per /generate (8 clients, random users) on a store of 100 and of 10,000 users with
    the same history per user."""
    out = {}
    for users in (100, 10_000):
        sized = argparse.Namespace(**{**vars(args), "users": users, "edits": args.retrieval_edits})
        with tempfile.TemporaryDirectory(prefix="redline-bench-") as tmp:
            proc, url, key, names, _, counts = seeded_server(Path(tmp), sized, 0, rng)
            try:
                res = run(url, key, 8, generate_requests(names, rng, args.generate_requests), f"retrieval {users}")
            finally:
                stop_server(proc)
        out[str(users)] = {"store_rows": counts, "retrieve_p50_ms": res["retrieve_p50_ms"],
                           "retrieve_p95_ms": res["retrieve_p95_ms"], "generate_p50_ms": res["p50_ms"]}
    out["retrieve_p50_ratio_10000_over_100"] = round(out["10000"]["retrieve_p50_ms"] / out["100"]["retrieve_p50_ms"], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--edits", type=int, default=50, help="Past learned edits per user.")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--requests", type=int, default=400, help="Edit requests per concurrency level.")
    parser.add_argument("--generate-requests", type=int, default=100, help="Generate requests per concurrency level.")
    parser.add_argument("--learning", action="store_true", help="Report the learning queue under a 32-client load.")
    parser.add_argument("--learning-seconds", type=float, default=60.0, help="Length of the --learning edit load.")
    parser.add_argument("--drain-timeout", type=float, default=900.0, help="Longest wait for the backlog to drain.")
    parser.add_argument("--retrieval", action="store_true", help="Retrieval time at 100 vs 10,000 users.")
    parser.add_argument("--retrieval-edits", type=int, default=10, help="Past edits per user for --retrieval.")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bench_api.json")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    report = json.loads(args.out.read_text()) if args.out.exists() else {}
    report.update(machine={"cpus": os.cpu_count(), "python": platform.python_version(),
                           "load_average_at_start": [round(x, 1) for x in os.getloadavg()]},
                  generator="scripted (~0.1 ms per call): generate latency = everything but the generator call")
    if args.learning:
        report["learning"] = learning_run(args, rng)
    elif args.retrieval:
        report["retrieval"] = retrieval_run(args, rng)
    else:
        for stale in ("users", "past_edits_per_user", "store_rows"):  # the layout before --learning/--retrieval
            report.pop(stale, None)
        report["results"] = default_run(args, [int(x) for x in args.concurrency.split(",")], rng)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    if "results" in report and not args.learning and not args.retrieval:
        results = report["results"]
        print("\n| route | clients | req/s | p50 ms | p95 ms |\n|---|---|---|---|---|")
        for route in ("edit", "generate"):
            for r in results[route]:
                print(f"| {route} | {r['concurrency']} | {r['per_second']} | {r['p50_ms']} | {r['p95_ms']} |")
        d = results["generate_during_retrain"]
        print(f"| generate, retrain running | {d['concurrency']} | {d['per_second']} | {d['p50_ms']} | {d['p95_ms']} |")
        print(f"\nratios: {results['ratios']}")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
