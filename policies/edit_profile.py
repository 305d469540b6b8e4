"""A reward that knows whose edit it is: ideal-point heads over edit features, with MiCRo's structure.

Features z ∈ R^d describe a text RELATIVE to a reference (``EditFeatures``: the reference is the origin), so a
pair (kept ≻ draft) is one point, "what this user did to a draft". Everything below works in the standardised
space ẑ = z / scale.

Shared parameters, fitted on the pooled pairs of all users (with their user ids), in closed form or by EM:

- ``population_`` (d,): the mean edit;
- ``metric_`` (d,): a diagonal Fisher metric, m_j ∝ between-user variance / within-user variance², mean 1: the
  directions in which users' edits differ, not merely vary;
- ``heads_`` (K, d): K ideal points fitted by EM with per-user mixing weights; head k's reward is
  r_k(z) = −½ Σ_j m_j (ẑ_j − μ_kj)², a quadratic head: it prefers an amount ("a tenth shorter"), not a direction
  ("shorter"), which is what tells two writers apart who both shorten;
- an optional context router π(x) = softmax(V·PCA(x) + b) over the heads (``router=True``, trained on the heads'
  responsibilities);
- ``edit_head_`` (d,): one writer-agnostic linear Bradley-Terry head, "edited ≻ draft".

Per-user state (JSON; learned online from the user's own pairs only): ``{"log_weights": K, "sum": d raw
features, "n": int}``. ``update`` is pure: a Hedge step on the head losses L_k = −r_k(z) and a running sum.

A user's ideal point: w = normalise(ω_user · π(x)); prior = w·heads; μ_u = (Σ ẑ_kept + κ·prior) / (n + κ);
contrasted μ'_u = population + γ (μ_u − population) (γ > 1 pushes a user away from what everyone does).

- ``mode="profile"`` (default): r_u(z) = −Σ_j m_j (ẑ_j − μ'_uj)² / D̄ + λ·s(ẑ), with D̄ the mean training
  distance of an edit to its own user's mean and s the edit head scaled so a typical edit's margin is 1;
- ``mode="mixture"`` (MiCRo's score): r_u(z) = Σ_k w_k r_k(z), P(a ≻ b) = Σ_k w_k σ(r_k(a) − r_k(b)).

One module, over 450 lines on purpose: it is one estimator, and its fit, its online step (``hedge_step``), its
scores and its checkpoint (``save``/``to_bytes``) all read and write the same learned attributes (``_ARRAYS``);
cut apart, each piece would need the others' privates. The features it reads are ``edit_features``.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Hashable, Sequence

import numpy as np

__all__ = ["EditProfileReward", "NotFittedError", "hedge_step", "normalised_entropy", "CHECKPOINT_FORMAT",
           "CHECKPOINT_VERSION", "MODES"]

CHECKPOINT_FORMAT = "redline.edit_profile_reward"
CHECKPOINT_VERSION = 1
MODES = ("profile", "mixture")
_HYPER = ("n_heads", "mode", "gamma", "edit_weight", "kappa", "tau", "share", "em_iters", "n_init", "alpha",
          "router", "router_dim", "router_l2", "router_max_pairs", "edit_l2", "seed")
_ARRAYS = ("scale_", "population_", "metric_", "heads_", "head_counts_", "edit_coef_", "edit_precision_",
           "router_mean_", "router_components_", "router_weights_", "router_bias_")


class NotFittedError(RuntimeError):
    """A model was used before ``fit`` (or ``load``)."""


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _lse(a: np.ndarray, axis: int = -1) -> np.ndarray:
    top = np.max(a, axis=axis, keepdims=True)
    return np.squeeze(top, axis) + np.log(np.sum(np.exp(a - top), axis=axis))


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0)))


def _codes(users: Sequence[Hashable | None]) -> tuple[np.ndarray, list]:
    """Integer group codes in order of first appearance; each ``None`` (a pair without a user) is its own group."""
    index: dict = {}
    codes = np.empty(len(users), dtype=np.int64)
    labels: list = []
    for i, user in enumerate(users):
        if user is None:
            codes[i] = len(labels)
            labels.append(None)
            continue
        if user not in index:
            index[user] = len(labels)
            labels.append(user)
        codes[i] = index[user]
    return codes, labels


def _log_normalise(log_w: np.ndarray) -> np.ndarray:
    top = np.max(log_w, axis=-1, keepdims=True)
    return log_w - (top + np.log(np.sum(np.exp(log_w - top), axis=-1, keepdims=True)))


def hedge_step(log_weights, losses, tau: float = 1.0, share: float = 0.0) -> np.ndarray:
    """MiCRo stage 2, the online step of a user's reward state: the log-weights over the K heads move towards the
    heads that explain the newest labelled edit, log ω_k ← log ω_k − L_k / τ − log Z, then ``share`` of uniform
    weight is mixed back in, so no head is ruled out for good. Row-wise for (…, K) arrays: one call steps every
    user who has a pair at the same position of their history (``replay_users``).

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


