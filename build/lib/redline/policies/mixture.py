"""MiCRo stage 1: K Bradley-Terry reward heads mixed by a context-aware router.

    P(y_w ≻ y_l | x) = Σ_k π_k(x) σ(r_k(x, y_w) − r_k(x, y_l)),   r_k(x, y) = w_k · φ̂(x, y),
    π(x) = softmax(V x + b)

trained by maximum likelihood with an entropy bonus on π (keeps the router from collapsing on one head
before the heads have specialised) and L2 on the weights. ``n_heads=1`` is the single Bradley-Terry baseline.
"""

from __future__ import annotations

import json
import math
from importlib import metadata
from pathlib import Path

import numpy as np

__all__ = ["MixtureRewardModel", "NotFittedError", "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION"]

CHECKPOINT_FORMAT = "redline.mixture_reward"
CHECKPOINT_VERSION = 1
_HYPER = ("n_heads", "l2", "router_l2", "entropy_reg", "max_iter", "lr", "n_init", "seed")


class NotFittedError(RuntimeError):
    """A model was used before ``fit`` (or ``load``)."""


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _log_sigmoid(z: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -z)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _kmeans(x: np.ndarray, k: int, rng: np.random.Generator, iters: int = 20) -> np.ndarray:
    """Spherical k-means (k-means++ seeding) of unit rows; returns (k, d) unit centroids."""
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        dist = np.min(1.0 - x @ np.array(centres).T, axis=1).clip(min=0) + 1e-12
        centres.append(x[rng.choice(len(x), p=dist / dist.sum())])
    centres = np.array(centres)
    for _ in range(iters):
        labels = np.argmax(x @ centres.T, axis=1)
        for j in range(k):
            if np.any(labels == j):
                m = x[labels == j].sum(axis=0)
                centres[j] = m / (np.linalg.norm(m) + 1e-12)
    return centres.astype(np.float32)


