"""Serving and learning in separate processes over one store (issue 23), against real ``redline serve`` processes
(supervisor, API processes, learner) in front of the scripted generator server, which counts its calls: what one
API process learned or deleted is what the next request to any other sees; a learner killed mid-batch and an API
process killed mid-load lose no accepted edit and learn none twice (counted in inference calls, not only rows);
two learners never run the same job; SIGTERM stops everything with nothing half-written."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from stores import count, opened

from servers import REPO, create_key, scripted_server, wait_until

pytestmark = pytest.mark.integration

ARTICLE = ("The city council approved a new budget on Tuesday that raises spending on public transit by 12 percent "
           "and funds two new bus lines connecting the northern suburbs to the downtown business district.")
SIMILAR = ("On Wednesday the council's transit committee published the schedule for the two new bus lines funded "
           "by the budget, with the first buses running from the northern suburbs in March.")


def _db(data: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{data / 'redline.db'}?mode=ro", uri=True)


def _clients_per_process(url: str, count: int, timeout: float = 60) -> dict[int, httpx.Client]:
    """One keep-alive client per API process (a connection stays on the process that accepted it): new
    connections until ``count`` processes answered, each ready."""
    found: dict[int, httpx.Client] = {}
    end = time.monotonic() + timeout
    while len(found) < count:
        assert time.monotonic() < end, f"only {sorted(found)} of {count} API processes answered"
        client = httpx.Client(base_url=url, timeout=30)
        pid = client.get("/health").json()["pid"]
        if pid in found:
            client.close()
            continue
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < end
            time.sleep(0.2)
        found[pid] = client
    return found


def _interactions(url: str, n: int, users: int) -> list[str]:
    """``n`` interactions of ``users`` users, made 8 at a time (the generator server may be slowed down)."""
    def one(i: int) -> str:
        with httpx.Client(base_url=url, timeout=60) as client:
            made = client.post("/v1/generate", json={"user": f"u{i % users}", "context": f"{ARTICLE} #{i}"})
        assert made.status_code == 200, made.text
        return made.json()["interaction_id"]

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def _pairs(store, sql: str) -> dict:
    """The rows of a two-column query as a dict (first column → second)."""
    return {a: b for a, b in store._sql.tuples(sql)}


def test_every_api_process_sees_what_the_learner_learned_and_a_hard_delete_on_its_next_request(tmp_path,
                                                                                              database_env):
    server = scripted_server(tmp_path, "--api-workers", "2", REDLINE_AUTH="false", **database_env).wait_ready()
    try:
        a, b = _clients_per_process(server.url, 2).values()
        assert set(server.children()) == {"learner-0", "api-0", "api-1"}
        for client in (a, b):  # both processes cache the user's (empty) index
            assert client.post("/v1/generate", json={"user": "u", "context": ARTICLE}).json()["neighbours"] == []
        iid = a.post("/v1/generate", json={"user": "u", "context": ARTICLE}).json()["interaction_id"]
        assert a.post(f"/v1/interactions/{iid}/edit", json={"edited_text": "Transit up 12%."}).status_code == 202
        learned = wait_until(lambda: a.get(f"/v1/interactions/{iid}").json()["learning"]["preference"], 60,
                        "the learner did not learn the edit")
        for client in (b, a):  # the very next request of each process retrieves it
            made = client.post("/v1/generate", json={"user": "u", "context": SIMILAR}).json()
            assert [n["interaction_id"] for n in made["neighbours"]] == [iid]
            assert made["preference"] == learned["text"]
        assert a.delete("/v1/users/u").status_code == 200
        assert b.get("/v1/users/u/preferences").status_code == 404
        # the same name again (SQLite may give it the deleted user's id): nothing of the deleted user is retrieved
        again = b.post("/v1/generate", json={"user": "u", "context": SIMILAR}).json()
        assert again["neighbours"] == [] and again["preference"] is None
        for client in (a, b):
            client.close()
    finally:
        server.stop()


def _post_edit(url: str, iid: str, text: str, accepted: list, lock: threading.Lock, *, tries: int = 100) -> None:
    """POST the edit until an answer arrives (a killed API process drops the connection: the same text again is
    idempotent); record it when accepted."""
    for _ in range(tries):
        try:
            with httpx.Client(base_url=url, timeout=30) as client:
                resp = client.post(f"/v1/interactions/{iid}/edit", json={"edited_text": text})
        except httpx.TransportError:
            time.sleep(0.1)
            continue
        assert resp.status_code == 202, resp.text
        with lock:
            accepted.append((iid, text))
        return
    raise AssertionError(f"edit of {iid} never accepted")


def test_a_learner_killed_mid_batch_and_an_api_process_killed_mid_load_lose_nothing_and_learn_nothing_twice(
        tmp_path, database_env):
    """kill -9 of the learner while a batch is being inferred, then of an API process while edits arrive: every
    accepted edit is learned, once: one preference and one pair each, and the generator was asked to infer each
    edit once per claim of its job (only the jobs the killed learner held were claimed, and inferred, twice)."""
    server = scripted_server(tmp_path, "--api-workers", "2", REDLINE_AUTH="false",
                             REDLINE_SCRIPTED_DELAY="inference=0.3", REDLINE_JOB_LEASE_SECONDS="600",
                             **database_env).wait_ready()  # only the restart may hand jobs back
    accepted: list[tuple[str, str]] = []
    lock = threading.Lock()
    try:
        _clients_per_process(server.url, 2)
        ids = _interactions(server.url, 120, 5)
        with ThreadPoolExecutor(8) as pool:  # phase 1: a backlog, the learner mid-batch
            list(pool.map(lambda i: _post_edit(server.url, ids[i], f"kept version {i}.", accepted, lock), range(40)))
        wait_until(lambda: server.generator.stats()["calls"]["inference"] >= 3, 60, "the learner did not start")
        learner = server.children()["learner-0"]
        os.kill(learner, signal.SIGKILL)
        wait_until(lambda: server.children()["learner-0"] != learner, 60, "the learner was not restarted")

        def load(i: int) -> None:  # phase 2: edits while an API process dies
            _post_edit(server.url, ids[i], f"kept version {i}.", accepted, lock)

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(load, i) for i in range(40, 120)]
            wait_until(lambda: sum(f.done() for f in futures) >= 20, 60, "the load did not start")
            api = server.children()["api-1"]
            os.kill(api, signal.SIGKILL)
            for f in futures:
                f.result()
        wait_until(lambda: server.children()["api-1"] != api, 60, "the API process was not restarted")
        with opened(tmp_path, database_env) as store:
            wait_until(lambda: count(store, "jobs", "kind = 'learn' AND status != 'done'") == 0, 120,
                  "not every accepted edit was learned")
            edits = _pairs(store, "SELECT interaction_id, edited_text FROM edits WHERE learned_at IS NOT NULL")
            preferences = _pairs(store, "SELECT interaction_id, COUNT(*) FROM preferences GROUP BY interaction_id")
            pairs = _pairs(store, "SELECT interaction_id, COUNT(*) FROM pairs GROUP BY interaction_id")
            attempts = _pairs(store, "SELECT e.edited_text, j.attempts FROM jobs j JOIN edits e"
                                     " ON e.interaction_id = j.interaction_id WHERE j.kind = 'learn'")
        inferred = server.generator.stats(subjects=True)["subjects"]
    finally:
        server.stop()
    assert len(set(accepted)) == 120 and dict(accepted) == edits  # 0 accepted edits lost
    assert preferences == {iid: 1 for iid in ids} and pairs == {iid: 1 for iid in ids}  # 0 learned twice (rows)
    assert set(inferred) == set(attempts)
    assert all(inferred[text] <= attempts[text] for text in attempts), (inferred, attempts)  # one inference a claim
    claimed_twice = [text for text, n in attempts.items() if n > 1]
    assert claimed_twice, "the kill came between two batches, not mid-batch"
    assert all(attempts[text] == 2 for text in claimed_twice) and len(claimed_twice) <= 32  # the killed batch only
    assert sum(n > 1 for n in inferred.values()) <= len(claimed_twice)


def _worker(data: Path, name: str, generator_url: str, **extra: str) -> tuple[subprocess.Popen, Path]:
    log = data / f"{name}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDLINE_")}
    env.update(REDLINE_DATA_DIR=str(data), REDLINE_GENERATOR="openai", REDLINE_GENERATOR_URL=generator_url,
               REDLINE_GENERATOR_RETRIES="0", HF_HUB_OFFLINE="1", **extra)
    proc = subprocess.Popen([sys.executable, "-m", "redline.cli", "worker", "--id", name], cwd=REPO, env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    return proc, log


def test_two_learners_on_one_store_never_run_the_same_job(tmp_path, database_env):
    """``serve --role api`` with two ``redline worker`` processes beside it: both learn, and the generator was asked
    to infer each edit exactly once."""
    server = scripted_server(tmp_path, "--role", "api", REDLINE_AUTH="false",
                             REDLINE_SCRIPTED_DELAY="inference=0.2", **database_env).wait_ready()
    workers = []
    try:
        assert "learner-0" not in server.children()
        workers = [_worker(tmp_path, name, server.generator.url + "/v1", **database_env) for name in ("w1", "w2")]
        ids = _interactions(server.url, 150, 7)
        with httpx.Client(base_url=server.url, timeout=30) as c:
            for name, (_, log) in zip(("w1", "w2"), workers):
                wait_until(lambda: f"learner {name} started" in log.read_text(), 60, f"{name} did not start")
            for i, iid in enumerate(ids):  # both learners poll the queue meanwhile
                assert c.post(f"/v1/interactions/{iid}/edit", json={"edited_text": f"kept {i}."}).status_code == 202
        with opened(tmp_path, database_env) as store:
            wait_until(lambda: count(store, "jobs", "status = 'done'") == 150, 120,
                  "the two learners did not learn every edit")
        for proc, _ in workers:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0
        inferred = server.generator.stats(subjects=True)["subjects"]
    finally:
        for proc, _ in workers:
            if proc.poll() is None:
                proc.kill()
        server.stop()
    assert inferred == {f"kept {i}.": 1 for i in range(150)}
    learned = {name: int(log.read_text().split(" stopped (")[1].split(" learned")[0]) for (_, log), name in
               zip(workers, ("w1", "w2"))}
    assert sum(learned.values()) == 150 and min(learned.values()) > 0, learned  # both took part


def test_sigterm_stops_every_process_with_nothing_half_written(tmp_path):
    """SIGTERM to ``redline serve`` under an edit load: it exits 0 with its children gone; every accepted edit is
    stored, each either learned (with its one preference and pair) or still queued and not claimed, never between;
    the next start learns the rest, once."""
    server = scripted_server(tmp_path, "--api-workers", "2", REDLINE_AUTH="false",
                             REDLINE_SCRIPTED_DELAY="inference=3").wait_ready()
    # learning lags: a 3 s step keeps the learner's batches at one job (see JobRunner.drain), so a backlog is left
    accepted: list[tuple[str, str]] = []
    lock = threading.Lock()
    ids = _interactions(server.url, 60, 5)
    children = server.children()
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(_post_edit, server.url, iid, f"kept {i}.", accepted, lock, tries=10)
                   for i, iid in enumerate(ids)]
        wait_until(lambda: sum(f.done() for f in futures) >= 30, 60, "the load did not start")
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(90) == 0, server.log()
        for f in futures:
            try:
                f.result()
            except AssertionError:  # refused once the server was gone: not accepted, nothing to check
                pass
    server.stop()
    for pid in children.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with _db(tmp_path) as db:
        stored = dict(db.execute("SELECT interaction_id, edited_text FROM edits"))
        states = db.execute("SELECT j.status, j.claimed_by, e.learned_at IS NOT NULL, COUNT(p.id), COUNT(pr.id)"
                            " FROM jobs j JOIN edits e ON e.interaction_id = j.interaction_id"
                            " LEFT JOIN preferences p ON p.interaction_id = j.interaction_id"
                            " LEFT JOIN pairs pr ON pr.interaction_id = j.interaction_id"
                            " WHERE j.kind = 'learn' GROUP BY j.id").fetchall()
    assert accepted and dict(accepted).items() <= stored.items()  # every 202 is on disk
    assert {s for s in states} <= {("done", None, 1, 1, 1), ("pending", None, 0, 0, 0)}, states
    assert ("pending", None, 0, 0, 0) in states, "nothing was left to learn at the stop"
    restarted = scripted_server(tmp_path, REDLINE_AUTH="false").wait_ready()
    try:
        with _db(tmp_path) as db:
            wait_until(lambda: db.execute("SELECT COUNT(*) FROM jobs WHERE status != 'done'").fetchone()[0] == 0, 60,
                  "the restart did not learn the rest")
            counts = db.execute("SELECT COUNT(*), COUNT(DISTINCT interaction_id) FROM preferences").fetchone()
    finally:
        restarted.stop()
    assert counts == (len(stored), len(stored))


def _learning(client: httpx.Client, iids: list[str]) -> list[dict]:
    return [client.get(f"/v1/interactions/{iid}").json()["learning"] for iid in iids]


def _parked_gauge(client: httpx.Client) -> float:
    line = next(line for line in client.get("/metrics").text.splitlines()
                if line.startswith("redline_learning_parked_jobs "))
    return float(line.split()[1])


def test_edits_accepted_while_the_generator_is_broken_are_parked_then_all_learned_once_it_answers(tmp_path):
    """The generator answers what the client cannot use (200 without choices) for a window: the 10 edits accepted
    meanwhile back off, then are parked (shown by GET, counted on /metrics), /ready says the generator is down;
    once it answers again the learner's probe queues them again and 10 of 10 are learned, none failed for good."""
    broken = tmp_path / "generator-broken"
    server = scripted_server(tmp_path, REDLINE_AUTH="false", REDLINE_SCRIPTED_BROKEN_FILE=str(broken),
                             REDLINE_LEARN_MAX_ATTEMPTS="2", REDLINE_LEARN_RETRY_MAX_SECONDS="1",
                             REDLINE_LEARN_RETRY_SECONDS="1").wait_ready()
    try:
        client = httpx.Client(base_url=server.url, timeout=30)
        iids = _interactions(server.url, 10, 3)
        assert client.get("/ready").status_code == 200
        broken.touch()
        for i, iid in enumerate(iids):
            assert client.post(f"/v1/interactions/{iid}/edit", json={"edited_text": f"Transit up {i}%."}
                               ).status_code == 202
        wait_until(lambda: all(x["status"] == "parked" for x in _learning(client, iids)), 120,
                   "the jobs were not parked")
        for learning in _learning(client, iids):
            assert learning["attempts"] == 2 and learning["retry_at"] is None and learning["learned_at"] is None
            assert learning["error"] == "KeyError: 'choices'"
        assert _parked_gauge(client) == 10
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.json()["checks"]["generator"] is False
        assert ready.json()["generator_error"]["error"] == "KeyError: 'choices'"
        broken.unlink()
        wait_until(lambda: all(x["status"] == "learned" for x in _learning(client, iids)), 120,
              "the parked jobs were not learned once the generator answered")
        assert client.get("/ready").status_code == 200 and _parked_gauge(client) == 0
        with _db(tmp_path) as db:
            assert db.execute("SELECT status, COUNT(*) FROM jobs WHERE kind = 'learn' GROUP BY status").fetchall() == [
                ("done", 10)]
            assert db.execute("SELECT COUNT(*) FROM preferences").fetchone()[0] == 10
        client.close()
    finally:
        server.stop()


