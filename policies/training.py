"""From stored pair features to a trained reward, and versioned checkpoints with an atomic swap.

Training reads numbers, never texts: each pair's features were computed once when it was learned (the store
keeps them with the pair), so a retraining is a closed-form / EM fit plus a vectorised replay of every user's
state, and its cost does not grow with the length of the texts or the number of embeddings.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Hashable, Sequence

import numpy as np

from .edit_features import NAMES
from .edit_profile import EditProfileReward

__all__ = ["read_pairs_jsonl", "TrainedRewards", "train_rewards", "RewardCheckpoints"]


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


class RewardCheckpoints:
    """Versioned checkpoint folders under ``root`` and a ``CURRENT`` pointer swapped atomically.

    ``publish`` writes a new folder completely, then replaces ``CURRENT`` with ``os.replace``; readers see either
    the old or the new checkpoint, never a half-written one. ``current()`` reloads only when the pointer changed;
    a checkpoint of another format (an older redline's) reads as none.
    """

    def __init__(self, root: str | Path, *, keep: int = 2):
        self.root = Path(root)
        self.keep = keep
        self._lock = threading.Lock()
        self._loaded: tuple[str, EditProfileReward] | None = None

    @property
    def pointer(self) -> Path:
        return self.root / "CURRENT"

    def current_info(self) -> dict | None:
        try:
            return json.loads(self.pointer.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def current(self) -> EditProfileReward | None:
        """The published model, or None when nothing (readable) was published."""
        return self.current_named()[1]

    def current_named(self) -> tuple[str | None, EditProfileReward | None]:
        """``(name, model)`` of the published checkpoint, read together; ``(None, None)`` without one."""
        info = self.current_info()
        if info is None:
            return None, None
        with self._lock:
            if self._loaded is None or self._loaded[0] != info.get("name"):
                try:
                    self._loaded = (info["name"], EditProfileReward.load(self.root / info["name"]))
                except (KeyError, ValueError):
                    return None, None
            return self._loaded

    def publish(self, model: EditProfileReward, meta: dict | None = None, *, keep: int | None = None) -> str:
        """Save ``model`` as a new checkpoint and make it current; returns its name. Older checkpoints beyond
        ``keep`` (default: the constructor's) are removed; ``keep=1`` leaves only the new one."""
        self.root.mkdir(parents=True, exist_ok=True)
        name = f"ckpt-{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 1_000_000_000:09d}"
        tmp = self.root / f".tmp-{name}"
        model.save(tmp, meta=meta)
        os.replace(tmp, self.root / name)
        pointer_tmp = self.root / f".CURRENT.{name}"
        pointer_tmp.write_text(json.dumps({"name": name, **(meta or {})}))
        os.replace(pointer_tmp, self.pointer)
        self._prune(name, self.keep if keep is None else keep)
        return name

    def _prune(self, current: str | None, keep: int) -> None:
        folders = sorted(p for p in self.root.glob("ckpt-*") if p.is_dir() and p.name != current)
        for old in folders[: max(0, len(folders) - (keep - 1))]:
            shutil.rmtree(old, ignore_errors=True)
        for tmp in self.root.glob(".tmp-*"):  # a publish a crash interrupted
            shutil.rmtree(tmp, ignore_errors=True)

    def remove_all(self) -> None:
        """Remove every checkpoint and the pointer (e.g. when the pairs they were trained on are all deleted)."""
        with self._lock:
            self.pointer.unlink(missing_ok=True)
            self._loaded = None
            self._prune(None, 0)
