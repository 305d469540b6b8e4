"""Load test of ``redline serve`` on loopback, on a store seeded with USERS x EDITS past learned edits.

What runs is the real thing: ``redline serve --api-workers N`` (the supervisor, N API processes sharing the port, one
learner process; auth on), in front of the scripted OpenAI-compatible generator server (``doubles.server`` in tests/,
its own process), whose answer takes well under a millisecond, so /generate's latency is everything but the
generator: auth, validation, embedding the context (MiniLM on CPU), FAISS retrieval over the user's past contexts,
the aggregation-cache lookup, storing the interaction; an edit's is auth, the edit cost, its durable commit with its
job. The learner learns every accepted edit during the run (one inference call each at the generator server) and
retrains the reward heads as in production. The client (plain keep-alive HTTP/1.1 connections on asyncio, one per
simulated client) runs on the same machine: on a small one it takes its share of the cores (``client_cpu_seconds``).

Default run, for each N of ``--api-workers`` (default 1 and 2, side by side): the embedder's own batched throughput
on the /generate contexts (in this process, once); /generate at each concurrency with no retrain running; /generate
at the highest concurrency, ``--retrain-requests`` of them with no retrain running and at once the same number again
while the learner retrains the reward heads (started by learning a few edits), and the p95 ratio of the two; then
edits at each concurrency with the learner (and any retrain) running.
``--learning``: a 32-client edit load for ``--learning-seconds``, sampling /metrics: edits accepted, learned jobs per
second during and after the load, the queue's depth (its peak and its samples), the time to drain it after the load,
the retrains that ran meanwhile, and the shutdown. ``--retrieval``: the server's retrieval time per /generate on
stores of 100 and of 10,000 users, for 1 and 8 clients, to users whose index the process builds (cold) or holds
(warm). ``--profile DIR``: py-spy records every redline process (``pip install py-spy``) during the edit load at
the highest concurrency (default run) or the whole load (``--learning``), one folded-stack file per process, and
prints where the time goes. Each mode updates its own part of ``--out``; every figure is
stamped with the machine's load average (``uptime``) before and after.

    .venv/bin/python benchmarks/bench_api.py                      # 1000 users x 50 edits; 1 and 2 API processes
    .venv/bin/python benchmarks/bench_api.py --learning           # the learning queue under a 32-client edit load
    .venv/bin/python benchmarks/bench_api.py --retrieval          # retrieval cost at 100 vs 10,000 users
    .venv/bin/python benchmarks/bench_api.py --profile benchmarks/results/profile   # where the time goes
    .venv/bin/python benchmarks/bench_api.py --users 100 --edits 10 --requests 100 --generate-requests 30
    .venv/bin/python benchmarks/bench_api.py --database-url auto  # the default run on SQLite and on PostgreSQL

``--database-url auto|URL``: the default run twice in one go, on SQLite and on PostgreSQL (``auto``: a throwaway
PostgreSQL 15 server on loopback with fsync on, ``doubles.postgres`` in tests/; a URL: a new schema in that database
for each run), written to ``benchmarks/results/bench_api_postgres.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import platform
import re
import resource
import shutil
import signal
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
sys.path.insert(0, str(REPO / "tests"))  # the test doubles: the scripted generator, a throwaway PostgreSQL

from redline.policies import FEATURES_VERSION  # noqa: E402
from redline.policies.edit_features import NAMES  # noqa: E402
from redline.store import Store, now_iso, open_store, vector_to_blob  # noqa: E402

WORDS = ("budget transit council report revenue growth team launch demo schedule customer product review "
         "summary quarterly market policy research paper results method data model training city school").split()


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def seed(store: Store, users: int, edits: int, fresh: int, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """USERS users with EDITS learned edits each (interaction, edit, preference with vector, pair with its reward
    features, as learning stores them), plus ``fresh`` interactions without an edit; returns (user names, fresh
    interaction ids). The features are random numbers of the right shape: a retraining costs what it costs on
    real ones (the same fit on the same number of rows)."""
    names = [f"user{i:05d}" for i in range(users)]
    fresh_ids = []
    stamp = now_iso()
    with store._sql.transaction() as conn:  # bulk rows, written as learning would have (a private door)
        for u, name in enumerate(names):
            conn.execute("INSERT INTO users (tenant, name, created_at, version) VALUES ('bench', ?, ?, 0)",
                         (name, stamp))
            uid = conn.execute("SELECT id FROM users WHERE tenant = 'bench' AND name = ?", (name,)).fetchone()[0]
            vectors = rng.standard_normal((edits, 384)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            features = rng.standard_normal((edits, len(NAMES))) * 0.1
            rows_i, rows_e, rows_p = [], [], []
            for j in range(edits):
                iid = uuid.uuid4().hex
                context = " ".join(rng.choice(WORDS, 60))
                draft, edited = " ".join(rng.choice(WORDS, 30)), " ".join(rng.choice(WORDS, 25))
                rows_i.append((iid, uid, "summarize", context, vector_to_blob(vectors[j]), "[]", draft, None, "[]",
                               "[]", "[]", "greedy", "bench", 0, 0, "{}", stamp))
                rows_e.append((iid, uid, edited, 10, 1, stamp, stamp))
                rows_p.append((uid, f"preference {j % 7} of {name}", "inferred", vector_to_blob(vectors[j]), iid,
                               stamp, stamp))
                pair = conn.execute("INSERT INTO pairs (user_id, interaction_id, context, chosen, rejected, source,"
                                    " created_at) VALUES (?,?,?,?,?, 'edit', ?) RETURNING id",
                                    (uid, iid, context, edited, draft, stamp)).fetchone()[0]
                conn.execute("INSERT INTO pair_features (pair_id, user_id, version, features) VALUES (?,?,?,?)",
                             (pair, uid, FEATURES_VERSION, features[j].astype(np.float64).tobytes()))
            conn.executemany("INSERT INTO interactions (id, user_id, task, context, context_vector, prompt, draft,"
                             " preference_used, preference_ids, neighbours, candidates, strategy, model, tokens_in,"
                             " tokens_out, timings, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows_i)
            conn.executemany("INSERT INTO edits (interaction_id, user_id, edited_text, cost, is_edit, created_at,"
                             " learned_at) VALUES (?,?,?,?,?,?,?)", rows_e)
            conn.executemany("INSERT INTO preferences (user_id, text, kind, context_vector, interaction_id,"
                             " created_at, updated_at, user_edited) VALUES (?,?,?,?,?,?,?,0)", rows_p)
        rows = []
        for k in range(fresh):
            uid = 1 + k % users
            iid = uuid.uuid4().hex
            vector = rng.standard_normal(384).astype(np.float32)
            rows.append((iid, uid, "summarize", " ".join(rng.choice(WORDS, 60)),
                         vector_to_blob(vector / np.linalg.norm(vector)), "[]", " ".join(rng.choice(WORDS, 30)),
                         None, "[]", "[]", "[]", "greedy", "bench", 0, 0, "{}", stamp))
            fresh_ids.append(iid)
        conn.executemany("INSERT INTO interactions (id, user_id, task, context, context_vector, prompt, draft,"
                         " preference_used, preference_ids, neighbours, candidates, strategy, model, tokens_in,"
                         " tokens_out, timings, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    return names, fresh_ids


def _wait_log(path: Path, pattern: str, proc: subprocess.Popen, timeout: float) -> re.Match:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = re.search(pattern, path.read_text())
        if found:
            return found
        if proc.poll() is not None:
            raise SystemExit(path.read_text())
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {pattern!r}:\n{path.read_text()}")


class Stack:
    """The scripted generator server, then ``redline serve --port 0 --api-workers N`` on ``data``."""

    def __init__(self, data: Path, api_workers: int, **env: str):
        base = {k: v for k, v in os.environ.items() if not k.startswith("REDLINE_")}
        base.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
        self.gen_log, self.log = data / "generator.log", data / "server.log"
        self.generator = subprocess.Popen([sys.executable, "-m", "doubles.server", "--port", "0"], cwd=REPO,
                                          env={**base, "PYTHONPATH": str(REPO / "tests")},
                                          stdout=open(self.gen_log, "w"), stderr=subprocess.STDOUT)
        self.generator_url = "http://127.0.0.1:" + _wait_log(
            self.gen_log, r"Uvicorn running on http://127\.0\.0\.1:(\d+)", self.generator, 60).group(1)
        env = {**base, "REDLINE_DATA_DIR": str(data), "REDLINE_GENERATOR": "openai",
               "REDLINE_GENERATOR_URL": self.generator_url + "/v1", **env}
        self.proc = subprocess.Popen([sys.executable, "-m", "redline.cli", "serve", "--port", "0", "--api-workers",
                                      str(api_workers)], cwd=REPO, env=env, stdout=open(self.log, "w"),
                                     stderr=subprocess.STDOUT)
        self.url = "http://127.0.0.1:" + _wait_log(self.log, r"serving on http://127\.0\.0\.1:(\d+)", self.proc,
                                                   60).group(1)
        end = time.monotonic() + 300
        while len(self.children()) < api_workers + 1:
            _wait_log(self.log, r"started learner-0", self.proc, 60)
            time.sleep(0.1)
        # every API process ready: /ready on fresh connections until each pid answered 200
        ready: set[int] = set()
        while len(ready) < api_workers and time.monotonic() < end:
            with httpx.Client(base_url=self.url, timeout=30) as client:
                try:
                    pid = client.get("/health").json()["pid"]
                    if client.get("/ready").status_code == 200:
                        ready.add(pid)
                except httpx.TransportError:
                    pass
            time.sleep(0.05)
        if len(ready) < api_workers:
            raise SystemExit(f"API processes not ready:\n{self.log.read_text()}")

    def children(self) -> dict[str, int]:
        return {name: int(pid) for name, pid in re.findall(r"started (\S+) \(pid (\d+)\)", self.log.read_text())}

    def generator_stats(self) -> dict:
        return httpx.get(self.generator_url + "/stats", timeout=30).json()["calls"]

    def stop(self) -> float:
        """SIGTERM, then the seconds until ``redline serve`` exited (killed after 90 s); the generator goes too."""
        start = time.perf_counter()
        self.proc.terminate()
        try:
            self.proc.wait(90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        seconds = round(time.perf_counter() - start, 2)
        self.generator.terminate()
        self.generator.wait(30)
        return seconds


class Profiler:
    """py-spy record of every redline process of a stack, in the background, one folded-stack file each: samples
    of the thread holding the GIL (``--gil``), so they add up to the Python work each process did (native work
    that releases the GIL, such as SQLite's I/O or numpy, is not counted)."""

    RATE = 50  # samples a second

    def __init__(self, stack: Stack, folder: Path | None, label: str, seconds: float):
        self.procs: list[tuple[str, subprocess.Popen, Path]] = []
        self.start, self.seconds = time.monotonic(), seconds
        if folder is None:
            return
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        folder.mkdir(parents=True, exist_ok=True)
        for name, pid in stack.children().items():
            out = folder / f"{label}-{name}.txt"
            self.procs.append((name, subprocess.Popen(
                [spy, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", str(self.RATE), "-f", "raw", "--gil",
                 "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out))

    def finish(self) -> dict:
        """Wait for the recordings; per process: the share of a core its Python work took, and where
        (``summarize_profile``)."""
        seconds = time.monotonic() - self.start
        summary = {}
        for name, proc, out in self.procs:
            proc.send_signal(signal.SIGINT)  # stop early if the load ended first
            proc.wait(120)
            summary[name] = summarize_profile(out, min(seconds, self.seconds), self.RATE) if out.exists() else None
        return summary


# Where a sampled thread waits rather than works (py-spy samples waiting threads too).
_IDLE = {"Condition.wait", "Event.wait", "Queue.get", "_worker", "select", "Runner.run", "sleep", "wait", "_wait",
         "SimpleQueue.get", "_SelectorSocketTransport._read_ready"}


def summarize_profile(path: Path, seconds: float, rate: int, top: int = 16) -> dict:
    """From a py-spy raw file: the share of a core the process kept busy (samples not waiting, over the ticks) and
    the functions that took most of it (inclusive, in cores), file:function."""
    inclusive: collections.Counter = collections.Counter()
    busy = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        if frames[-1].split(" (")[0] in _IDLE:
            continue
        busy += int(count)
        seen = set()
        for frame in frames:
            name, _, where = frame.partition(" (")
            key = f"{where.split(':')[0].rsplit('/', 1)[-1]}:{name}"
            if key not in seen:
                inclusive[key] += int(count)
                seen.add(key)
    ticks = max(seconds * rate, 1)
    return {"busy_cores": round(busy / ticks, 2), "seconds": round(seconds, 1),
            "top_cores": [(k, round(v / ticks, 3)) for k, v in inclusive.most_common(top)]}


def quantile(xs: list[float], p: float) -> float | None:
    return round(float(np.percentile(xs, p)), 2) if xs else None


class Connection:
    """One keep-alive HTTP/1.1 connection that POSTs JSON and reads the status and body: the load generator. It
    costs the client ~0.1 ms of CPU a request; httpx's AsyncClient cost ~4 ms a request at 32 clients here and was
    what limited the figures (the client shares the machine's cores with the server)."""

    def __init__(self, url: str, key: str):
        self.host, port = url.removeprefix("http://").split(":")
        self.port, self.auth = int(port), f"Authorization: Bearer {key}\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        payload = json.dumps(body).encode()
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {len(payload)}\r\n{self.auth}\r\n".encode() + payload)
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def on_connections(url: str, key: str, count: int, worker) -> float:
    """Run ``worker(connection)`` on each of ``count`` connections at once; the wall seconds it took."""
    connections = [Connection(url, key) for _ in range(count)]
    start = time.perf_counter()
    try:
        await asyncio.gather(*(worker(conn) for conn in connections))
    finally:
        for conn in connections:
            conn.close()
    return time.perf_counter() - start


async def run_level(url: str, key: str, concurrency: int, requests: list[tuple[str, dict]]) -> dict:
    """Send ``requests`` with ``concurrency`` clients (one keep-alive connection each); latency of each, wall time,
    server timings."""
    pending = iter(requests)
    latencies, server_ms, retrieve_ms, statuses = [], [], [], {}
    cpu = time.process_time()

    async def worker(conn: Connection):
        for path, body in pending:
            t0 = time.perf_counter()
            status, data = await conn.post(path, body)
            latencies.append((time.perf_counter() - t0) * 1000)
            statuses[status] = statuses.get(status, 0) + 1
            if status == 200 and path == "/v1/generate":
                t = json.loads(data)["timings_ms"]
                server_ms.append(sum(v for k, v in t.items() if k != "generate_ms"))
                retrieve_ms.append(t.get("retrieve_ms", 0.0))

    wall = await on_connections(url, key, concurrency, worker)
    out = {"concurrency": concurrency, "requests": len(requests), "statuses": statuses,
           "per_second": round(len(requests) / wall, 1), "p50_ms": quantile(latencies, 50),
           "p95_ms": quantile(latencies, 95), "client_cpu_seconds": round(time.process_time() - cpu, 2),
           "wall_seconds": round(wall, 2)}
    if server_ms:
        out.update(server_non_generation_p50_ms=quantile(server_ms, 50), server_non_generation_p95_ms=quantile(
            server_ms, 95), retrieve_p50_ms=quantile(retrieve_ms, 50), retrieve_p95_ms=quantile(retrieve_ms, 95))
    return out


def server_metrics(url: str) -> dict:
    """The learning figures from /metrics (every process's): queue depth, jobs learned, retrains, a retrain running."""
    from prometheus_client.parser import text_string_to_metric_families

    found = {"queue_depth": 0.0, "learned": 0.0, "retrains": 0.0, "retraining": 0.0}
    for family in text_string_to_metric_families(httpx.get(url + "/metrics", timeout=60).text):
        for sample in family.samples:
            if sample.name == "redline_learning_queue_depth":
                found["queue_depth"] = sample.value
            elif sample.name == "redline_learning_seconds_count" and sample.labels.get("outcome") == "learned":
                found["learned"] += sample.value
            elif sample.name == "redline_reward_retrain_seconds_count":
                found["retrains"] += sample.value
            elif sample.name == "redline_reward_retraining":
                found["retraining"] = max(found["retraining"], sample.value)
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


def seeded_stack(data: Path, args, api_workers: int, fresh: int, rng: np.random.Generator, **env: str):
    database_url = args.fresh_database() if getattr(args, "fresh_database", None) else None
    if database_url:
        env = {**env, "REDLINE_DATABASE_URL": database_url}
    store = open_store(database_url, data / "redline.db")
    t0 = time.perf_counter()
    names, fresh_ids = seed(store, args.users, args.edits, fresh, rng)
    key, _ = store.keys.create("bench", "bench")
    counts = store.counts()
    store.close()
    print(f"seeded {counts} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    # Retrains start only when edits are learned (not on the 300 s timer), so each phase knows whether one runs.
    stack = Stack(data, api_workers, **{"REDLINE_MAINTENANCE_INTERVAL": "86400", **args.server_env, **env})
    return stack, key, names, iter(fresh_ids), counts


def run(url: str, key: str, level: int, requests: list, label: str) -> dict:
    res = asyncio.run(run_level(url, key, level, requests))
    res["load_average_after"] = load_average()
    print(f"{label:18s} c={level:<3d} {res}", file=sys.stderr)
    return res


def default_run(args, api_workers: int, levels: list[int], rng: np.random.Generator, embedder: dict | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="redline-bench-") as tmp:
        data = Path(tmp)
        stack, key, names, fresh, counts = seeded_stack(data, args, api_workers, args.requests * len(levels) + 100,
                                                        rng)
        url = stack.url
        results: dict = {"api_processes": api_workers, "load_average_at_start": load_average(), "edit": [],
                         "generate": []}
        try:
            gens = {level: generate_requests(names, rng, args.generate_requests) for level in levels}
            top = max(levels)
            if embedder is None:
                embedder = embedder_throughput([body["context"] for _, body in gens[top]])
                print(f"embedder alone: {embedder}", file=sys.stderr)
            results["embedder_batched"] = embedder
            for level in levels:
                results["generate"].append(run(url, key, level, gens[level], "generate"))
            # /generate without a retrain, then at once while one runs (learn 40 edits: the retraining threshold is
            # 20 new pairs; wait until it runs), the same number of requests each, side by side.
            wait_for(lambda: server_metrics(url)["retraining"] == 0, 300)
            before = run(url, key, top, generate_requests(names, rng, args.retrain_requests), "generate, no retrain")
            results["generate_before_retrain"] = before
            run(url, key, 8, edit_requests(fresh, rng, 40), "edit (to retrain)")
            started = wait_for(lambda: server_metrics(url)["retraining"] == 1, 120, every=0.1)
            during = run(url, key, top, generate_requests(names, rng, args.retrain_requests), "generate+retrain")
            during["retrain_running_at_start"] = started
            during["retrain_running_at_end"] = server_metrics(url)["retraining"] == 1
            results["generate_during_retrain"] = during
            wait_for(lambda: server_metrics(url)["retraining"] == 0, 300)
            for level in levels:
                profiler = Profiler(stack, args.profile if level == top else None, f"edit-c{level}-api{api_workers}",
                                    args.profile_seconds)
                results["edit"].append(run(url, key, level, edit_requests(fresh, rng, args.requests), "edit"))
                if profiler.procs:
                    results["profile_edit_top_concurrency"] = profiler.finish()
            results["after"] = server_metrics(url)
            results["generator_calls"] = stack.generator_stats()
        finally:
            results["shutdown_seconds"] = stack.stop()
    no_retrain = next(r for r in results["generate"] if r["concurrency"] == top)
    results["ratios"] = {
        "generate_p95_during_retrain_over_without": round(
            during["p95_ms"] / before["p95_ms"], 2),
        "generate_per_second_over_embedder_batched": round(
            no_retrain["per_second"] / results["embedder_batched"]["per_second"], 2),
    }
    return {"users": args.users, "past_edits_per_user": args.edits, "store_rows": counts, **results}


def learning_run(args, api_workers: int, rng: np.random.Generator) -> dict:
    """A 32-client edit load for ``--learning-seconds``; /metrics sampled every half second until the backlog
    is learned (or ``--drain-timeout``); then SIGTERM with whatever is still queued."""
    rate_guess = 900  # edits a second at most: enough fresh interactions for the whole load
    with tempfile.TemporaryDirectory(prefix="redline-bench-") as tmp:
        data = Path(tmp)
        stack, key, names, fresh, counts = seeded_stack(data, args, api_workers,
                                                        int(rate_guess * args.learning_seconds), rng)
        url = stack.url
        samples: list[dict] = []
        stop_sampling = False
        at_start = load_average()

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
            cpu = time.process_time()

            async def worker(conn: Connection):
                nonlocal sent
                while time.perf_counter() < end:
                    path, body = edit_requests(fresh, rng, 1)[0]
                    t0 = time.perf_counter()
                    status, _ = await conn.post(path, body)
                    latencies.append((time.perf_counter() - t0) * 1000)
                    sent += status == 202

            start = time.perf_counter()
            wall = await on_connections(url, key, 32, worker)
            client_cpu = round(time.process_time() - cpu, 2)
            load_end = time.perf_counter()
            drained = await asyncio.to_thread(
                wait_for, lambda: samples and samples[-1]["t"] > load_end and samples[-1]["queue_depth"] == 0,
                args.drain_timeout)
            stop_sampling = True
            await sampler
            return {"accepted": sent, "accepted_per_second": round(sent / wall, 1), "p50_ms": quantile(latencies, 50),
                    "p95_ms": quantile(latencies, 95), "client_cpu_seconds": client_cpu, "load_start": start,
                    "load_end": load_end, "drained": drained}

        profiler = Profiler(stack, args.profile, f"learning-api{api_workers}", args.learning_seconds)
        try:
            loaded = asyncio.run(load())
            pending_at_stop = server_metrics(url)["queue_depth"]
            calls = stack.generator_stats()
        finally:
            profile = profiler.finish() if profiler.procs else None
            shutdown = stack.stop()
    start, end = loaded.pop("load_start"), loaded.pop("load_end")
    first = samples[0]
    at_end = min(samples, key=lambda s: abs(s["t"] - end))
    last = samples[-1]
    drained_at = next((s["t"] for s in samples if s["t"] > end and s["queue_depth"] == 0), None)
    during_load = [s for s in samples if start <= s["t"] <= end]
    during_backlog = [s for s in samples if s["queue_depth"] > 0]
    report = {
        "api_processes": api_workers, "clients": 32, "load_seconds": args.learning_seconds, **loaded,
        "learned_per_second_during_load": round((at_end["learned"] - first["learned"]) / (at_end["t"] - start), 1),
        "learned_per_second_after_load": round((last["learned"] - at_end["learned"]) / max(last["t"] - at_end["t"],
                                                                                            1e-9), 1),
        "backlog_peak": int(max(s["queue_depth"] for s in samples)),
        "backlog_at_load_end": int(at_end["queue_depth"]),
        "backlog_every_5s_during_load": [int(s["queue_depth"]) for s in during_load[::10]],
        "seconds_to_drain_after_load": round(drained_at - end, 1) if drained_at else None,
        "retrains_finished_during_backlog": int(sum(
            1 for a, b in zip(samples, samples[1:]) if b["retrains"] > a["retrains"] and a["queue_depth"] > 0)),
        "retrain_running_while_backlog_samples": sum(1 for s in during_backlog if s["retraining"] == 1),
        "backlog_samples": len(during_backlog), "inference_calls": calls["inference"],
        "pending_at_shutdown": int(pending_at_stop), "shutdown_seconds": shutdown,
        "load_average_at_start": at_start, "load_average_after": load_average(),
    }
    if profile is not None:
        report["profile"] = profile
    print(f"learning: {report}", file=sys.stderr)
    return report


def retrieval_run(args, rng: np.random.Generator) -> dict:
    """The server's retrieve_ms per /generate on a store of 100 and of 10,000 users with the same history per user
    (one API process), for 1 and 8 clients, cold and warm. Cold: each request the first for its user, so the
    process builds the user's index from the store (the store's vectors read, a FAISS index made); warm: requests
    to users whose index the process holds (the user's version still read from the store, then a search). One
    client times the work; eight add a request thread's wait for the interpreter while the others run."""
    out = {"load_average_at_start": load_average()}
    for users in (100, 10_000):
        sized = argparse.Namespace(**{**vars(args), "users": users, "edits": args.retrieval_edits})
        with tempfile.TemporaryDirectory(prefix="redline-bench-") as tmp:
            stack, key, names, _, counts = seeded_stack(Path(tmp), sized, 1, 0, rng)
            picked = [str(n) for n in rng.choice(names, 64, replace=False)]  # 64 < the 256 indexes a process keeps
            out[str(users)] = {"store_rows": counts}
            try:
                for clients, cold_users in ((1, picked[:32]), (8, picked[32:])):
                    cold = run(stack.url, key, clients, [("/v1/generate", {
                        "user": u, "context": " ".join(rng.choice(WORDS, 80))}) for u in cold_users],
                        f"retrieval {users}, {clients} clients, cold")
                    warm = run(stack.url, key, clients, generate_requests(picked, rng, args.generate_requests),
                               f"retrieval {users}, {clients} clients, warm")
                    out[str(users)][f"clients_{clients}"] = {
                        f"{name}_{k}": res[k] for name, res in (("cold", cold), ("warm", warm))
                        for k in ("retrieve_p50_ms", "retrieve_p95_ms", "p50_ms", "load_average_after")}
            finally:
                stack.stop()
    for clients in (1, 8):
        for name in ("cold", "warm"):
            p50 = [out[str(users)][f"clients_{clients}"][f"{name}_retrieve_p50_ms"] for users in (100, 10_000)]
            out[f"{name}_retrieve_p50_ratio_10000_over_100_clients_{clients}"] = round(p50[1] / p50[0], 2)
    return out


def _print_default(runs: list[dict]) -> None:
    heads = " | ".join(f"{r['api_processes']} API: req/s, p50, p95 ms" for r in runs)
    print(f"\n| route | clients | {heads} |\n|---|---|" + "---|" * len(runs))
    for route in ("edit", "generate"):
        for i, first in enumerate(runs[0][route]):
            cells = " | ".join(f"{r[route][i]['per_second']}, {r[route][i]['p50_ms']}, {r[route][i]['p95_ms']}"
                               for r in runs)
            print(f"| {route} | {first['concurrency']} | {cells} |")
    for label, part in (("generate, just before the retrain", "generate_before_retrain"),
                        ("generate, retrain running", "generate_during_retrain")):
        cells = " | ".join(f"{r[part]['per_second']}, {r[part]['p50_ms']}, {r[part]['p95_ms']}" for r in runs)
        print(f"| {label} | {runs[0][part]['concurrency']} | {cells} |")
    for r in runs:
        print(f"\n{r['api_processes']} API process(es): ratios {r['ratios']}; load average at start "
              f"{r['load_average_at_start']}, after {r['edit'][-1]['load_average_after']}")
        for name, prof in (r.get("profile_edit_top_concurrency") or {}).items():
            if prof:
                print(f"  py-spy {name}: {prof['busy_cores']} cores busy; " + "; ".join(
                    f"{k} {v}" for k, v in prof["top_cores"] if not k.startswith(("threading.py", "<frozen")))[:600])


def postgres_and_sqlite(args, workers: list[int], rng: np.random.Generator) -> dict:
    """The default run for each API process count on SQLite, then on PostgreSQL (a fresh database each run)."""
    import itertools

    server = None
    if args.database_url == "auto":
        from doubles.postgres import PostgresServer

        server = PostgresServer(durable=True).start()  # fsync on: commits as durable as SQLite's synchronous=FULL
        base = server.url
    else:
        base = args.database_url
    counter = itertools.count(1)

    def fresh_database() -> str:
        import psycopg

        name = f"bench_{os.getpid()}_{next(counter)}"
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        return f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{name}"

    levels = [int(x) for x in args.concurrency.split(",")]
    out: dict = {}
    embedder = None
    try:
        for back_end in ("sqlite", "postgresql"):
            args.fresh_database = fresh_database if back_end == "postgresql" else None
            out[back_end] = []
            for n in workers:
                out[back_end].append(default_run(args, n, levels, rng, embedder))
                embedder = out[back_end][-1]["embedder_batched"]
    finally:
        args.fresh_database = None
        if server is not None:
            server.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--edits", type=int, default=50, help="Past learned edits per user.")
    parser.add_argument("--api-workers", default="1,2", help="API process counts to run side by side.")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--requests", type=int, default=2000, help="Edit requests per concurrency level.")
    parser.add_argument("--generate-requests", type=int, default=100, help="Generate requests per concurrency level.")
    parser.add_argument("--retrain-requests", type=int, default=200,
                        help="Generate requests without, then during, a retrain (at the highest concurrency).")
    parser.add_argument("--learning", action="store_true", help="Report the learning queue under a 32-client load.")
    parser.add_argument("--learning-seconds", type=float, default=60.0, help="Length of the --learning edit load.")
    parser.add_argument("--drain-timeout", type=float, default=900.0, help="Longest wait for the backlog to drain.")
    parser.add_argument("--retrieval", action="store_true", help="Retrieval time at 100 vs 10,000 users.")
    parser.add_argument("--retrieval-edits", type=int, default=10, help="Past edits per user for --retrieval.")
    parser.add_argument("--profile", type=Path, help="Folder for py-spy recordings of every redline process.")
    parser.add_argument("--profile-seconds", type=float, default=20.0, help="Longest py-spy recording (default run).")
    parser.add_argument("--set", action="append", default=[], metavar="REDLINE_NAME=VALUE",
                        help="A setting for the server's processes (repeatable), e.g. REDLINE_LEARNER_NICE=0.")
    parser.add_argument("--database-url", metavar="auto|URL",
                        help="Run the default run on SQLite and on PostgreSQL (auto: a throwaway local server).")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = REPO / "benchmarks" / "results"
    args.out = args.out or results / ("bench_api_postgres.json" if args.database_url else "bench_api.json")
    args.server_env = dict(item.split("=", 1) for item in args.set)
    rng = np.random.default_rng(0)
    workers = [int(x) for x in args.api_workers.split(",")]
    report = json.loads(args.out.read_text()) if args.out.exists() else {}
    report.update(machine={"cpus": os.cpu_count(), "python": platform.python_version(),
                           "load_average_at_start": load_average()},
                  generator="scripted OpenAI-compatible server (tests/doubles/server.py, well under 1 ms a call): "
                            "generate latency = everything but the generator",
                  command=" ".join([Path(sys.executable).name, *sys.argv]), server_settings=args.server_env)
    if args.learning:
        report["learning"] = [learning_run(args, n, rng) for n in workers]
    elif args.retrieval:
        report["retrieval"] = retrieval_run(args, rng)
    elif args.database_url:
        report["results"] = postgres_and_sqlite(args, workers, rng)
    else:
        embedder = None
        runs = []
        for n in workers:
            runs.append(default_run(args, n, [int(x) for x in args.concurrency.split(",")], rng, embedder))
            embedder = runs[-1]["embedder_batched"]
        report["results"] = runs
    report["machine"]["load_average_at_end"] = load_average()
    report["machine"]["max_rss_client_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    if args.database_url and not args.learning and not args.retrieval:
        for back_end, runs in report["results"].items():
            print(f"\n{back_end}:")
            _print_default(runs)
    elif "results" in report and not args.learning and not args.retrieval:
        _print_default(report["results"])
    elif args.learning:
        for r in report["learning"]:
            print(f"\n{r['api_processes']} API process(es), 32 clients for {r['load_seconds']:.0f} s: "
                  f"{r['accepted_per_second']} edits/s accepted (p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms), "
                  f"{r['learned_per_second_during_load']} learned/s during the load, backlog peak {r['backlog_peak']} "
                  f"(every 5 s: {r['backlog_every_5s_during_load']}), drained {r['seconds_to_drain_after_load']} s "
                  f"after it ({r['learned_per_second_after_load']} learned/s); load average "
                  f"{r['load_average_at_start']} -> {r['load_average_after']}")
    else:
        print(f"\nretrieval: {report['retrieval']}")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