def test_with_the_default_back_off_a_15_s_broken_window_loses_no_edit(tmp_path):
    """The issue's case with the shipped settings: the generator broken for about 15 s while 10 edits are accepted;
    their jobs back off (none fails for good) and once the generator answers the learner's probe (every 30 s)
    queues them at once: 10 of 10 learned."""
    broken = tmp_path / "generator-broken"
    server = scripted_server(tmp_path, REDLINE_AUTH="false", REDLINE_SCRIPTED_BROKEN_FILE=str(broken)).wait_ready()
    try:
        client = httpx.Client(base_url=server.url, timeout=30)
        iids = _interactions(server.url, 10, 3)
        broken.touch()
        for i, iid in enumerate(iids):
            assert client.post(f"/v1/interactions/{iid}/edit", json={"edited_text": f"Transit up {i}%."}
                               ).status_code == 202
        wait_until(lambda: all(x["attempts"] >= 1 for x in _learning(client, iids)), 60, "the jobs were not tried")
        time.sleep(max(0.0, 15 - 0.1 * len(iids)))
        waiting = _learning(client, iids)
        assert {x["status"] for x in waiting} == {"pending"} and all(x["retry_at"] for x in waiting)
        broken.unlink()
        wait_until(lambda: all(x["status"] == "learned" for x in _learning(client, iids)), 120,
              "the edits were not learned once the generator answered")
        with _db(tmp_path) as db:
            assert db.execute("SELECT status, COUNT(*) FROM jobs WHERE kind = 'learn' GROUP BY status").fetchall() == [
                ("done", 10)]
        client.close()
    finally:
        server.stop()


