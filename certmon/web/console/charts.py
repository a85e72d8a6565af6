"""The monthly trend chart as plain geometry for an inline SVG: bars per month, the target as a line.

Drawn on the server so that the page needs no charting script; the template writes the shapes, and a table beside
the chart carries the same figures for those who do not see it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 720
HEIGHT = 240
LEFT = 48  # room for the axis labels
BOTTOM = 28  # room for the month labels
TOP = 24  # room for the value over a 100 % bar
RIGHT = 8


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str  # green, yellow, red, or none: a month with nothing decided draws no bar
    label: str  # the month, under the bar
    value: str  # the percentage, above the bar


@dataclass(frozen=True, slots=True)
class Tick:
    y: float
    text: str


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    ticks: list[Tick]
    target_y: float
    plot_left: int
    plot_right: int
    plot_bottom: int


def trend(months: Sequence[tuple[str, float | None, str | None]], target: float) -> Chart:
    """months: (label, compliance 0-1 or None, status colour or None), in order."""
    known = [value for _, value, _ in months if value is not None]
    # The axis starts at the nearest 10 % below the lowest value or the target, so that the differences that
    # matter around a 96 % target are not squeezed into the top sliver of a 0-100 % axis.
    low = math.floor(min([*known, target]) * 10 - 0.5) / 10
    low = max(0.0, min(low, 0.9))
    plot_height = HEIGHT - TOP - BOTTOM
    plot_width = WIDTH - LEFT - RIGHT

    def y_of(ratio: float) -> float:
        return TOP + plot_height * (1 - (ratio - low) / (1 - low))

    step = plot_width / max(1, len(months))
    bars = []
    for index, (label, value, colour) in enumerate(months):
        x = LEFT + index * step + step * 0.15
        top = y_of(value) if value is not None else TOP + plot_height
        bars.append(
            Bar(
                x=round(x, 1),
                y=round(top, 1),
                width=round(step * 0.7, 1),
                height=round(TOP + plot_height - top, 1),
                colour=colour or "none",
                label=label,
                value="" if value is None else f"{value * 100:.1f}",
            )
        )
    # A line every 5 % on a short axis, every 10 % on a long one.
    per = 20 if low >= 0.7 else 10
    ticks = []
    for step_index in range(round(low * per), per + 1):
        ratio = step_index / per
        ticks.append(Tick(round(y_of(ratio), 1), f"{ratio * 100:.0f}%"))
    return Chart(WIDTH, HEIGHT, bars, ticks, round(y_of(target), 1), LEFT, WIDTH - RIGHT, TOP + plot_height)
