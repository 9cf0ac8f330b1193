"""The scaling guide's triggers as a pure policy: plain signals in, a recommendation out."""

from __future__ import annotations

from dataclasses import dataclass

from voxflow.settings import Settings

# Quarantine stages that are the pipeline's failures, not the input's: the error-rate trigger counts
# these. A corrupt or silent file (stages discover, decode, quality) is bad input; more workers cannot help.
ERROR_STAGES = ("features", "timeout", "worker")


@dataclass(frozen=True)
class Signals:
    """What the cluster looks like now (None where it is not measured)."""

    cpu_pct: float | None = None
    p95_latency_s: float | None = None
    error_rate: float | None = None
    backlog: int | None = None
    memory_pct: float | None = None


@dataclass(frozen=True)
class Thresholds:
    cpu_pct: float
    p95_latency_s: float
    error_rate: float
    backlog: int
    memory_pct: float

    @classmethod
    def from_settings(cls, settings: Settings) -> "Thresholds":
        return cls(
            cpu_pct=settings.trigger_cpu_pct,
            p95_latency_s=settings.trigger_p95_latency_s,
            error_rate=settings.trigger_error_rate,
            backlog=settings.trigger_backlog,
            memory_pct=settings.trigger_memory_pct,
        )


@dataclass(frozen=True)
class Trigger:
    """One trigger's state: its current value against its threshold."""

    name: str
    value: float | None
    threshold: float
    firing: bool


@dataclass(frozen=True)
class Recommendation:
    action: str  # "scale_out", "scale_up_memory", "hold" or "scale_in"
    reason: str
    triggers: tuple[Trigger, ...]

    def as_dict(self) -> dict:
        return {
            "action": self.action,
            "reason": self.reason,
            "triggers": {t.name: {"value": t.value, "threshold": t.threshold, "firing": t.firing} for t in self.triggers},
        }


def evaluate(signals: Signals, thresholds: Thresholds) -> tuple[Trigger, ...]:
    """Each trigger with its current value; unmeasured signals never fire."""
    pairs = (
        ("cpu_pct", signals.cpu_pct, thresholds.cpu_pct),
        ("p95_latency_s", signals.p95_latency_s, thresholds.p95_latency_s),
        ("error_rate", signals.error_rate, thresholds.error_rate),
        ("backlog", signals.backlog, thresholds.backlog),
        ("memory_pct", signals.memory_pct, thresholds.memory_pct),
    )
    return tuple(Trigger(name, value, limit, value is not None and value > limit) for name, value, limit in pairs)


def recommend(signals: Signals, thresholds: Thresholds, *, workers: int, min_workers: int, max_workers: int) -> Recommendation:
    """What the guide says to do now.

    Memory pressure asks for bigger workers (more workers would not help); any of CPU, p95
    latency, error rate or backlog asks for more workers while below ``max_workers``; an idle
    cluster (nothing firing, no backlog) above ``min_workers`` may scale in.
    """
    triggers = evaluate(signals, thresholds)
    firing = {t.name for t in triggers if t.firing}
    if "memory_pct" in firing:
        return Recommendation("scale_up_memory", f"memory {signals.memory_pct:.0f}% > {thresholds.memory_pct:.0f}%", triggers)
    out = sorted(firing & {"cpu_pct", "p95_latency_s", "error_rate", "backlog"})
    if out and workers < max_workers:
        return Recommendation("scale_out", "firing: " + ", ".join(out), triggers)
    if out:
        return Recommendation("hold", f"at the {max_workers}-worker maximum; firing: " + ", ".join(out), triggers)
    if not signals.backlog and workers > min_workers:
        return Recommendation("scale_in", "no trigger firing and no backlog", triggers)
    return Recommendation("hold", "no trigger firing", triggers)


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation, None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
