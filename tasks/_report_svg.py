"""The latency-over-time chart of a trial-run report, written as SVG by hand.

Deterministic: the same history gives the same bytes (fixed size, fixed number formats, no ids
or timestamps of its own). Seconds before locust has a full window of measurements (zero
requests per second) are left out, so the chart does not start with a false zero latency.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from xml.sax.saxutils import escape

from tasks._locust_stats import HistoryPoint

WIDTH, HEIGHT = 720, 320
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 40, 50
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
SERIES = (("p50", "#1f77b4"), ("p95", "#d62728"))


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (1 for nothing)."""
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    return next(float(m * magnitude) for m in (1, 2, 5, 10) if m * magnitude >= value)


def _points(history: Sequence[HistoryPoint]) -> list[tuple[float, float, float]]:
    """(seconds since the first measured second, p50, p95) for each measured second."""
    measured = [p for p in history if p.rps > 0 and p.p50_ms is not None and p.p95_ms is not None]
    if not measured:
        return []
    start = measured[0].timestamp
    return [(float(p.timestamp - start), p.p50_ms or 0.0, p.p95_ms or 0.0) for p in measured]


def _text(x: float, y: float, content: str, anchor: str = "middle", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{escape(content)}</text>'


def _axes(x_max: float, y_max: float) -> list[str]:
    parts = [
        f'<line x1="{LEFT}" y1="{TOP + PLOT_H}" x2="{LEFT + PLOT_W}" y2="{TOP + PLOT_H}" stroke="#333"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + PLOT_H}" stroke="#333"/>',
    ]
    for i in range(6):
        y = TOP + PLOT_H - PLOT_H * i / 5
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + PLOT_W}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(_text(LEFT - 6, y + 4, f"{y_max * i / 5:g}", anchor="end"))
        x = LEFT + PLOT_W * i / 5
        parts.append(_text(x, TOP + PLOT_H + 18, f"{x_max * i / 5:g}"))
    parts.append(_text(LEFT + PLOT_W / 2, HEIGHT - 10, "时间 Time (s)"))
    parts.append(
        _text(16, TOP + PLOT_H / 2, "延迟 Latency (ms)", extra=f' transform="rotate(-90 16 {TOP + PLOT_H / 2:.1f})"')
    )
    return parts


def _polyline(points: list[tuple[float, float]], x_max: float, y_max: float, colour: str) -> str:
    coords = " ".join(
        f"{LEFT + PLOT_W * x / x_max:.1f},{TOP + PLOT_H - PLOT_H * min(y, y_max) / y_max:.1f}" for x, y in points
    )
    return f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}"/>'


def _legend() -> list[str]:
    parts = []
    for i, (label, colour) in enumerate(SERIES):
        x = LEFT + PLOT_W - 150 + i * 75
        parts.append(
            f'<line x1="{x}" y1="{TOP - 14}" x2="{x + 20}" y2="{TOP - 14}" stroke="{colour}" stroke-width="2"/>'
        )
        parts.append(_text(x + 24, TOP - 10, label, anchor="start"))
    return parts


def _limit_line(limit: float, y_max: float) -> list[str]:
    y = TOP + PLOT_H - PLOT_H * limit / y_max
    return [
        f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + PLOT_W}" y2="{y:.1f}" stroke="#d62728" stroke-dasharray="6 4"/>',
        _text(LEFT + 4, y - 4, f"P95 限值 limit {limit:g} ms", anchor="start", extra=' fill="#d62728"'),
    ]


def latency_chart(history: Sequence[HistoryPoint], p95_limit_ms: float | None = None) -> str:
    """An SVG line chart of p50 and p95 latency over the stress test's seconds, with the p95 limit dashed."""
    points = _points(history)
    x_max = _nice_ceiling(points[-1][0]) if points else 1.0
    y_max = _nice_ceiling(max([p95 for _, _, p95 in points] + [p95_limit_ms or 0.0]))
    body = [_text(WIDTH / 2, 20, "压力测试延迟 Stress-test latency over time", extra=' font-weight="bold"')]
    body += _axes(x_max, y_max) + _legend()
    if p95_limit_ms is not None:
        body += _limit_line(p95_limit_ms, y_max)
    if points:
        body.append(_polyline([(x, p50) for x, p50, _ in points], x_max, y_max, SERIES[0][1]))
        body.append(_polyline([(x, p95) for x, _, p95 in points], x_max, y_max, SERIES[1][1]))
    else:
        body.append(_text(LEFT + PLOT_W / 2, TOP + PLOT_H / 2, "无数据 No measurements"))
    header = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">'
    )
    return "\n".join(['<?xml version="1.0" encoding="UTF-8"?>', header, *body, "</svg>", ""])
