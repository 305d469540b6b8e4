"""MiCRo stage 2: the online Hedge step over the reward heads, in log space, for one user or many at once.

A user's log-weights over the K heads move towards the heads that explain their newest labelled edit:

    log ω_k ← log ω_k − L_k / τ − log Z,

then a small fixed share of uniform weight is mixed back in, so no head is ruled out for good. Rows are
independent, so one call steps every user who has a pair at the same position of their history (the
vectorised replay after a retraining).
"""

from __future__ import annotations

import numpy as np

__all__ = ["hedge_step", "normalised_entropy"]


def _log_normalise(log_w: np.ndarray) -> np.ndarray:
    top = np.max(log_w, axis=-1, keepdims=True)
    return log_w - (top + np.log(np.sum(np.exp(log_w - top), axis=-1, keepdims=True)))


def hedge_step(log_weights, losses, tau: float = 1.0, share: float = 0.0) -> np.ndarray:
    """Normalised log ω' ∝ ω · exp(−losses / τ), row-wise for (…, K) arrays; ``share`` of uniform mixed in after.

    >>> np.exp(hedge_step(np.log([0.5, 0.5]), [0.0, 1.0])).round(3).tolist()
    [0.731, 0.269]
    """
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau!r}")
    if not 0.0 <= share < 1.0:
        raise ValueError(f"share must be in [0, 1), got {share!r}")
    log_w = _log_normalise(np.asarray(log_weights, dtype=np.float64) - np.asarray(losses, dtype=np.float64) / tau)
    if share > 0:
        k = log_w.shape[-1]
        log_w = np.logaddexp(np.log1p(-share) + log_w, np.log(share / k))
    return log_w


def normalised_entropy(weights) -> float:
    """Entropy of a weight vector divided by log K: 1 = no lean at all, 0 = all weight on one head."""
    w = np.asarray(weights, dtype=np.float64)
    if w.size < 2:
        return 0.0
    return float(-(w * np.log(np.clip(w, 1e-300, None))).sum() / np.log(w.size))
