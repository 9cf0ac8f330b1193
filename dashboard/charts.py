"""Altair charts with titled, unit-bearing axes."""

from __future__ import annotations

import altair as alt
import pandas as pd


# Vega's own time labels in 24-hour clock: '%I:%M' (09:30 for 21:30, no AM/PM) is Vega's default between days.
CLOCK_LABELS = (
    "timeFormat(datum.value, seconds(datum.value) ? '%H:%M:%S' : hours(datum.value) || minutes(datum.value) ? '%H:%M' : '%b %d')"
)


def time_series(
    frame: pd.DataFrame, *, x: str, y: str, x_title: str, y_title: str, mark: str = "line", color: str | None = None, segment: str | None = None
) -> alt.Chart:
    """A line (``mark="step"``, ``"bar"``) chart of ``y`` over the time column ``x``.

    ``segment`` names a column whose values each get a line of their own (a run's samples): no line is
    drawn across the time between them, when nothing was sampled.
    """
    chart = alt.Chart(frame)
    chart = {"line": chart.mark_line(point=True), "bar": chart.mark_bar(), "step": chart.mark_line(interpolate="step-after", point=True)}[mark]
    encoding = {
        "x": alt.X(f"{x}:T", title=x_title, axis=alt.Axis(labelExpr=CLOCK_LABELS)),
        "y": alt.Y(f"{y}:Q", title=y_title),
        "tooltip": [alt.Tooltip(f"{x}:T", title=x_title, format="%Y-%m-%d %H:%M"), alt.Tooltip(f"{y}:Q", title=y_title)],
    }
    if color:
        encoding["color"] = alt.Color(f"{color}:N", title=color)
    if segment:
        encoding["detail"] = alt.Detail(f"{segment}:N")
        encoding["tooltip"].append(alt.Tooltip(f"{segment}:N", title=segment.replace("_", " ")))
    return chart.encode(**encoding).properties(height=260)


def bars(frame: pd.DataFrame, *, x: str, y: str, x_title: str, y_title: str, color: str | None = None, x_type: str = "O") -> alt.Chart:
    """Bars of ``y`` per category (or ordinal bin) ``x``; ``color`` groups bars side by side."""
    encoding = {
        "x": alt.X(f"{x}:{x_type}", title=x_title),
        "y": alt.Y(f"{y}:Q", title=y_title),
        "tooltip": [x, y] + ([color] if color else []),
    }
    if color:
        encoding["color"] = alt.Color(f"{color}:N", title=None)
        encoding["xOffset"] = alt.XOffset(f"{color}:N")
    return alt.Chart(frame).mark_bar().encode(**encoding).properties(height=260)
