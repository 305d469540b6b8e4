"""Reward heads (MiCRo stage 1), online per-user routing (stage 2), best-of-n / RPS selection.

Never imports ``agent`` or ``api``; the agent drives it with vectors it already computed.
"""

from .features import RewardFeatures, StyleFeatures
from .mixture import MixtureRewardModel, NotFittedError
from .routing import combine, describe_state, hedge_step, replay, update_state
from .selection import STRATEGIES, CandidatePlan, batch_layout, plan_candidates, score_candidates, select
from .training import (
                       EmbeddingCache,
                       RewardCheckpoints,
                       TrainedRewards,
                       pair_features,
                       read_pairs_jsonl,
                       train_reward_model,
)

__all__ = [
    "StyleFeatures", "RewardFeatures", "MixtureRewardModel", "NotFittedError",
    "hedge_step", "update_state", "replay", "combine", "describe_state",
    "STRATEGIES", "CandidatePlan", "plan_candidates", "batch_layout", "score_candidates", "select",
    "EmbeddingCache", "RewardCheckpoints", "pair_features", "read_pairs_jsonl", "TrainedRewards",
    "train_reward_model",
]