def test_parked_edits_are_retried_on_command_and_a_deleted_users_job_goes_with_it(tmp_path):
    """With the learner's probe far off, parked edits wait after the generator recovers until POST
    /v1/learning/retry (the caller's tenant only) queues them again; a deleted user's parked job goes with it."""
    broken = tmp_path / "generator-broken"
    server = scripted_server(tmp_path, REDLINE_SCRIPTED_BROKEN_FILE=str(broken), REDLINE_LEARN_MAX_ATTEMPTS="1",
                             REDLINE_LEARN_RETRY_SECONDS="3600").wait_ready()
    try:
        keys = {tenant: create_key(tmp_path, tenant) for tenant in ("acme", "other")}
        acme, other = (httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {keys[t]}"})
                       for t in ("acme", "other"))
        iids = [acme.post("/v1/generate", json={"user": user, "context": ARTICLE}).json()["interaction_id"]
                for user in ("a", "a", "b")]
        broken.touch()
        for iid in iids:
            assert acme.post(f"/v1/interactions/{iid}/edit", json={"edited_text": "Transit up."}).status_code == 202
        wait_until(lambda: all(x["status"] == "parked" for x in _learning(acme, iids)), 60, "the jobs were not parked")
        broken.unlink()
        assert acme.delete("/v1/users/b").status_code == 200
        assert _parked_gauge(acme) == 2
        assert other.post("/v1/learning/retry").json() == {"requeued": 0}  # another tenant's jobs are not its own
        assert [x["status"] for x in _learning(acme, iids[:2])] == ["parked", "parked"]
        assert acme.post("/v1/learning/retry").json() == {"requeued": 2}
        wait_until(lambda: all(x["status"] == "learned" for x in _learning(acme, iids[:2])), 60,
              "the retried jobs were not learned")
        with _db(tmp_path) as db:
            assert db.execute("SELECT status, COUNT(*) FROM jobs WHERE kind = 'learn' GROUP BY status").fetchall() == [
                ("done", 2)]
        acme.close()
        other.close()
    finally:
        server.stop()