class EditProfileReward:
    """Writer-aware reward over edit features (see the module docstring). sklearn habits: the constructor only
    stores hyperparameters, ``fit``/``partial_fit`` return ``self``, learned attributes end in ``_``.

    >>> model = EditProfileReward(n_heads=4).fit(Z, users)      # Z: (n, d) kept-vs-draft features
    >>> state = model.update(model.init_state(), z_kept)         # one online step, pure
    >>> model.score(state, Z_candidates)                         # (m,) rewards for this user, higher is better
    >>> model.predict_proba(state, z_a, z_b)                     # P(a ≻ b) for this user
    """

    def __init__(self, n_heads: int = 4, *, mode: str = "profile", gamma: float = 1.5, edit_weight: float = 1.0,
                 kappa: float = 4.0, tau: float = 1.0, share: float = 0.01, em_iters: int = 50, n_init: int = 4,
                 alpha: float = 1.0, router: bool = False, router_dim: int = 32, router_l2: float = 1.0,
                 router_max_pairs: int = 5_000, edit_l2: float = 1.0, seed: int = 0):
        self.n_heads = n_heads
        self.mode = mode
        self.gamma = gamma
        self.edit_weight = edit_weight
        self.kappa = kappa
        self.tau = tau
        self.share = share
        self.em_iters = em_iters
        self.n_init = n_init
        self.alpha = alpha
        self.router = router
        self.router_dim = router_dim
        self.router_l2 = router_l2
        self.router_max_pairs = router_max_pairs
        self.edit_l2 = edit_l2
        self.seed = seed

    # -- parameters -------------------------------------------------------------------------------

    def get_params(self) -> dict:
        return {name: getattr(self, name) for name in _HYPER}

    def set_params(self, **params) -> "EditProfileReward":
        """Change hyperparameters (e.g. ``mode``) of a fitted model; returns ``self``."""
        for name, value in params.items():
            if name not in _HYPER:
                raise ValueError(f"unknown hyperparameter {name!r}")
            setattr(self, name, value)
        self._check_params()
        return self

    def _check_params(self) -> None:
        if not isinstance(self.n_heads, int) or not 1 <= self.n_heads <= 64:
            raise ValueError(f"n_heads must be an integer in [1, 64], got {self.n_heads!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.tau <= 0 or self.gamma <= 0:
            raise ValueError(f"tau and gamma must be > 0, got tau={self.tau!r}, gamma={self.gamma!r}")
        if self.kappa < 0 or self.edit_weight < 0 or self.alpha < 0 or self.edit_l2 < 0 or self.router_l2 <= 0:
            raise ValueError("kappa, edit_weight, alpha and edit_l2 must be >= 0 and router_l2 > 0")
        if not 0.0 <= self.share < 1.0:
            raise ValueError(f"share must be in [0, 1), got {self.share!r}")
        if self.em_iters < 1 or self.n_init < 1 or self.router_dim < 1 or self.router_max_pairs < 2:
            raise ValueError("em_iters, n_init and router_dim must be >= 1, router_max_pairs >= 2")

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "heads_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError("this EditProfileReward is not fitted yet: call fit() or load() first")

    def _features(self, Z) -> np.ndarray:
        Z = np.asarray(Z, dtype=np.float64)
        if Z.ndim == 1:
            Z = Z[None, :]
        if Z.ndim != 2 or Z.shape[1] != self.n_features_in_:
            raise ValueError(f"expected features of shape (n, {self.n_features_in_}), got {Z.shape}")
        return Z

    # -- training ---------------------------------------------------------------------------------

    def fit(self, Z, users: Sequence[Hashable | None], contexts=None, *,
            feature_names: Sequence[str] | None = None) -> "EditProfileReward":
        """Fit the shared parameters on kept-vs-draft features ``Z`` (n, d) of all users, one user id per row
        (``None``: a pair of nobody in particular). ``contexts`` (n, c) trains the router when ``router=True``
        (rows of NaN: pairs without a context, left out of the router's training only).

        The Fisher metric needs two users with two pairs each; with fewer it is the inverse pooled variance.
        """
        self._check_params()
        Z = np.asarray(Z, dtype=np.float64)
        if Z.ndim != 2 or len(Z) == 0 or not np.all(np.isfinite(Z)):
            raise ValueError("expected finite features Z of shape (n, d) with n >= 1")
        if len(users) != len(Z):
            raise ValueError(f"{len(users)} user ids for {len(Z)} pairs")
        self.n_features_in_ = Z.shape[1]
        self.feature_names_in_ = list(feature_names) if feature_names is not None else [
            f"f{j}" for j in range(Z.shape[1])]
        if len(self.feature_names_in_) != Z.shape[1]:
            raise ValueError(f"{len(self.feature_names_in_)} feature names for {Z.shape[1]} features")
        rms = np.sqrt(np.mean(Z ** 2, axis=0))
        self.scale_ = np.where(rms > 1e-9, rms, 1.0)  # a feature nobody's edits move stays 0
        zs = Z / self.scale_
        codes, labels = _codes(users)
        self.population_ = zs.mean(axis=0)
        self._fit_metric(zs, codes, len(labels))
        self.heads_, self.head_counts_ = self._em(zs, codes, len(labels))
        self._fit_edit_head(zs)
        self.router_mean_ = np.zeros(0)
        self.router_components_ = np.zeros((0, 0))
        self.router_weights_ = np.zeros((self.n_heads, 0))
        self.router_bias_ = np.zeros(self.n_heads)
        if self.router and contexts is not None and self.n_heads > 1:
            self._fit_router(np.asarray(contexts, dtype=np.float64), zs)
        self.n_pairs_seen_ = int(len(Z))
        self.n_users_seen_ = sum(1 for u in labels if u is not None)
        return self

    def _fit_metric(self, zs: np.ndarray, codes: np.ndarray, n_groups: int) -> None:
        counts = np.bincount(codes, minlength=n_groups)
        sums = np.zeros((n_groups, zs.shape[1]))
        squares = np.zeros_like(sums)
        np.add.at(sums, codes, zs)
        np.add.at(squares, codes, zs ** 2)
        ok = counts >= 2
        if ok.sum() >= 2:
            means = sums[ok] / counts[ok, None]
            within = np.mean(squares[ok] / counts[ok, None] - means ** 2, axis=0) + 1e-6
            metric = means.var(axis=0) / within ** 2
            own_means = np.where(ok[codes, None], sums[codes] / np.maximum(counts[codes], 1)[:, None], zs)
            rows = ok[codes]
        else:
            within = zs.var(axis=0)
            metric = np.where(within > 1e-9, 1.0 / np.maximum(within, 1e-9), 0.0)
            own_means = np.broadcast_to(self.population_, zs.shape)
            rows = np.ones(len(zs), dtype=bool)
        if not np.any(metric > 0):
            metric = np.ones_like(metric)
        self.metric_ = metric / metric.mean()
        own = np.sum(self.metric_ * (zs - own_means) ** 2, axis=1)[rows]
        self.dbar_ = float(own.mean()) if own.size and own.mean() > 0 else 1.0

    def _sq_dist(self, zs: np.ndarray, centres: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
        """Σ_j m_j (ẑ_j − c_kj)² for rows (n, d) and centres (K, d) → (n, K), as three matrix products."""
        m = self.metric_ if keep is None else self.metric_ * keep
        return ((zs ** 2) @ m)[:, None] - 2.0 * (zs * m) @ centres.T + ((centres ** 2) @ m)[None, :]

    def _em(self, zs: np.ndarray, codes: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
        """K ideal points by EM: isotropic Gaussians in the metric, each user with its own mixing weights θ_u
        (Dirichlet α smoothing), so a head explains whole users' habits rather than single edits."""
        k, n = self.n_heads, len(zs)
        if k == 1 or n < k:
            return np.repeat(zs.mean(axis=0, keepdims=True), k, axis=0), np.full(k, n / k)
        rng = np.random.default_rng(self.seed)
        best = None
        for _ in range(self.n_init):
            mu = zs[rng.choice(n, k, replace=False)].copy()
            log_theta = np.full((n_groups, k), -math.log(k))
            previous = -np.inf
            for _ in range(self.em_iters):
                joint = -0.5 * self._sq_dist(zs, mu) + log_theta[codes]
                log_p = _lse(joint)
                resp = np.exp(joint - log_p[:, None])
                nk = resp.sum(axis=0)
                mu = (resp.T @ zs + 1e-3 * zs.mean(axis=0)) / (nk[:, None] + 1e-3)
                counts = np.full((n_groups, k), float(self.alpha))
                np.add.at(counts, codes, resp)
                log_theta = np.log(counts / counts.sum(axis=1, keepdims=True))
                objective = float(log_p.sum())
                if abs(objective - previous) < 1e-8 * n:
                    break
                previous = objective
            if best is None or objective > best[0]:
                best = (objective, mu, nk)
        return best[1], best[2]

    def _edit_newton(self, zs: np.ndarray, coef: np.ndarray, precision: np.ndarray, steps: int = 25) -> tuple:
        """Logistic regression "ẑ ≻ origin" (the rows and their negatives, no intercept) by Newton steps under a
        Gaussian prior N(coef, precision⁻¹); returns (coef, posterior precision). Written out rather than taken
        from sklearn because ``partial_fit`` needs the posterior precision (Laplace) to update without forgetting."""
        x = np.concatenate([zs, -zs])
        y = np.r_[np.ones(len(zs)), np.zeros(len(zs))]
        prior_mean, w = coef.copy(), coef.copy()
        hess = precision
        for _ in range(steps):
            p = _sigmoid(x @ w)
            grad = x.T @ (p - y) + precision @ (w - prior_mean)
            hess = (x * (p * (1 - p))[:, None]).T @ x + precision
            step = np.linalg.solve(hess, grad)
            w -= step
            if np.max(np.abs(step)) < 1e-9:
                break
        return w, hess

    def _fit_edit_head(self, zs: np.ndarray) -> None:
        d = zs.shape[1]
        self.edit_coef_, self.edit_precision_ = self._edit_newton(zs, np.zeros(d), self.edit_l2 * np.eye(d))
        margin = float(np.mean(np.abs(zs @ self.edit_coef_)))
        self.edit_margin_ = margin if margin > 0 else 1.0

    @property
    def edit_head_(self) -> np.ndarray:
        """The edit head's coefficients, scaled so a typical training edit's margin over its draft is 1."""
        return self.edit_coef_ / self.edit_margin_

    def _responsibilities(self, zs: np.ndarray) -> np.ndarray:
        joint = -0.5 * self._sq_dist(zs, self.heads_)
        return np.exp(joint - _lse(joint)[:, None])

    def _fit_router(self, contexts: np.ndarray, zs: np.ndarray) -> None:
        """Softmax regression of the heads' responsibilities on PCA-reduced context vectors (sklearn; soft labels
        as K weighted copies of each row), on at most ``router_max_pairs`` rows."""
        from sklearn.decomposition import PCA
        from sklearn.linear_model import LogisticRegression

        if contexts.ndim != 2 or len(contexts) != len(zs):
            raise ValueError("contexts must be (n, c) with one row per pair")
        rows = np.flatnonzero(np.all(np.isfinite(contexts), axis=1))
        if len(rows) > self.router_max_pairs:
            rows = np.random.default_rng(self.seed).choice(rows, self.router_max_pairs, replace=False)
        x = contexts[rows]
        dims = min(self.router_dim, x.shape[1], len(x) - 1)
        if dims < 1:  # fewer than two pairs with a context: no router
            return
        pca = PCA(n_components=dims, random_state=self.seed).fit(x)
        projected = pca.transform(x)
        resp = self._responsibilities(zs[rows])
        k = self.n_heads
        clf = LogisticRegression(C=1.0 / self.router_l2, max_iter=300)
        clf.fit(np.repeat(projected, k, axis=0), np.tile(np.arange(k), len(x)), sample_weight=resp.ravel())
        coef, bias = clf.coef_, clf.intercept_
        if k == 2:  # sklearn keeps one row for two classes: logit(head 1) − logit(head 0)
            coef, bias = np.vstack([np.zeros_like(coef[0]), coef[0]]), np.r_[0.0, bias[0]]
        self.router_mean_, self.router_components_ = pca.mean_, pca.components_
        self.router_weights_, self.router_bias_ = coef, bias

    def partial_fit(self, Z, users: Sequence[Hashable | None] | None = None, contexts=None
                    ) -> "EditProfileReward":
        """Update with new pairs without forgetting (fits from scratch when unfitted): the population mean and the
        heads as running means (one online EM step, the heads weighted by the pairs they already explain), the edit
        head by a Laplace-posterior Newton step. The standardisation, the metric and the router stay as the last
        ``fit`` left them: refit (closed form on stored features) to re-estimate those."""
        if not self.is_fitted:
            if users is None:
                users = [None] * len(np.atleast_2d(Z))
            return self.fit(Z, users, contexts, feature_names=getattr(self, "feature_names_in_", None))
        zs = self._features(Z) / self.scale_
        n0, n1 = self.n_pairs_seen_, len(zs)
        self.population_ = (n0 * self.population_ + zs.sum(axis=0)) / (n0 + n1)
        resp = self._responsibilities(zs)
        counts = self.head_counts_ + resp.sum(axis=0)
        self.heads_ = (self.head_counts_[:, None] * self.heads_ + resp.T @ zs) / counts[:, None]
        self.head_counts_ = counts
        self.edit_coef_, self.edit_precision_ = self._edit_newton(zs, self.edit_coef_, self.edit_precision_)
        self.edit_margin_ = (n0 * self.edit_margin_ + np.abs(zs @ self.edit_coef_).sum()) / (n0 + n1)
        self.n_pairs_seen_ = n0 + n1
        return self

    # -- per-user state ---------------------------------------------------------------------------

    def init_state(self) -> dict:
        """The state of a user without learned pairs: the heads' prior weights, no kept edits."""
        self._check_fitted()
        k = self.n_heads
        return {"log_weights": [-math.log(k)] * k, "sum": [0.0] * self.n_features_in_, "n": 0}

    def valid_state(self, state: dict | None) -> dict:
        """``state`` when it fits these heads and features, else a fresh one (after a retraining with another K or
        another feature set, a user's state restarts: ``replay`` rebuilds it from the stored pairs)."""
        self._check_fitted()
        if (not isinstance(state, dict) or len(state.get("log_weights") or ()) != self.n_heads
                or len(state.get("sum") or ()) != self.n_features_in_ or not isinstance(state.get("n"), int)):
            return self.init_state()
        return state

    def head_losses(self, Z) -> np.ndarray:
        """Per-head losses L_k = −r_k(z) = ½ Σ_j m_j (ẑ_j − μ_kj)² for raw feature rows (n, d) → (n, K)."""
        self._check_fitted()
        return 0.5 * self._sq_dist(self._features(Z) / self.scale_, self.heads_)

    def update(self, state: dict | None, z_kept, negatives=None) -> dict:
        """One online step for one pair (kept text ≻ its draft); returns a NEW state (``state`` is not changed).

        ``z_kept``: raw features of the kept text relative to the draft (d,). ``negatives`` (m, d), optional:
        other texts relative to the same draft that the user did not keep; they add Bradley-Terry losses
        −log σ(r_k(kept) − r_k(neg)) to the Hedge step only (the ideal point is a mean of kept edits).
        """
        state = self.valid_state(state)
        z = self._features(z_kept)
        if len(z) != 1:
            raise ValueError("update takes the features of one kept text")
        losses = self.head_losses(z)[0]
        if negatives is not None and len(negatives):
            neg = self.head_losses(negatives)
            losses = losses - np.sum(np.log(_sigmoid(neg - losses[None])), axis=0)
        log_w = hedge_step(state["log_weights"], losses, self.tau, self.share)
        return {"log_weights": [float(v) for v in log_w], "sum": [float(a + b) for a, b in zip(state["sum"], z[0])],
                "n": int(state["n"]) + 1}

    def replay_users(self, Z, users: Sequence[Hashable]) -> dict:
        """``{user: state}`` after ``update`` on each user's rows of ``Z`` in order, for every user at once: one
        vectorised Hedge step per position in the users' histories (as many steps as the longest history)."""
        self._check_fitted()
        Z = self._features(Z) if len(Z) else np.zeros((0, self.n_features_in_))
        if len(users) != len(Z):
            raise ValueError(f"{len(users)} user ids for {len(Z)} pairs")
        codes, labels = _codes(users)
        n_users, k = len(labels), self.n_heads
        log_w = np.full((n_users, k), -math.log(k))
        if len(Z):
            losses = self.head_losses(Z)
            by_user = np.argsort(codes, kind="stable")
            first = np.searchsorted(codes[by_user], np.arange(n_users))
            rank = np.empty(len(Z), dtype=np.int64)
            rank[by_user] = np.arange(len(Z)) - first[codes[by_user]]
            by_rank = np.argsort(rank, kind="stable")
            bounds = np.r_[0, np.cumsum(np.bincount(rank))]
            for r in range(len(bounds) - 1):
                rows = by_rank[bounds[r]:bounds[r + 1]]
                log_w[codes[rows]] = hedge_step(log_w[codes[rows]], losses[rows], self.tau, self.share)
        sums = np.zeros((n_users, self.n_features_in_))
        np.add.at(sums, codes, Z)
        counts = np.bincount(codes, minlength=n_users)
        return {user: {"log_weights": [float(v) for v in log_w[i]], "sum": [float(v) for v in sums[i]],
                       "n": int(counts[i])} for i, user in enumerate(labels) if user is not None}

    def replay(self, Z) -> dict:
        """The state after ``update`` on each row of ``Z`` (one user's pairs, oldest first)."""
        Z = np.asarray(Z, dtype=np.float64).reshape(-1, self.n_features_in_) if len(Z) else np.zeros((0, 1))
        return self.replay_users(Z, ["user"] * len(Z)).get("user") or self.init_state()

    # -- routing ----------------------------------------------------------------------------------

    def route(self, context=None) -> np.ndarray:
        """Router log-weights log π(x), (K,); uniform without a router or without a context."""
        self._check_fitted()
        if context is None or self.router_weights_.shape[1] == 0:
            return np.full(self.n_heads, -math.log(self.n_heads))
        x = (np.asarray(context, dtype=np.float64).reshape(-1) - self.router_mean_) @ self.router_components_.T
        logits = self.router_weights_ @ x + self.router_bias_
        return logits - _lse(logits)

    def weights(self, state: dict | None, context=None) -> np.ndarray:
        """The user's routed head weights w ∝ π(x) · ω_user, (K,)."""
        state = self.valid_state(state)
        log_w = np.asarray(state["log_weights"]) + self.route(context)
        return np.exp(log_w - _lse(log_w))

    def user_mean(self, state: dict | None, context=None) -> np.ndarray:
        """The user's mean edit in standardised units, shrunk towards their routed heads with weight κ."""
        state = self.valid_state(state)
        prior = self.weights(state, context) @ self.heads_
        if state["n"] + self.kappa <= 0:
            return prior
        return (np.asarray(state["sum"]) / self.scale_ + self.kappa * prior) / (state["n"] + self.kappa)

    def ideal_point(self, state: dict | None, context=None) -> np.ndarray:
        """The user's target in standardised units: the shrunk mean, contrasted with the population by γ."""
        return self.population_ + self.gamma * (self.user_mean(state, context) - self.population_)

    # -- scoring ----------------------------------------------------------------------------------

    def _keep(self, mask) -> np.ndarray:
        if mask is None:
            return np.ones(self.n_features_in_)
        keep = np.asarray(mask, dtype=bool)
        if keep.shape != (self.n_features_in_,):
            raise ValueError(f"mask must have {self.n_features_in_} entries, got {keep.shape}")
        return keep.astype(np.float64)

    def score(self, state: dict | None, Z, context=None, mask=None) -> np.ndarray:
        """Rewards (m,) of texts with raw features ``Z`` (m, d), all relative to ONE reference, for this user;
        higher is better. ``mask`` (d,) bool keeps some features only (``EditFeatures.form_mask`` for texts that
        are not revisions of the reference)."""
        self._check_fitted()
        zs = self._features(Z) / self.scale_
        keep = self._keep(mask)
        if self.mode == "mixture":
            return -0.5 * self._sq_dist(zs, self.heads_, keep) @ self.weights(state, context) / self.dbar_
        mu = self.ideal_point(state, context)
        dist = self._sq_dist(zs, mu[None, :], keep)[:, 0] / self.dbar_
        return -dist + self.edit_weight * (zs * keep) @ self.edit_head_

    def pairwise_proba(self, state: dict | None, Z, context=None, mask=None) -> np.ndarray:
        """(m, m) with entry [i, j] = P(text i ≻ text j) for this user (texts relative to one reference)."""
        self._check_fitted()
        if self.mode == "mixture":
            losses = 0.5 * self._sq_dist(self._features(Z) / self.scale_, self.heads_, self._keep(mask))
            margins = (losses[None, :, :] - losses[:, None, :]) / self.dbar_  # (m, m, K): L_k(j) − L_k(i)
            return _sigmoid(margins) @ self.weights(state, context)
        s = self.score(state, Z, context, mask)
        return _sigmoid(s[:, None] - s[None, :])

    def predict_proba(self, state: dict | None, z_a, z_b, context=None, mask=None) -> np.ndarray:
        """P(a ≻ b) for this user, row-wise for (n, d) arrays (a and b relative to the same reference)."""
        za, zb = self._features(z_a), self._features(z_b)
        if za.shape != zb.shape:
            raise ValueError(f"z_a {za.shape} and z_b {zb.shape} differ in shape")
        if self.mode == "mixture":
            keep = self._keep(mask)
            la = 0.5 * self._sq_dist(za / self.scale_, self.heads_, keep)
            lb = 0.5 * self._sq_dist(zb / self.scale_, self.heads_, keep)
            return _sigmoid((lb - la) / self.dbar_) @ self.weights(state, context)
        return _sigmoid(self.score(state, za, context, mask) - self.score(state, zb, context, mask))

    def describe_state(self, state: dict | None, context=None, top: int = 3) -> dict:
        """For inspection: the routed weights, their normalised entropy (1 = no lean), pairs learned, the head the
        user leans on, and the features in which the user's mean edit departs most from everyone's (raw units)."""
        state = self.valid_state(state)
        w = self.weights(state, context)
        mean = self.user_mean(state, context)
        gap = self.metric_ * (mean - self.population_) ** 2
        return {"weights": [round(float(v), 4) for v in w], "steps": int(state["n"]), "heads": self.n_heads,
                "top_head": int(np.argmax(w)), "entropy": round(normalised_entropy(w), 4),
                "departures": [{"feature": self.feature_names_in_[j],
                                "user": round(float(mean[j] * self.scale_[j]), 4),
                                "population": round(float(self.population_[j] * self.scale_[j]), 4)}
                               for j in np.argsort(-gap)[:top] if gap[j] > 0]}

    # -- persistence ------------------------------------------------------------------------------

    def _config(self, meta: dict | None) -> dict:
        return {
            "format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
            "versions": {"redline": _version("redline"), "numpy": np.__version__,
                         "scikit-learn": _version("scikit-learn")},
            "hyperparameters": self.get_params(), "feature_names": self.feature_names_in_,
            "n_features_in": int(self.n_features_in_), "dbar": self.dbar_, "edit_margin": self.edit_margin_,
            "n_pairs_seen": self.n_pairs_seen_, "n_users_seen": self.n_users_seen_, "meta": meta or {},
        }

    def _arrays(self) -> dict[str, np.ndarray]:
        return {name.rstrip("_"): getattr(self, name) for name in _ARRAYS}

    @classmethod
    def _from_parts(cls, config: dict, arrays, where: str) -> "EditProfileReward":
        if config.get("format") != CHECKPOINT_FORMAT or config.get("format_version") != CHECKPOINT_VERSION:
            raise ValueError(f"{where} is not a version-{CHECKPOINT_VERSION} {CHECKPOINT_FORMAT} checkpoint")
        model = cls(**config["hyperparameters"])
        try:
            for name in _ARRAYS:
                setattr(model, name, arrays[name.rstrip("_")])
        except (KeyError, ValueError) as exc:
            raise ValueError(f"unreadable weights in {where}: {exc}") from exc
        model.n_features_in_ = config["n_features_in"]
        model.feature_names_in_ = config["feature_names"]
        model.dbar_ = config["dbar"]
        model.edit_margin_ = config["edit_margin"]
        model.n_pairs_seen_ = config["n_pairs_seen"]
        model.n_users_seen_ = config["n_users_seen"]
        model.meta_ = config.get("meta", {})
        return model

    def save(self, path: str | Path, *, meta: dict | None = None) -> Path:
        """Write ``config.json`` (format, versions, hyperparameters, feature names, ``meta``) and ``weights.npz``."""
        self._check_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "weights.npz", **self._arrays())
        (folder / "config.json").write_text(json.dumps(self._config(meta), indent=2))
        return folder

    @classmethod
    def load(cls, path: str | Path) -> "EditProfileReward":
        """Load a folder written by ``save``; ``ValueError`` for anything else (another format or version)."""
        folder = Path(path)
        try:
            config = json.loads((folder / "config.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"no reward checkpoint in {folder}: {exc}") from exc
        try:
            with np.load(folder / "weights.npz") as arrays:
                return cls._from_parts(config, {k: arrays[k] for k in arrays.files}, str(folder))
        except OSError as exc:
            raise ValueError(f"unreadable weights in {folder}: {exc}") from exc

    def to_bytes(self, *, meta: dict | None = None) -> bytes:
        """The checkpoint as one blob (an ``.npz`` holding the arrays and the config as JSON), for a store row."""
        self._check_fitted()
        buffer = io.BytesIO()
        config = np.frombuffer(json.dumps(self._config(meta)).encode(), dtype=np.uint8)
        np.savez(buffer, **self._arrays(), config_json=config)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "EditProfileReward":
        """Load a blob written by ``to_bytes``; ``ValueError`` for anything else."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                parts = {k: arrays[k] for k in arrays.files}
            config = json.loads(parts.pop("config_json").tobytes())
        except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as exc:  # JSONDecodeError is a ValueError
            raise ValueError(f"no reward checkpoint in the blob: {exc!r}") from exc
        return cls._from_parts(config, parts, "the blob")
