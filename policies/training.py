"""From preference pairs (texts) to a trained reward model, and versioned checkpoints with atomic swap.

Texts are embedded through a caller-supplied ``encode(list[str]) -> (n, dim)`` function (the agent's
embedder), each distinct text once; an optional on-disk cache keeps vectors across retrains.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .features import RewardFeatures
from .mixture import MixtureRewardModel
from .routing import replay

__all__ = ["EmbeddingCache", "pair_features", "read_pairs_jsonl", "TrainedRewards", "train_reward_model",
           "RewardCheckpoints"]

Encode = Callable[[Sequence[str]], np.ndarray]


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Text → vector, embedding only what it has not seen; ``save()`` persists to an ``.npz`` file."""

    def __init__(self, encode: Encode, path: str | Path | None = None):
        self.encode = encode
        self.path = Path(path) if path else None
        self._vectors: dict[str, np.ndarray] = {}
        if self.path and self.path.exists():
            try:
                with np.load(self.path) as data:
                    self._vectors = dict(zip(data["keys"].tolist(), data["vectors"]))
            except (OSError, KeyError, ValueError):
                self._vectors = {}

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        keys = [_digest(t) for t in texts]
        missing = list(dict.fromkeys(t for t, k in zip(texts, keys) if k not in self._vectors))
        if missing:
            for text, vec in zip(missing, self.encode(missing)):
                self._vectors[_digest(text)] = np.asarray(vec, dtype=np.float32)
        return np.stack([self._vectors[k] for k in keys]) if keys else np.zeros((0, 0), np.float32)

    def save(self) -> None:
        if not self.path or not self._vectors:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array(list(self._vectors)), vectors=np.stack(list(self._vectors.values())))
        os.replace(tmp, self.path)


def pair_features(pairs: Sequence[dict], encode: Encode, features: RewardFeatures | None = None):
    """``(context vectors, φ(chosen), φ(rejected))`` for pairs ``{"context", "chosen", "rejected"}``.

    Every distinct text is embedded once, in one ``encode`` call.
    """
    features = features or RewardFeatures()
    texts = list(dict.fromkeys(t for p in pairs for t in (p["context"], p["chosen"], p["rejected"])))
    vectors = dict(zip(texts, encode(texts))) if texts else {}
    ctx = np.stack([vectors[p["context"]] for p in pairs])
    chosen = np.stack([vectors[p["chosen"]] for p in pairs])
    rejected = np.stack([vectors[p["rejected"]] for p in pairs])
    return (ctx, features.transform(ctx, chosen, [p["chosen"] for p in pairs]),
            features.transform(ctx, rejected, [p["rejected"] for p in pairs]))


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
    """One training: the shared reward heads, and each user's routing state (``{"weights", "steps"}``) after
    Hedge steps over that user's pairs in order under the new heads."""

    model: MixtureRewardModel
    routing: dict


def train_reward_model(pairs: Sequence[dict], encode: Encode, *, n_heads: int = 4, seed: int = 0, tau: float = 1.0,
                       features: RewardFeatures | None = None, group_by_user: bool = True, **hyper) -> TrainedRewards:
    """Fit the mixture on text pairs ``{"context", "chosen", "rejected", "user"?}`` (its router grouped by
    ``user`` unless ``group_by_user=False``), then replay the routing of every user (not None) over the heads'
    losses on that user's pairs. Raises ``ValueError`` without pairs.

    The agent's retraining and the LAMP evaluation both train this way.
    """
    if not pairs:
        raise ValueError("no preference pairs to train on")
    ctx, phi_w, phi_l = pair_features(pairs, encode, features)
    users = [p.get("user") for p in pairs]
    model = MixtureRewardModel(n_heads=n_heads, seed=seed, **hyper).fit(
        ctx, phi_w, phi_l, groups=users if group_by_user else None)
    losses = model.head_losses(phi_w, phi_l)
    routing = {}
    for user in dict.fromkeys(u for u in users if u is not None):
        rows = [i for i, u in enumerate(users) if u == user]
        routing[user] = replay(losses[rows], n_heads, tau=tau)
    return TrainedRewards(model, routing)


class RewardCheckpoints:
    """Versioned checkpoint folders under ``root`` and a ``CURRENT`` pointer swapped atomically.

    ``publish`` writes a new folder completely, then replaces ``CURRENT`` with ``os.replace``; readers
    see either the old or the new checkpoint, never a half-written one. ``current()`` reloads only
    when the pointer changed.
    """

    def __init__(self, root: str | Path, *, keep: int = 3):
        self.root = Path(root)
        self.keep = keep
        self._lock = threading.Lock()
        self._loaded: tuple[str, MixtureRewardModel] | None = None

    @property
    def pointer(self) -> Path:
        return self.root / "CURRENT"

    def current_info(self) -> dict | None:
        try:
            return json.loads(self.pointer.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def current(self) -> MixtureRewardModel | None:
        """The published model, or None when nothing was published (or it cannot be read)."""
        info = self.current_info()
        if info is None:
            return None
        with self._lock:
            if self._loaded is None or self._loaded[0] != info["name"]:
                try:
                    self._loaded = (info["name"], MixtureRewardModel.load(self.root / info["name"]))
                except ValueError:
                    return self._loaded[1] if self._loaded else None
            return self._loaded[1]

    def publish(self, model: MixtureRewardModel, meta: dict | None = None) -> str:
        """Save ``model`` as a new checkpoint and make it current; returns its name."""
        self.root.mkdir(parents=True, exist_ok=True)
        name = f"ckpt-{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 1_000_000_000:09d}"
        tmp = self.root / f".tmp-{name}"
        model.save(tmp, meta=meta)
        os.replace(tmp, self.root / name)
        pointer_tmp = self.root / f".CURRENT.{name}"
        pointer_tmp.write_text(json.dumps({"name": name, **(meta or {})}))
        os.replace(pointer_tmp, self.pointer)
        self._prune(name)
        return name

    def _prune(self, current: str) -> None:
        folders = sorted(p for p in self.root.glob("ckpt-*") if p.is_dir() and p.name != current)
        for old in folders[: max(0, len(folders) - (self.keep - 1))]:
            shutil.rmtree(old, ignore_errors=True)
