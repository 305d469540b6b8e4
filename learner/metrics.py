"""The learner's Prometheus metrics. Under ``redline serve`` they are written to the supervisor's multiprocess
folder and every API process's ``/metrics`` reports them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from redline.runtime.metrics import LATENCY_BUCKETS

__all__ = ["LearnerMetrics"]


class LearnerMetrics:
    """Learning steps by outcome, the tokens learning spent, and the reward retraining (its seconds, and a gauge
    that is 1 while one runs), in their own registry."""

    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.learning = Histogram("redline_learning_seconds", "One learning step per job (a batch's time shared "
                                  "among its jobs), by outcome.", ["outcome"], registry=r, buckets=LATENCY_BUCKETS)
        self.tokens = Counter("redline_tokens_total", "Generator tokens spent.", ["kind", "source"], registry=r)
        self.retraining = Gauge("redline_reward_retraining", "1 while a learner runs train_rewards (a reward retrain "
                                "when one is due), else 0.", registry=r, multiprocess_mode="livemax")
        self.retrain = Histogram("redline_reward_retrain_seconds", "One retraining of the reward heads (background).",
                                 registry=r, buckets=LATENCY_BUCKETS)

    def observe_retrain(self, seconds: float) -> None:
        self.retrain.observe(seconds)

    def observe_learning(self, seconds: float, outcome: str, result=None) -> None:
        self.learning.labels(outcome).observe(seconds)
        if result is not None:
            self.tokens.labels("prompt", "learn").inc(result.tokens_in)
            self.tokens.labels("completion", "learn").inc(result.tokens_out)
