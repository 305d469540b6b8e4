"""Past one machine (issue 24): two API replicas (``redline serve --role api``, each its own supervisor, data
directory and caches, as on two hosts) and two learners (``redline worker``) on one PostgreSQL, in front of the
scripted generator server, which counts its inference calls per edit.

N edits (``REDLINE_REPLICA_TEST_EDITS``, default 240; the issue's figure is 1000) go alternately to both replicas from
16 clients (a client whose replica is down sends to the other, as a load balancer would); mid-way one replica and one
learner are killed with kill -9 and restarted. Every accepted edit is learned exactly once (one preference and one
pair each; the generator asked to infer each edit once per claim of its job), none is lost. Then read-your-writes
across replicas: a PATCH or DELETE of a preference on replica 1 changes replica 2's very next read and generation,
and a hard delete on replica 1 leaves nothing of the user in the database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from stores import columns, count, rows, tables

from redline.store import PostgresStore

from servers import REPO, GeneratorServer, Server, wait_until

pytestmark = pytest.mark.integration

EDITS = int(os.environ.get("REDLINE_REPLICA_TEST_EDITS", "240"))
CLIENTS = 16
ARTICLE = ("The city council approved a new budget on Tuesday that raises spending on public transit by 12 percent "
           "and funds two new bus lines connecting the northern suburbs to the downtown business district.")
SIMILAR = ("On Wednesday the council's transit committee published the schedule for the two new bus lines funded "
           "by the budget, with the first buses running from the northern suburbs in March.")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(url: str, generator: GeneratorServer) -> dict[str, str]:
    return {"REDLINE_DATABASE_URL": url, "REDLINE_GENERATOR": "openai", "REDLINE_GENERATOR_URL": generator.url + "/v1",
            "REDLINE_GENERATOR_RETRIES": "0", "REDLINE_AUTH": "false", "REDLINE_RETRY_AFTER_SECONDS": "1"}


def _replica(data: Path, port: int, env: dict[str, str]) -> Server:
    return Server(["-m", "redline.cli", "serve", "--role", "api", "--port", str(port)], data, log_name="replica",
                  **env).wait_ready()


class _Learner:
    def __init__(self, data: Path, name: str, env: dict[str, str]):
        self.log = data / f"{name}-{time.monotonic_ns()}.log"
        data.mkdir(parents=True, exist_ok=True)
        full = {k: v for k, v in os.environ.items() if not k.startswith("REDLINE_")}
        full.update(REDLINE_DATA_DIR=str(data), HF_HUB_OFFLINE="1", **env)
        self.proc = subprocess.Popen([sys.executable, "-m", "redline.cli", "worker", "--id", name], cwd=REPO,
                                     env=full, stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        wait_until(lambda: f"learner {name} started" in self.log.read_text() or self.proc.poll() is not None, 120,
              f"learner {name} did not start")
        assert self.proc.poll() is None, self.log.read_text()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _post(urls: list[str], first: int, method: str, path: str, **kw) -> httpx.Response:
    """Send to replica ``first``; while it is down, to the other (a load balancer's failover); retry until one
    answers."""
    end = time.monotonic() + 120
    i = first
    while True:
        try:
            with httpx.Client(base_url=urls[i % 2], timeout=60) as client:
                return client.request(method, path, **kw)
        except httpx.TransportError:
            assert time.monotonic() < end, f"no replica answered {method} {path}"
            i += 1
            time.sleep(0.05)


def _batch_failures(folder: Path) -> list[str]:
    """What the learners logged of a batch they ran again one job at a time (it infers each edit again): the
    first line of each such warning and of the error that caused it."""
    found = []
    for log in sorted(folder.glob("learner*/*.log")):
        lines = log.read_text().splitlines()
        for i, line in enumerate(lines):
            if "running them one at a time" in line:
                cause = next((c for c in lines[i + 1:i + 40] if c.strip().startswith(("psycopg", "redline"))), "")
                found.append(f"{log.name}: {line.strip()} / {cause.strip()}")
    return found


@pytest.fixture
def cluster(tmp_path, postgres_server):
    url = postgres_server.fresh_url()
    generator = GeneratorServer(tmp_path / "generator", REDLINE_SCRIPTED_DELAY="inference=0.02")
    env = _env(url, generator)
    ports = [_free_port(), _free_port()]
    parts: dict = {"url": url, "env": env, "generator": generator, "ports": ports, "tmp": tmp_path}
    try:
        parts["replicas"] = [_replica(tmp_path / f"host{i + 1}", ports[i], env) for i in range(2)]
        parts["learners"] = [_Learner(tmp_path / f"learner{i + 1}", f"w{i + 1}", env) for i in range(2)]
        parts["store"] = PostgresStore(url, pool_size=2)
        yield parts
    finally:
        for learner in parts.get("learners", []):
            learner.stop()
        for replica in parts.get("replicas", []):
            replica.stop()
        generator.stop()
        if "store" in parts:
            parts["store"].close()


def test_two_replicas_and_two_learners_learn_every_edit_once_through_kill9_and_read_their_writes(cluster):
    store, replicas, learners = cluster["store"], cluster["replicas"], cluster["learners"]
    urls = [r.url for r in replicas]
    users = 24

    def generate(i: int) -> str:
        made = _post(urls, i, "POST", "/v1/generate", json={"user": f"u{i % users}", "context": f"{ARTICLE} #{i}"})
        assert made.status_code == 200, made.text
        return made.json()["interaction_id"]

    with ThreadPoolExecutor(CLIENTS) as pool:
        ids = list(pool.map(generate, range(EDITS)))
    accepted: dict[str, str] = {}
    lock = threading.Lock()

    def edit(i: int) -> None:  # the edit goes to the other replica than the one that generated the draft
        text = f"kept version {i}."
        resp = _post(urls, i + 1, "POST", f"/v1/interactions/{ids[i]}/edit", json={"edited_text": text})
        assert resp.status_code == 202, resp.text
        with lock:
            accepted[ids[i]] = text

    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(edit, i) for i in range(EDITS)]
        wait_until(lambda: sum(f.done() for f in futures) >= EDITS // 2, 300, "the load did not get half-way")
        wait_until(lambda: cluster["generator"].stats()["calls"]["inference"] >= 3, 60, "the learners did not start")
        replicas[1].kill9()  # kill -9 one replica (its supervisor: its API process dies with it) and one learner
        learners[1].stop(signal.SIGKILL)
        replicas[1] = _replica(cluster["tmp"] / "host2", cluster["ports"][1], cluster["env"])
        learners[1] = _Learner(cluster["tmp"] / "learner2", "w2", cluster["env"])  # same slot: takes its jobs back
        for f in futures:
            f.result()
    cluster["replicas"] = replicas
    wait_until(lambda: count(store, "jobs", "kind = 'learn' AND status != 'done'") == 0, 300,
          "not every accepted edit was learned")
    learned = {r["interaction_id"]: r["edited_text"] for r in rows(
        store, "SELECT interaction_id, edited_text FROM edits WHERE learned_at IS NOT NULL")}
    preferences = {r["interaction_id"]: r["n"] for r in rows(
        store, "SELECT interaction_id, COUNT(*) AS n FROM preferences GROUP BY interaction_id")}
    pairs = {r["interaction_id"]: r["n"] for r in rows(
        store, "SELECT interaction_id, COUNT(*) AS n FROM pairs GROUP BY interaction_id")}
    attempts = {r["edited_text"]: r["attempts"] for r in rows(
        store, "SELECT e.edited_text, j.attempts FROM jobs j JOIN edits e ON e.interaction_id = j.interaction_id"
               " WHERE j.kind = 'learn'")}
    inferred = cluster["generator"].stats(subjects=True)["subjects"]
    assert len(accepted) == EDITS and learned == accepted  # none lost, every one learned
    assert preferences == {iid: 1 for iid in ids} and pairs == {iid: 1 for iid in ids}  # none twice, no duplicate
    assert set(inferred) == set(attempts)
    twice = {text: (inferred[text], attempts[text]) for text in attempts if inferred[text] > attempts[text]}
    assert not twice, (twice, _batch_failures(cluster["tmp"]))  # one inference a claim
    assert sum(n > 1 for n in attempts.values()) <= 32  # only the killed learner's batch was claimed again
    for learner in learners:
        assert "learned" in learner.log.read_text() or learner.proc.poll() is None

    # read-your-writes across replicas, on a user with one learned edit
    a, b = (httpx.Client(base_url=r.url, timeout=60) for r in replicas)
    try:
        iid = a.post("/v1/generate", json={"user": "ryw", "context": ARTICLE}).json()["interaction_id"]
        assert b.post(f"/v1/interactions/{iid}/edit", json={"edited_text": "Transit up 12%."}).status_code == 202
        wait_until(lambda: a.get(f"/v1/interactions/{iid}").json()["learning"]["preference"], 60, "not learned")
        for client in (a, b):  # both replicas cache the user's index now
            assert [n["interaction_id"] for n in client.post(
                "/v1/generate", json={"user": "ryw", "context": SIMILAR}).json()["neighbours"]] == [iid]
        [item] = a.get("/v1/users/ryw/preferences").json()["items"]
        patched = a.patch(f"/v1/users/ryw/preferences/{item['id']}", json={"text": "write like a telegram"})
        assert patched.status_code == 200
        assert [p["text"] for p in b.get("/v1/users/ryw/preferences").json()["items"]] == ["write like a telegram"]
        assert b.post("/v1/generate", json={"user": "ryw", "context": SIMILAR}).json()["preference"] \
            == "write like a telegram"
        assert a.delete(f"/v1/users/ryw/preferences/{item['id']}").status_code == 204
        after = b.post("/v1/generate", json={"user": "ryw", "context": SIMILAR}).json()
        assert after["neighbours"] == [] and after["preference"] is None
        uid = store.user_id("default", "ryw", create=False)
        ryw_ids = [r["id"] for r in rows(store, "SELECT id FROM interactions WHERE user_id = ?", (uid,))]
        assert a.delete("/v1/users/ryw").status_code == 200
        assert b.get("/v1/users/ryw/preferences").status_code == 404
        assert b.get(f"/v1/interactions/{iid}").status_code == 404
    finally:
        a.close()
        b.close()
    left = {t: count(store, t, "user_id = ?", (uid,)) for t in tables(store) if "user_id" in columns(store, t)}
    marks = ",".join("?" * len(ryw_ids))
    left |= {f"{t}.interaction_id": count(store, t, f"interaction_id IN ({marks})", tuple(ryw_ids))
             for t in tables(store) if "interaction_id" in columns(store, t)}
    left["users"] = count(store, "users", "name = 'ryw'")
    assert {k: v for k, v in left.items() if v} == {}
