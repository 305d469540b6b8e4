"""MiCRo stage 2: online per-user routing over the reward heads.

A user's state is a weight vector ω over the K heads (uniform to start). After each labelled pair
(kept text ≻ draft) it takes one mirror-descent / Hedge step

    ω_k ← ω_k · exp(−L_k / τ) / Z,     L_k = −log σ(r_k(y_w) − r_k(y_l)),

computed in log space, with a small fixed share of uniform weight so no head is ever ruled out for good.
For a context x the user's routed weights combine the context router and the state:
w(x) ∝ π_k(x) · ω_k.
"""

from __future__ import annotations

import numpy as np

__all__ = ["hedge_step", "initial_state", "update_state", "combine", "replay", "describe_state"]


def _normalise_log(log_w: np.ndarray) -> np.ndarray:
    log_w = np.asarray(log_w, dtype=np.float64)
    m = np.max(log_w)
    return log_w - (m + np.log(np.sum(np.exp(log_w - m))))


def hedge_step(log_weights, losses, tau: float = 1.0, share: float = 0.0) -> np.ndarray:
    """One Hedge step in log space: returns normalised log ω' with ω' ∝ ω · exp(−losses / τ).

    ``share`` mixes in that fraction of the uniform distribution afterwards (fixed-share Hedge).
    """
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau!r}")
    if not 0.0 <= share < 1.0:
        raise ValueError(f"share must be in [0, 1), got {share!r}")
    log_w = _normalise_log(np.asarray(log_weights, dtype=np.float64) - np.asarray(losses, dtype=np.float64) / tau)
    if share > 0:
        k = len(log_w)
        log_w = np.logaddexp(np.log1p(-share) + log_w, np.log(share / k))
    return log_w


def initial_state(n_heads: int) -> dict:
    """The state of a user with no labelled pairs yet: uniform weights, zero steps."""
    return {"weights": [1.0 / n_heads] * n_heads, "steps": 0}


def update_state(state: dict | None, losses, *, tau: float = 1.0, share: float = 0.01) -> dict:
    """The store's ``{"weights", "steps"}`` after one Hedge step on one pair's per-head ``losses``.

    A missing state, or one for a different number of heads (the heads were retrained), starts uniform.
    """
    losses = np.asarray(losses, dtype=np.float64).ravel()
    k = len(losses)
    if state is None or len(state.get("weights", ())) != k:
        state = initial_state(k)
    log_w = np.log(np.clip(np.asarray(state["weights"], dtype=np.float64), 1e-300, None))
    new = np.exp(hedge_step(log_w, losses, tau=tau, share=share))
    return {"weights": [float(v) for v in new], "steps": int(state.get("steps", 0)) + 1}


def replay(loss_rows, n_heads: int, *, tau: float = 1.0, share: float = 0.01) -> dict:
    """The state after Hedge steps on each row of ``loss_rows`` (n, K) in order (e.g. after retraining)."""
    state = initial_state(n_heads)
    for losses in np.asarray(loss_rows, dtype=np.float64).reshape(-1, n_heads):
        state = update_state(state, losses, tau=tau, share=share)
    return state


def combine(router_weights, user_weights=None) -> np.ndarray:
    """Routed weights w ∝ π(x) · ω for router rows (n, K) or (K,); no user state → π(x) unchanged."""
    pi = np.asarray(router_weights, dtype=np.float64)
    if user_weights is None:
        return pi
    omega = np.asarray(user_weights, dtype=np.float64)
    if omega.shape[-1] != pi.shape[-1]:
        return pi
    log_w = np.log(np.clip(pi, 1e-300, None)) + np.log(np.clip(omega, 1e-300, None))
    log_w = log_w - log_w.max(axis=-1, keepdims=True)
    w = np.exp(log_w)
    return w / w.sum(axis=-1, keepdims=True)


def describe_state(state: dict | None) -> dict | None:
    """What a user's routing leans on, for inspection: weights, steps, top head, normalised entropy."""
    if not state:
        return None
    w = np.asarray(state["weights"], dtype=np.float64)
    k = len(w)
    entropy = float(-(w * np.log(np.clip(w, 1e-300, None))).sum() / np.log(k)) if k > 1 else 0.0
    return {"weights": [round(float(v), 4) for v in w], "steps": int(state.get("steps", 0)), "heads": k,
            "top_head": int(np.argmax(w)), "entropy": round(entropy, 4)}
