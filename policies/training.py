"""From stored pair features to a trained reward.

Training reads numbers, never texts: each pair's features were computed once when it was learned (the store
keeps them with the pair), so a retraining is a closed-form / EM fit plus a vectorised replay of every user's
state, and its cost does not grow with the length of the texts or the number of embeddings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Hashable, Sequence

import numpy as np

from .edit_features import NAMES
from .edit_profile import EditProfileReward

__all__ = ["read_pairs_jsonl", "TrainedRewards", "train_rewards"]


def read_pairs_jsonl(path: str | Path) -> list[dict]:
    """Pairs from a JSONL file: one object per line with ``context``, ``chosen``, ``rejected`` (strings)
    and an optional ``user``. Raises ``ValueError`` naming the first bad line."""
    pairs = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {number} of {path} is not JSON: {exc.msg}") from exc
        if not isinstance(row, dict) or not all(isinstance(row.get(f), str) and row.get(f).strip()
                                                for f in ("context", "chosen", "rejected")):
            raise ValueError(f"line {number} of {path} needs non-empty strings context, chosen and rejected")
        if "user" in row and row["user"] is not None and not isinstance(row["user"], str):
            raise ValueError(f"line {number} of {path}: user must be a string")
        pairs.append({"context": row["context"], "chosen": row["chosen"], "rejected": row["rejected"],
                      "user": row.get("user")})
    return pairs


@dataclass(frozen=True)
class TrainedRewards:
    """One training: the shared reward, and each user's state after replaying that user's pairs in order."""

    model: EditProfileReward
    states: dict


def train_rewards(features, users: Sequence[Hashable | None], contexts=None, *, n_heads: int = 4, seed: int = 0,
                  feature_names: Sequence[str] = NAMES, **hyper) -> TrainedRewards:
    """Fit the reward on stored pair features ``(n, d)`` (chosen relative to rejected; one user id per row, None
    for a pair of nobody in particular) and replay every user's state. ``contexts`` (n, c) trains the router
    (``router=True``). Raises ``ValueError`` without pairs.

    The agent's retraining and the LAMP evaluation both train this way.
    """
    features = np.asarray(features, dtype=np.float64)
    if len(features) == 0:
        raise ValueError("no preference pairs to train on")
    model = EditProfileReward(n_heads, seed=seed, **hyper).fit(features, users, contexts,
                                                              feature_names=feature_names)
    return TrainedRewards(model, model.replay_users(features, list(users)))
