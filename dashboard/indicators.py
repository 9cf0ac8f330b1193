"""The scaling guide's triggers as display rows: pure, built on :mod:`voxflow.scaling`."""

from __future__ import annotations

from dataclasses import dataclass

from voxflow.scaling import Bounds, Recommendation, Signals, Thresholds, recommend

# name -> (label, how a value of that trigger is written)
_DISPLAY = {
    "cpu_pct": ("CPU", "{:.0f}%"),
    "p95_latency_s": ("p95 latency", "{:.2f} s"),
    "error_rate": ("Error rate", "{:.2%}"),
    "backlog": ("Backlog", "{:,.0f} files"),
    "memory_pct": ("Memory", "{:.0f}%"),
}
_ACTIONS = {
    "scale_out": "Scale out: add workers",
    "scale_up_memory": "Scale up: give workers more memory",
    "scale_in": "Scale in: remove idle workers",
    "hold": "Hold: no change",
}


@dataclass(frozen=True)
class Indicator:
    """One trigger as the Overview shows it; ``state`` is "firing", "ok" or "not measured"."""

    name: str
    label: str
    value: str
    threshold: str
    state: str


@dataclass(frozen=True)
class Indicators:
    """Every trigger's indicator and the recommendation that follows from them."""

    rows: tuple[Indicator, ...]
    action: str
    advice: str
    reason: str


def indicators(signals: Signals, thresholds: Thresholds, *, workers: int, bounds: Bounds) -> Indicators:
    """Evaluate the triggers and word the recommendation.

    Examples
    --------
    >>> t = Thresholds(cpu_pct=70, p95_latency_s=2.0, error_rate=0.01, backlog=100, memory_pct=85)
    >>> out = indicators(Signals(cpu_pct=91.0), t, workers=2, bounds=Bounds(1, 4))
    >>> out.rows[0].value, out.rows[0].state, out.action
    ('91%', 'firing', 'scale_out')
    """
    rec: Recommendation = recommend(signals, thresholds, workers=workers, bounds=bounds)
    rows = []
    for trigger in rec.triggers:
        label, fmt = _DISPLAY[trigger.name]
        value = "—" if trigger.value is None else fmt.format(trigger.value)
        state = "not measured" if trigger.value is None else ("firing" if trigger.firing else "ok")
        rows.append(Indicator(trigger.name, label, value, "> " + fmt.format(trigger.threshold), state))
    return Indicators(tuple(rows), rec.action, _ACTIONS.get(rec.action, rec.action), rec.reason)
