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


@dataclass(frozen=True)
class Bounds:
    """The worker counts advice keeps within, and whom it is for.

    A cluster voxflow starts adapts between ``VOXFLOW_DASK_MIN_WORKERS`` and ``VOXFLOW_DASK_MAX_WORKERS``.
    An existing one (``existing``: its scheduler's address) is scaled by its operator, within limits voxflow
    does not know (those settings are the client's, not the cluster's): its advice has no maximum, goes no
    lower than the one worker a run needs, and says that it is for that operator.

    Examples
    --------
    >>> Bounds.of(Settings(dask_min_workers=1, dask_max_workers=2))
    Bounds(min_workers=1, max_workers=2, existing=None)
    >>> Bounds.of(Settings(dask_max_workers=2, dask_address="tcp://dask:8786"))
    Bounds(min_workers=1, max_workers=None, existing='tcp://dask:8786')
    """

    min_workers: int
    max_workers: int | None
    existing: str | None = None

    @classmethod
    def of(cls, settings: Settings, *, started_here: bool = False) -> "Bounds":
        """The bounds of the cluster ``settings`` name: the existing one at ``dask_address`` unless voxflow
        ``started_here`` the cluster at that address (the CLI's, handed to its flow), else voxflow's own."""
        if settings.dask_address and not started_here:
            return cls(1, None, settings.dask_address)
        return cls(settings.dask_min_workers, settings.dask_max_workers)


def recommend(signals: Signals, thresholds: Thresholds, *, workers: int, bounds: Bounds) -> Recommendation:
    """What the guide says to do now.

    Memory pressure asks for bigger workers (more workers would not help); any of CPU, p95
    latency, error rate or backlog asks for more workers while below the maximum; an idle
    cluster (nothing firing, no backlog) above the minimum may scale in. On an existing cluster
    the reason names whom the advice is for.
    """
    triggers = evaluate(signals, thresholds)
    action, reason = _advice(signals, thresholds, triggers, workers=workers, bounds=bounds)
    if bounds.existing:
        reason += f" (advice for the operator of the Dask cluster at {bounds.existing}: voxflow does not scale it)"
    return Recommendation(action, reason, triggers)


def _advice(signals: Signals, thresholds: Thresholds, triggers: tuple[Trigger, ...], *, workers: int, bounds: Bounds) -> tuple[str, str]:
    firing = {t.name for t in triggers if t.firing}
    if "memory_pct" in firing:
        return "scale_up_memory", f"memory {signals.memory_pct:.0f}% > {thresholds.memory_pct:.0f}%"
    out = sorted(firing & {"cpu_pct", "p95_latency_s", "error_rate", "backlog"})
    if out and (bounds.max_workers is None or workers < bounds.max_workers):
        return "scale_out", "firing: " + ", ".join(out)
    if out:
        return "hold", f"at the {bounds.max_workers}-worker maximum; firing: " + ", ".join(out)
    if not signals.backlog and workers > bounds.min_workers:
        return "scale_in", "no trigger firing and no backlog"
    return "hold", "no trigger firing"


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation, None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
