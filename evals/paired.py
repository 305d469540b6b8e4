"""Paired per-round comparisons of methods, with 95% confidence intervals, and claims that hold or do not.

Every method of a run sees the same documents in the same order per seed, so two methods are compared round by
round: d_t = cost_x(t) − r · cost_y(t) for each (seed, round), with r = 1 for "x costs less than y" and r = 0.7 for
"x costs at most 0.7 × y" (a ratio claim is a difference claim on r · y). The interval is Student's t over the
pooled per-round differences (mean ± t₀.₉₇₅,ₙ₋₁ · sd/√n): it treats rounds as independent draws, which they are
only roughly (a stream's rounds share what it learned), so it is the interval a reader can recompute from the
logs, not a model of the learning curve.

A claim "x ≤ r · y" **holds** at 95% when the interval's upper end is ≤ 0, **fails** when its lower end is > 0
(x is significantly above), and is **undecided** otherwise; "in every window" asks it of each 10-round window.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

__all__ = ["Claim", "DEFAULT_CLAIMS", "parse_claim", "compare", "paired", "windowed", "judge"]

WINDOW = 10


@dataclass(frozen=True)
class Claim:
    """``x`` costs at most ``ratio`` × ``y``, over all rounds or in every ``WINDOW``-round window."""

    x: str
    y: str
    ratio: float = 1.0
    every_window: bool = False

    def __str__(self) -> str:
        times = "" if self.ratio == 1 else f"{self.ratio:g}× "
        return f"{self.x} ≤ {times}{self.y}" + (f" in every {WINDOW}-round window" if self.every_window else "")


# The goals and docs/results.md's targets, judged when the run has both methods.
DEFAULT_CLAIMS = (
    Claim("oracle", "no-learning", 0.75),
    Claim("cipher-5", "no-learning", 0.90),
    Claim("redline", "cipher-5"),
    Claim("redline", "cipher-5", every_window=True),
    Claim("redline", "cipher-5", 0.70),
    Claim("redline", "no-learning", 0.50),
)

_CLAIM = re.compile(r"^\s*(?P<x>[\w.-]+)\s*<=\s*(?:(?P<r>\d+(?:\.\d+)?)\s*[x×*]?\s*)?(?P<y>[a-z][\w.-]*)"
                    r"(?P<window>\s+in\s+every\s+window)?\s*$", re.I)


def parse_claim(text: str) -> Claim:
    """``"redline <= 0.7 cipher-5"``, ``"redline <= cipher-5 in every window"``; ``ValueError`` otherwise.

    >>> parse_claim("redline <= 0.7x cipher-5")
    Claim(x='redline', y='cipher-5', ratio=0.7, every_window=False)
    """
    m = _CLAIM.match(text)
    if not m:
        raise ValueError(f"cannot read the claim {text!r}; write it as 'X <= Y', 'X <= 0.7 Y' or "
                         "'X <= Y in every window'")
    return Claim(m["x"], m["y"], float(m["r"]) if m["r"] else 1.0, bool(m["window"]))


def _t975(dof: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, dof))


def compare(x, y, ratio: float = 1.0) -> dict:
    """Paired costs ``x`` and ``y`` (one pair per round or per draft): the mean of x − ratio·y with its 95% interval,
    how often x was cheaper / dearer / equal, and x's total over y's.

    >>> compare([3, 4, 5], [5, 6, 7])["mean"], compare([3, 4, 5], [5, 6, 7])["cheaper"]
    (-2.0, 3)
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    return _stats(x - ratio * y, x, y)


def _stats(d: np.ndarray, x: np.ndarray, y: np.ndarray) -> dict:
    """Mean difference, its 95% interval, how many rounds x was cheaper / dearer / equal, and the cost ratio."""
    n = len(d)
    mean = float(d.mean()) if n else math.nan
    se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    half = _t975(n - 1) * se if n > 1 else math.nan
    return {"n": n, "mean": round(mean, 3), "se": round(se, 3) if n > 1 else None,
            "low": round(mean - half, 3) if n > 1 else None, "high": round(mean + half, 3) if n > 1 else None,
            "cheaper": int((x < y).sum()), "dearer": int((x > y).sum()), "equal": int((x == y).sum()),
            "ratio": round(float(x.sum() / y.sum()), 4) if y.sum() else None}


def _aligned(costs: dict, x: str, y: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Costs of x and y on the same (seed, round), seeds in order, rounds in order; and the round numbers."""
    xs, ys, rounds = [], [], []
    for seed in sorted(set(costs[x]) & set(costs[y])):
        n = min(len(costs[x][seed]), len(costs[y][seed]))
        xs += costs[x][seed][:n]
        ys += costs[y][seed][:n]
        rounds += list(range(n))
    return np.asarray(xs, float), np.asarray(ys, float), np.asarray(rounds)


def _costs(streams) -> dict:
    out: dict = {}
    for s in streams:
        out.setdefault(s.method, {})[s.seed] = list(s.costs)
    return out


def paired(streams, x: str, y: str, ratio: float = 1.0) -> dict:
    """x − ratio·y per round over every seed: ``{n, mean, se, low, high, cheaper, dearer, equal, ratio}``
    (``ratio`` in the result: x's total cost over y's)."""
    xs, ys, _ = _aligned(_costs(streams), x, y)
    return _stats(xs - ratio * ys, xs, ys)


def windowed(streams, x: str, y: str, ratio: float = 1.0, window: int = WINDOW) -> list[dict]:
    """``paired`` per window of ``window`` rounds (1-10, 11-20, ...), each with its ``rounds`` label."""
    xs, ys, rounds = _aligned(_costs(streams), x, y)
    out = []
    for start in range(0, int(rounds.max()) + 1 if len(rounds) else 0, window):
        keep = (rounds >= start) & (rounds < start + window)
        stop = int(rounds[keep].max()) + 1
        out.append({"rounds": f"{start + 1}-{stop}", **_stats(xs[keep] - ratio * ys[keep], xs[keep], ys[keep])})
    return out


def _verdict(stats: dict) -> str:
    if stats["high"] is None:
        return "undecided"
    if stats["high"] <= 0:
        return "holds"
    return "fails" if stats["low"] > 0 else "undecided"


def judge(streams, claims=DEFAULT_CLAIMS) -> list[dict]:
    """Each claim whose two methods the run has, once (a ``--claim`` that is also a default one is judged once):
    ``{claim, verdict, stats}`` (``windows`` for window claims: the claim holds when it holds in every window, fails
    when it fails in one)."""
    methods = {s.method for s in streams}
    out = []
    for claim in dict.fromkeys(claims):
        if claim.x not in methods or claim.y not in methods:
            continue
        overall = paired(streams, claim.x, claim.y, claim.ratio)
        item = {"claim": str(claim), "x": claim.x, "y": claim.y, "ratio": claim.ratio,
                "every_window": claim.every_window, "stats": overall}
        if claim.every_window:
            item["windows"] = windowed(streams, claim.x, claim.y, claim.ratio)
            verdicts = [_verdict(w) for w in item["windows"]]
            item["verdict"] = ("fails" if "fails" in verdicts else "holds" if verdicts and set(verdicts) == {"holds"}
                               else "undecided")
        else:
            item["verdict"] = _verdict(overall)
        out.append(item)
    return out
