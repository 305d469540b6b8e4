"""The inspector's two charts as geometry for inline SVG, drawn by the server (no script, no CDN): a bar per
reward head for the user's routing weights, and the edit cost over the user's edits as a line. The templates
draw the shapes; nothing here knows HTML."""

from __future__ import annotations

import math

__all__ = ["routing_bars", "cost_line"]


def routing_bars(routing: dict | None, *, width: int = 300, row: int = 28, label: int = 54,
                 value: int = 40) -> dict | None:
    """One horizontal bar per reward head, as long as its weight (weights sum to 1); the top head marked when
    it leads (within 0.005 of another it does not). None without a routing state."""
    if not routing or not routing.get("weights"):
        return None
    weights = routing["weights"]
    leads = sum(w >= max(weights) - 0.005 for w in weights) == 1
    span = width - label - value
    bars = [{"label": f"head {k}", "value": f"{w:.2f}", "x": label, "y": k * row + 4, "height": row - 8,
             "width": round(max(w, 0.0) * span, 1), "value_x": label + round(max(w, 0.0) * span, 1) + 6,
             "text_y": k * row + row / 2 + 4, "top": leads and k == routing.get("top_head")}
            for k, w in enumerate(weights)]
    return {"width": width, "height": row * len(bars), "bars": bars, "label_x": label - 8,
            "steps": routing.get("steps", 0), "entropy": routing.get("entropy")}


def _nice_ceiling(x: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten at or above ``x`` (an axis top a reader can use)."""
    if x <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(x))
    return next(step * power for step in (1, 2, 2.5, 5, 10) if step * power >= x)


def cost_line(history: list[dict], *, width: int = 640, height: int = 200, max_points: int = 120,
              left: int = 40, bottom: int = 24, top: int = 10, right: int = 12) -> dict | None:
    """The edit cost of each edit, oldest to newest, as a polyline with axes. Beyond ``max_points`` edits each
    point is the mean of a run of consecutive edits (``per_point`` of them). None before the first edit."""
    costs = [row["cost"] for row in history]
    if not costs:
        return None
    per_point = max(1, math.ceil(len(costs) / max_points))
    runs = [costs[i:i + per_point] for i in range(0, len(costs), per_point)]
    means = [sum(run) / len(run) for run in runs]
    y_max = _nice_ceiling(max(means))
    plot_w, plot_h = width - left - right, height - top - bottom

    def x_at(i: int) -> float:
        return round(left + (plot_w * i / (len(means) - 1) if len(means) > 1 else plot_w / 2), 1)

    def y_at(v: float) -> float:
        return round(top + plot_h * (1 - v / y_max), 1)

    points = []
    for i, (run, mean) in enumerate(zip(runs, means)):
        first = i * per_point + 1
        edits = f"edit {first}" if len(run) == 1 else f"edits {first}-{first + len(run) - 1}"
        points.append({"x": x_at(i), "y": y_at(mean), "title": f"{edits}: cost {mean:g}"})
    return {"width": width, "height": height, "left": left, "right": width - right, "top": top,
            "bottom": height - bottom, "points": points, "polyline": " ".join(f"{p['x']},{p['y']}" for p in points),
            "y_ticks": [{"y": y_at(v), "label": f"{v:g}"} for v in (0, y_max / 2, y_max)],
            "x_ticks": [{"x": x_at(0), "label": "1"}, {"x": x_at(len(means) - 1), "label": str(len(costs))}]
            if len(costs) > 1 else [{"x": x_at(0), "label": "1"}],
            "edits": len(costs), "per_point": per_point}
