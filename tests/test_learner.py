"""The learner (redline.learner.LearningWorker): retraining runs on its own schedule while a backlog is being
learned, and a stop is prompt, leaving the jobs not started queued."""

import threading
import time

from stores import job_counts

from redline.agent import JobOutcome
from redline.learner import LearnerMetrics, LearningWorker


class BacklogAgent:
    """A learning queue that never empties until released: one job learned every few milliseconds."""

    owner = "backlog"

    def __init__(self):
        self.learned = 0
        self.alive_said = 0
        self.retrains_during_backlog = 0
        self.backlog = threading.Event()
        self.backlog.set()

    def run_jobs(self, *, stopping, context, on_outcome):
        while not stopping() and self.backlog.is_set():
            self.learned += 1
            on_outcome(JobOutcome(self.learned, f"i{self.learned}", "learned", False, 0.001))
            time.sleep(0.005)
        return []

    def release_claims(self):
        return 0

    def learner_alive(self, *, seconds):
        self.alive_said += 1

    def learner_gone(self):
        self.alive_said = -1

    def wait_for_jobs(self, timeout):
        time.sleep(timeout)

    def retrain_queued(self):
        return False

    def train_rewards(self):
        if self.backlog.is_set():
            self.retrains_during_backlog += 1
        time.sleep(0.02)  # a retrain takes a while; learning goes on meanwhile
        return {"seconds": 0.02}


def test_retraining_runs_while_a_backlog_is_learned_and_stop_is_prompt():
    agent = BacklogAgent()
    worker = LearningWorker(agent, LearnerMetrics(), maintenance_interval=0.05, poll_interval=0.05).start()
    try:
        end = time.monotonic() + 10
        while agent.retrains_during_backlog < 2 and time.monotonic() < end:
            time.sleep(0.01)
        learned_at_retrain = agent.learned
        assert agent.retrains_during_backlog >= 2 and worker.retrains >= 1
        assert worker.alive
    finally:
        worker.stop(timeout=5)
    assert not worker.alive and agent.backlog.is_set()  # stopped with the backlog still there
    assert agent.alive_said == -1  # it said it was alive, and withdrew that at the stop
    assert agent.learned >= learned_at_retrain > 0


def test_the_learner_queues_again_the_jobs_the_generator_failed_once_its_probe_gets_an_answer(make_agent):
    from doubles import ScriptedGenerator

    agent = make_agent(ScriptedGenerator(), learn_max_attempts=1)
    iid = agent.generate("alice", "The council voted to extend the bike lanes.").interaction_id
    agent.generator.down = True
    agent.submit_edit(iid, "Bike lanes: extended.")
    worker = LearningWorker(agent, LearnerMetrics(), retry_after=0.05, poll_interval=0.05, probe_interval=0.05,
                            maintenance_interval=3600).start()
    try:
        end = time.monotonic() + 10
        while job_counts(agent.store) != {"parked": 1} and time.monotonic() < end:
            time.sleep(0.02)
        assert job_counts(agent.store) == {"parked": 1}
        assert agent.store.jobs.get(iid)["error_kind"] == "generator"
        agent.generator.down = False
        while job_counts(agent.store) != {"done": 1} and time.monotonic() < end:
            time.sleep(0.02)
        assert job_counts(agent.store) == {"done": 1} and worker.learned == 1
    finally:
        worker.stop(timeout=5)
        agent.close()
