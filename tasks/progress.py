"""Progress of a long run: files done of total, rate and ETA, as one readable line."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Progress:
    """Counts files as chunks complete and reports rate and time left."""

    total: int
    done: int = 0
    started: float = field(default_factory=time.perf_counter)

    def advance(self, files: int) -> None:
        self.done += files

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started

    @property
    def rate(self) -> float:
        """Files per second since the start."""
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        return (self.total - self.done) / self.rate if self.rate > 0 else None

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 100.0

    def line(self) -> str:
        eta = "?" if self.eta_s is None else f"{self.eta_s:.0f} s"
        return f"{self.done}/{self.total} files ({self.percent:.0f}%) · {self.rate:.1f} files/s · ETA {eta}"
