"""Load test of the HTTP server on loopback: edits accepted per second and latency of /edit and of the
non-generation part of /generate, at several concurrency levels, on a store seeded with USERS x EDITS
past learned edits.

The server runs in a subprocess (the real app on uvicorn, auth on) with the scripted generator
(``redline.testing.server``), whose call takes ~0.1 ms, so /generate's latency is everything but the
generator call: auth, validation, embedding the context (MiniLM on CPU), FAISS retrieval over the
user's past contexts, aggregation-cache lookup, storing the interaction. The learning worker runs
during the test, as in production.

    .venv/bin/python benchmarks/bench_api.py                      # 1000 users x 50 edits; 1, 8, 32 clients
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


def start_server(data_dir: Path) -> tuple[subprocess.Popen, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDLINE_")}
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
    while time.monotonic() < end and httpx.get(url + "/ready").status_code != 200:
        time.sleep(0.2)
    return proc, url


async def run_level(url: str, key: str, concurrency: int, requests: list[tuple[str, dict]]) -> dict:
    """Send ``requests`` with ``concurrency`` clients; latency of each, wall time, server timings."""
    queue: asyncio.Queue = asyncio.Queue()
    for r in requests:
        queue.put_nowait(r)
    latencies, server_ms, statuses = [], [], {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, limits=limits,
                                 timeout=120) as client:
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

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    q = lambda xs, p: round(float(np.percentile(xs, p)), 2) if xs else None  # noqa: E731
    return {"concurrency": concurrency, "requests": len(requests), "statuses": statuses,
            "per_second": round(len(requests) / wall, 1), "p50_ms": q(latencies, 50), "p95_ms": q(latencies, 95),
            "server_non_generation_p50_ms": q(server_ms, 50), "server_non_generation_p95_ms": q(server_ms, 95)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--edits", type=int, default=50, help="Past learned edits per user.")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--requests", type=int, default=400, help="Edit requests per concurrency level.")
    parser.add_argument("--generate-requests", type=int, default=100, help="Generate requests per concurrency level.")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bench_api.json")
    args = parser.parse_args()
    levels = [int(x) for x in args.concurrency.split(",")]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="redline-bench-") as tmp:
        data = Path(tmp)
        store = Store(data / "redline.db")
        t0 = time.perf_counter()
        names, fresh = seed(store, args.users, args.edits, args.requests * len(levels), rng)
        key, _ = store.keys.create("bench", "bench")
        counts = store.counts()
        store.close()
        print(f"seeded {counts} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        proc, url = start_server(data)
        results = {"edit": [], "generate": []}
        try:
            fresh_iter = iter(fresh)
            for level in levels:
                edits = [(f"/v1/interactions/{next(fresh_iter)}/edit",
                          {"edited_text": " ".join(rng.choice(WORDS, 25))}) for _ in range(args.requests)]
                gens = [("/v1/generate", {"user": names[int(rng.integers(len(names)))],
                                          "context": " ".join(rng.choice(WORDS, 80))})
                        for _ in range(args.generate_requests)]
                for route, reqs in (("edit", edits), ("generate", gens)):
                    res = asyncio.run(run_level(url, key, level, reqs))
                    results[route].append(res)
                    print(f"{route:9s} c={level:<3d} {res}", file=sys.stderr)
        finally:
            proc.terminate()
            proc.wait(30)
    report = {"users": args.users, "past_edits_per_user": args.edits, "store_rows": counts,
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "generator": "scripted (~0.1 ms per call): generate latency = everything but the generator call",
              "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print("\n| route | clients | req/s | p50 ms | p95 ms |\n|---|---|---|---|---|")
    for route in ("edit", "generate"):
        for r in results[route]:
            print(f"| {route} | {r['concurrency']} | {r['per_second']} | {r['p50_ms']} | {r['p95_ms']} |")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
