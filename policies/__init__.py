"""The reward (features of an edit relative to its draft; shared ideal-point heads, MiCRo-style; per-user online
state), candidate planning and selection, training on stored features; a trained reward saves to a folder or one
blob (``EditProfileReward.to_bytes``).

Never imports ``agent`` or ``api``; the agent drives it with texts and numbers it already has.
"""

from .edit_features import FEATURES_VERSION, EditFeatures
from .edit_profile import MODES, EditProfileReward, NotFittedError, hedge_step, normalised_entropy
from .selection import (
    CANDIDATE_MODES,
    STRATEGIES,
    CandidatePlan,
    batch_layout,
    plan_candidates,
    score_candidates,
    select,
)
from .training import TrainedRewards, read_pairs_jsonl, train_rewards

__all__ = [
    "EditFeatures", "FEATURES_VERSION", "EditProfileReward", "NotFittedError", "MODES",
    "hedge_step", "normalised_entropy",
    "STRATEGIES", "CANDIDATE_MODES", "CandidatePlan", "plan_candidates", "batch_layout", "score_candidates", "select",
    "TrainedRewards", "read_pairs_jsonl", "train_rewards",
]
