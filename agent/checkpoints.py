"""The shared reward's checkpoints, kept in the store (``store.checkpoints``), so every process (API processes,
learners, on one host or several) scores with the same published reward and a removal reaches them all."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from redline.policies import EditProfileReward
from redline.store import Store

__all__ = ["RewardCheckpoints", "remove_file_checkpoints"]
KIND = "reward"


class RewardCheckpoints:
    """``publish(model, meta)`` a new checkpoint (atomically current in every process), ``current_named()`` the
    published one, loaded once per process and reloaded only when another one was published (one indexed read
    per call). A checkpoint that does not load (another format) reads as none."""

    def __init__(self, store: Store, *, keep: int = 2):
        self.store, self.keep = store, keep
        self._lock = threading.Lock()
        self._loaded: tuple[str, EditProfileReward | None] | None = None

    def current_info(self) -> dict | None:
        """``{"name", **meta}`` of the published checkpoint, or None."""
        row = self.store.checkpoints.current(KIND)
        return {"name": row["name"], **row["meta"]} if row else None

    def current(self) -> EditProfileReward | None:
        """The published model, or None when nothing (readable) was published."""
        return self.current_named()[1]

    def current_named(self) -> tuple[str | None, EditProfileReward | None]:
        """``(name, model)`` of the published checkpoint, read together; ``(None, None)`` without a readable one."""
        row = self.store.checkpoints.current(KIND)
        if row is None:
            return None, None
        with self._lock:
            if self._loaded is None or self._loaded[0] != row["name"]:
                data = self.store.checkpoints.data(row["name"])
                try:
                    model = EditProfileReward.from_bytes(data) if data is not None else None
                except ValueError:
                    model = None
                self._loaded = (row["name"], model)
            name, model = self._loaded
        return (name, model) if model is not None else (None, None)

    def publish(self, model: EditProfileReward, meta: dict | None = None, *, keep: int | None = None) -> str:
        """Store ``model`` as the new current checkpoint; returns its name. Older ones beyond ``keep`` (default:
        the constructor's) are removed in the same transaction; ``keep=1`` leaves only the new one."""
        return self.store.checkpoints.publish(KIND, model.to_bytes(meta=meta), meta,
                                              keep=self.keep if keep is None else keep)

    def names(self) -> list[str]:
        """Every stored checkpoint, oldest first."""
        return self.store.checkpoints.names(KIND)

    def remove_all(self) -> None:
        """Remove every checkpoint (e.g. when the pairs they were trained on are all deleted)."""
        self.store.checkpoints.remove_all(KIND)
        with self._lock:
            self._loaded = None


def remove_file_checkpoints(rewards_dir: Path) -> bool:
    """Remove what an older redline kept under ``DATA_DIR/rewards/``: checkpoint folders with a ``CURRENT`` pointer
    (trained on pairs a hard delete can no longer reach there; the store's checkpoints replace them) and the
    embeddings of pair texts, keyed by a hash of the text. Returns whether a checkpoint was removed (the caller
    queues a retraining, so the reward is back at once)."""
    if not rewards_dir.is_dir():
        return False
    folders = [*rewards_dir.glob("ckpt-*"), *rewards_dir.glob(".tmp-*")]
    had = bool(folders) or (rewards_dir / "CURRENT").exists()
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    for name in ("CURRENT", "embeddings.npz"):
        (rewards_dir / name).unlink(missing_ok=True)
    for pointer in rewards_dir.glob(".CURRENT.*"):
        pointer.unlink(missing_ok=True)
    return had
