"""The report's plot: each capability's score with its 95% interval, as SVG geometry.

Scores and interval ends are fractions (0 to 1); values outside are drawn at the edge. The
template draws the geometry inline (no script, no external image) next to a text table of
the same numbers, so the plot is never the only way to read them.
"""

from __future__ import annotations

from dataclasses import dataclass

WIDTH = 640
LABEL_WIDTH = 200
ROW_HEIGHT = 28
TOP = 24
RIGHT_MARGIN = 16


@dataclass(frozen=True)
class PlotRow:
    """One capability: its label, the score's x, the interval's x range, and the row's y."""

    capability: str
    score: float
    ci_low: float
    ci_high: float
    x: float
    x_low: float
    x_high: float
    y: float


@dataclass(frozen=True)
class Plot:
    """Rows, the drawing's size and the x of the axis ticks (0, 0.25 … 1)."""

    rows: tuple[PlotRow, ...]
    width: int
    height: int
    ticks: tuple[tuple[float, str], ...]
    axis_y: float


def _x(value: float) -> float:
    span = WIDTH - LABEL_WIDTH - RIGHT_MARGIN
    return round(LABEL_WIDTH + min(max(value, 0.0), 1.0) * span, 1)


def score_plot(scores: list[tuple[str, float, float, float]]) -> Plot:
    """The plot of `(capability, score, ci_low, ci_high)` rows, in the order given."""
    rows = tuple(
        PlotRow(name, score, low, high, _x(score), _x(low), _x(high), TOP + i * ROW_HEIGHT + ROW_HEIGHT / 2)
        for i, (name, score, low, high) in enumerate(scores)
    )
    axis_y = TOP + len(rows) * ROW_HEIGHT
    ticks = tuple((_x(t / 4), f"{t / 4:.2f}") for t in range(5))
    return Plot(rows, WIDTH, int(axis_y + 24), ticks, axis_y)