class MixtureRewardModel:
    """K reward heads over features φ and a router over context vectors.

    >>> model = MixtureRewardModel(n_heads=4, seed=0).fit(ctx, phi_chosen, phi_rejected)
    >>> model.rewards(phi)            # (n, K) per-head rewards
    >>> model.route(ctx)              # (n, K) router weights π(x)
    >>> model.predict_proba(ctx, phi_a, phi_b)   # P(a ≻ b | x) under the mixture
    """

    def __init__(self, n_heads: int = 4, *, l2: float = 1e-2, router_l2: float = 1e-2, entropy_reg: float = 0.05,
                 max_iter: int = 300, lr: float = 0.05, n_init: int = 2, seed: int = 0):
        self.n_heads = n_heads
        self.l2 = l2
        self.router_l2 = router_l2
        self.entropy_reg = entropy_reg
        self.max_iter = max_iter
        self.lr = lr
        self.n_init = n_init
        self.seed = seed

    # -- parameters -------------------------------------------------------------------------------

    def get_params(self) -> dict:
        return {name: getattr(self, name) for name in _HYPER}

    def _check_params(self) -> None:
        if not isinstance(self.n_heads, int) or not 1 <= self.n_heads <= 64:
            raise ValueError(f"n_heads must be an integer in [1, 64], got {self.n_heads!r}")
        for name in ("l2", "router_l2", "entropy_reg"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.max_iter < 1 or self.n_init < 1 or self.lr <= 0:
            raise ValueError("max_iter and n_init must be >= 1 and lr > 0")

    def _check_fitted(self) -> None:
        if not hasattr(self, "head_weights_"):
            raise NotFittedError("this MixtureRewardModel is not fitted yet: call fit() or load() first")

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "head_weights_")

    # -- training ---------------------------------------------------------------------------------

    @staticmethod
    def _check_pairs(ctx, phi_w, phi_l):
        ctx = np.asarray(ctx, dtype=np.float32)
        phi_w = np.asarray(phi_w, dtype=np.float32)
        phi_l = np.asarray(phi_l, dtype=np.float32)
        if ctx.ndim != 2 or phi_w.ndim != 2 or phi_w.shape != phi_l.shape or len(ctx) != len(phi_w):
            raise ValueError("expected context (n, c), chosen (n, d) and rejected (n, d) arrays with equal n")
        if len(ctx) == 0:
            raise ValueError("no pairs to fit on")
        return ctx, phi_w, phi_l

    def fit(self, context_vectors, phi_chosen, phi_rejected, groups=None) -> "MixtureRewardModel":
        """Train from scratch on pairs (chosen ≻ rejected in context); returns ``self``.

        ``groups`` (optional, one label per pair, e.g. the user): pairs of one group share a learned
        offset on the router's log-weights while training — the offline counterpart of the online
        per-user routing state — so heads can specialise on users whose contexts look alike. The
        offsets are not kept: at inference the context router stands alone until a user's own state exists.
        """
        self._check_params()
        ctx, phi_w, phi_l = self._check_pairs(context_vectors, phi_chosen, phi_rejected)
        both = np.concatenate([phi_w, phi_l])
        self.mean_ = both.mean(axis=0)
        self.scale_ = np.where(both.std(axis=0) > 1e-6, both.std(axis=0), 1.0).astype(np.float32)
        self.n_features_in_ = phi_w.shape[1]
        self.context_dim_ = ctx.shape[1]
        group_index = self._group_index(groups, len(ctx))
        best = None
        diff = (phi_w - phi_l) / self.scale_
        for restart in range(self.n_init):
            params, loss = self._train(ctx, phi_w, phi_l, self._init_params(restart, diff), self.max_iter,
                                       group_index)
            if best is None or loss < best[1]:
                best = (params, loss)
        self._set(*best)
        self.n_pairs_seen_ = len(ctx)
        return self

    def partial_fit(self, context_vectors, phi_chosen, phi_rejected, groups=None, *, max_iter: int | None = None
                    ) -> "MixtureRewardModel":
        """Continue training from the current weights on new pairs (fits from scratch when unfitted)."""
        if not self.is_fitted:
            return self.fit(context_vectors, phi_chosen, phi_rejected, groups)
        ctx, phi_w, phi_l = self._check_pairs(context_vectors, phi_chosen, phi_rejected)
        start = (self.head_weights_, self.router_weights_, self.router_bias_)
        params, loss = self._train(ctx, phi_w, phi_l, start, max_iter or max(1, self.max_iter // 3),
                                   self._group_index(groups, len(ctx)))
        self._set(params, loss)
        self.n_pairs_seen_ += len(ctx)
        return self

    @staticmethod
    def _group_index(groups, n: int):
        if groups is None:
            return None
        labels = list(groups)
        if len(labels) != n:
            raise ValueError(f"groups has {len(labels)} labels for {n} pairs")
        known = {g for g in labels if g is not None}
        if not known:
            return None
        codes = {g: i for i, g in enumerate(sorted(known, key=str))}
        return np.array([codes.get(g, -1) for g in labels]), len(codes)

    def _init_params(self, restart: int, diff: np.ndarray):
        """Heads start at k-means centroids of the pairs' (normalised) feature differences — each head
        begins as one kind of edit, so heads can specialise — plus seeded noise; the router starts near uniform."""
        rng = np.random.default_rng(self.seed * 1000 + restart)
        d, c, k = self.n_features_in_, self.context_dim_, self.n_heads
        heads = rng.normal(0.0, 1.0 / math.sqrt(d), size=(k, d)).astype(np.float32)
        if k > 1 and len(diff) >= k:
            heads += _kmeans(diff / (np.linalg.norm(diff, axis=1, keepdims=True) + 1e-9), k, rng)
        router = rng.normal(0.0, 0.01, size=(k, c)).astype(np.float32)
        return heads, router, np.zeros(k, dtype=np.float32)

    def _set(self, params, loss) -> None:
        self.head_weights_, self.router_weights_, self.router_bias_ = (np.asarray(p, dtype=np.float32) for p in params)
        self.loss_ = float(loss)

    def _train(self, ctx, phi_w, phi_l, start, max_iter, group_index=None):
        """Full-batch Adam on the regularised negative log-likelihood, with analytic gradients (numpy:
        small problems, no thread contention with the embedder). Deterministic given ``start``."""
        diff = ((phi_w - phi_l) / self.scale_).astype(np.float64)
        x = ctx.astype(np.float64)
        params = [np.array(p, dtype=np.float64) for p in start]
        groups = None
        if group_index is not None and self.n_heads > 1:
            codes, n_groups = group_index
            member = np.zeros((len(codes), n_groups))  # one-hot; pairs without a group get no offset
            member[codes >= 0, codes[codes >= 0]] = 1.0
            groups = member
            params.append(np.zeros((n_groups, self.n_heads)))
        moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
        b1, b2, eps = 0.9, 0.999, 1e-8
        for t in range(1, max_iter + 1):
            _, grads = self._objective(diff, x, *params, groups=groups)
            for i, (p, g) in enumerate(zip(params, grads)):
                m, v = moments[i]
                m *= b1
                m += (1 - b1) * g
                v *= b2
                v += (1 - b2) * g * g
                p -= self.lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        nll, _ = self._objective(diff, x, *params, groups=groups)
        return params[:3], nll

    def _objective(self, diff, x, heads, router, bias, offsets=None, *, groups=None):
        """(negative log-likelihood, gradients of the regularised loss w.r.t. heads, router, bias
        [, per-group router offsets])."""
        n, k = len(diff), self.n_heads
        margins = diff @ heads.T  # (n, K)
        log_sig = _log_sigmoid(margins)
        if k == 1:
            log_pi = np.zeros_like(margins)
        else:
            logits = x @ router.T + bias
            if offsets is not None:
                logits = logits + groups @ offsets
            log_pi = _log_softmax(logits)
        joint = log_pi + log_sig
        top = joint.max(axis=1, keepdims=True)
        log_p = top[:, 0] + np.log(np.exp(joint - top).sum(axis=1))
        nll = float(-log_p.mean())
        resp = np.exp(joint - log_p[:, None])  # posterior over heads per pair
        d_margins = -resp * (1.0 - np.exp(log_sig)) / n
        g_heads = d_margins.T @ diff + 2.0 * self.l2 * heads / k
        if k == 1:
            return nll, (g_heads, np.zeros_like(router), np.zeros_like(bias))
        pi = np.exp(log_pi)
        entropy = -(pi * log_pi).sum(axis=1, keepdims=True)
        d_logits = -(resp - pi) / n + self.entropy_reg * pi * (log_pi + entropy) / n
        g_router = d_logits.T @ x + 2.0 * self.router_l2 * router
        grads = (g_heads, g_router, d_logits.sum(axis=0))
        if offsets is not None:
            grads += (groups.T @ d_logits + 2.0 * self.router_l2 * offsets,)
        return nll, grads

    def loss(self, context_vectors, phi_chosen, phi_rejected) -> float:
        """Mean negative log-likelihood of pairs under the fitted mixture."""
        self._check_fitted()
        ctx, phi_w, phi_l = self._check_pairs(context_vectors, phi_chosen, phi_rejected)
        diff = ((phi_w - phi_l) / self.scale_).astype(np.float64)
        return self._objective(diff, ctx.astype(np.float64), self.head_weights_.astype(np.float64),
                               self.router_weights_.astype(np.float64),
                               self.router_bias_.astype(np.float64))[0]

    # -- inference --------------------------------------------------------------------------------

    def rewards(self, phi) -> np.ndarray:
        """Per-head rewards r_k(x, y) of shape (n, K) for feature rows ``phi``."""
        self._check_fitted()
        phi = np.asarray(phi, dtype=np.float32)
        if phi.ndim != 2 or phi.shape[1] != self.n_features_in_:
            raise ValueError(f"expected features of shape (n, {self.n_features_in_}), got {phi.shape}")
        return ((phi - self.mean_) / self.scale_) @ self.head_weights_.T

    def route(self, context_vectors) -> np.ndarray:
        """Router weights π(x) of shape (n, K); rows sum to one."""
        self._check_fitted()
        ctx = np.atleast_2d(np.asarray(context_vectors, dtype=np.float32))
        if ctx.shape[1] != self.context_dim_:
            raise ValueError(f"expected context vectors of dimension {self.context_dim_}, got {ctx.shape[1]}")
        if self.n_heads == 1:
            return np.ones((len(ctx), 1))
        return np.exp(_log_softmax(ctx @ self.router_weights_.T + self.router_bias_))

    def head_losses(self, phi_chosen, phi_rejected) -> np.ndarray:
        """L_k = −log σ(r_k(y_w) − r_k(y_l)) per pair and head, shape (n, K)."""
        return -_log_sigmoid(self.rewards(phi_chosen) - self.rewards(phi_rejected))

    def predict_proba(self, context_vectors, phi_a, phi_b, weights=None) -> np.ndarray:
        """P(a ≻ b | x) = Σ_k w_k σ(r_k(a) − r_k(b)); ``weights`` (K,) or (n, K) replaces π(x)."""
        margins = self.rewards(phi_a) - self.rewards(phi_b)
        w = self.route(context_vectors) if weights is None else np.asarray(weights, dtype=np.float64)
        w = np.broadcast_to(w, margins.shape)
        return np.sum(w * np.exp(_log_sigmoid(margins)), axis=1)

    # -- persistence ------------------------------------------------------------------------------

    def save(self, path: str | Path, *, meta: dict | None = None) -> Path:
        """Write ``config.json`` (hyperparameters, versions, shapes, ``meta``) and ``weights.npz`` into a folder."""
        self._check_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "weights.npz", head_weights=self.head_weights_, router_weights=self.router_weights_,
                 router_bias=self.router_bias_, mean=self.mean_, scale=self.scale_)
        config = {
            "format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
            "versions": {"redline": _version("redline"), "numpy": np.__version__, "torch": _version("torch")},
            "hyperparameters": self.get_params(),
            "n_features_in": int(self.n_features_in_), "context_dim": int(self.context_dim_),
            "n_pairs_seen": int(self.n_pairs_seen_), "loss": self.loss_, "meta": meta or {},
        }
        (folder / "config.json").write_text(json.dumps(config, indent=2))
        return folder

    @classmethod
    def load(cls, path: str | Path) -> "MixtureRewardModel":
        """Load a folder written by ``save``; raises ``ValueError`` on an unknown format or version."""
        folder = Path(path)
        try:
            config = json.loads((folder / "config.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"no reward checkpoint in {folder}: {exc}") from exc
        if config.get("format") != CHECKPOINT_FORMAT or config.get("format_version") != CHECKPOINT_VERSION:
            raise ValueError(f"{folder} is not a version-{CHECKPOINT_VERSION} {CHECKPOINT_FORMAT} checkpoint")
        model = cls(**config["hyperparameters"])
        with np.load(folder / "weights.npz") as w:
            model.head_weights_ = w["head_weights"]
            model.router_weights_ = w["router_weights"]
            model.router_bias_ = w["router_bias"]
            model.mean_ = w["mean"]
            model.scale_ = w["scale"]
        model.n_features_in_ = config["n_features_in"]
        model.context_dim_ = config["context_dim"]
        model.n_pairs_seen_ = config["n_pairs_seen"]
        model.loss_ = config["loss"]
        model.meta_ = config.get("meta", {})
        return model
