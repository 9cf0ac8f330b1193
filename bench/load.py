"""Load test of continuous intake: enqueue at set rates in phases while one `voxflow drain --linger` drains.

The scaling guide's phases are warm-up 10 files/s for 60 s, sustained 50/s for 120 s, peak 100/s for 60 s;
``--scale`` multiplies the rates and ``--time-scale`` the durations (defaults fit a 2-core machine):

    .venv/bin/python bench/load.py                       # 1, 5, 10 files/s for 15, 30, 15 s
    .venv/bin/python bench/load.py --scale 1 --time-scale 1

Per phase: files enqueued, max backlog (stream length), time to drain after the phase ended, p50/p95
enqueue-to-persisted latency, error rate (quarantined or never acknowledged); last line one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from common import REPO, embedded_home, report

from features.synth import synth_vowel  # noqa: E402
from store.cache import connect_redis  # noqa: E402
from store.latency import LatencyLog, latency_summary  # noqa: E402
from store.queue import FileQueue, QueueItem, entry_time_s  # noqa: E402
from voxflow import services  # noqa: E402

PHASES = (("warm-up", 10.0, 60.0), ("sustained", 50.0, 120.0), ("peak", 100.0, 60.0))
TICK_S = 0.1


@dataclass
class Phase:
    name: str
    rate: float
    duration_s: float
    entry_ids: list[str] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0
    max_backlog: int = 0


def write_clips(folder: Path, n: int, *, duration_s: float) -> list[Path]:
    """``n`` distinct synthetic vowels (distinct content, so none is skipped as already scored)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"load{i:05d}.wav"
        sf.write(path, synth_vowel(f0_hz=float(rng.uniform(90, 260)), duration_s=duration_s, sr=16_000, seed=i), 16_000)
        paths.append(path)
    return paths


def run_phase(phase: Phase, queue: FileQueue, clips: list[Path]) -> None:
    """Enqueue ``rate`` files/s for ``duration_s`` in 100 ms ticks, sampling the backlog each tick."""
    phase.started = time.time()
    due = 0.0
    while (elapsed := time.time() - phase.started) < phase.duration_s:
        want = int(phase.rate * min(elapsed + TICK_S, phase.duration_s)) - len(phase.entry_ids)
        if want > 0:
            phase.entry_ids += queue.enqueue([QueueItem(str(clips.pop())) for _ in range(want)])
        phase.max_backlog = max(phase.max_backlog, queue.status().depth)
        due += TICK_S
        time.sleep(max(0.0, phase.started + due - time.time()))
    phase.ended = time.time()


def wait_until_empty(queue: FileQueue, phases: list[Phase], timeout_s: float) -> bool:
    deadline = time.time() + timeout_s
    while (depth := queue.status().depth) and time.time() < deadline:
        phases[-1].max_backlog = max(phases[-1].max_backlog, depth)
        time.sleep(TICK_S)
    return depth == 0


def phase_row(phase: Phase, samples: dict[str, tuple[float, str]]) -> dict:
    done = [samples[i] for i in phase.entry_ids if i in samples]
    latencies = [latency for latency, _ in done]
    acked_at = [entry_time_s(i) + samples[i][0] for i in phase.entry_ids if i in samples]
    errors = sum(1 for _, outcome in done if outcome == "quarantined") + len(phase.entry_ids) - len(done)
    lat = latency_summary(latencies)
    return {
        "phase": phase.name,
        "rate_per_s": phase.rate,
        "duration_s": phase.duration_s,
        "enqueued": len(phase.entry_ids),
        "max_backlog": phase.max_backlog,
        "time_to_drain_s": round(max(0.0, max(acked_at, default=phase.ended) - phase.ended), 1) if len(done) == len(phase.entry_ids) else None,
        "p50_latency_s": lat["p50_s"],
        "p95_latency_s": lat["p95_s"],
        "error_rate": round(errors / len(phase.entry_ids), 4) if phase.entry_ids else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.1, help="multiplies the phase rates (files/s)")
    parser.add_argument("--time-scale", type=float, default=0.25, help="multiplies the phase durations")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--clip-s", type=float, default=2.0, help="duration of each synthetic clip")
    parser.add_argument("--drain-timeout", type=float, default=600.0, help="give up this long after the last phase")
    args = parser.parse_args()
    phases = [Phase(name, rate * args.scale, duration * args.time_scale) for name, rate, duration in PHASES]
    total = sum(int(p.rate * p.duration_s) + 1 for p in phases) + 2
    with tempfile.TemporaryDirectory(prefix="voxflow-load-") as tmp, embedded_home(Path(tmp) / "home") as settings:
        clips = write_clips(Path(tmp) / "clips", total, duration_s=args.clip_s)
        client = connect_redis(services.redis_url(settings))
        # The latency stream keeps a sample per acknowledged file: it must hold the whole run's, or the
        # oldest would be trimmed and counted as files never done.
        maxlen = max(settings.metrics_maxlen, total)
        queue, latency = FileQueue(client), LatencyLog(client, maxlen=maxlen)
        env = {
            **os.environ, "VOXFLOW_HOME": str(settings.home), "VOXFLOW_MONGO_DB": f"load_{time.time_ns()}",
            "VOXFLOW_DASK_MIN_WORKERS": str(args.workers), "VOXFLOW_DASK_MAX_WORKERS": str(args.workers),
            "VOXFLOW_METRICS_MAXLEN": str(maxlen), "PREFECT_LOGGING_LEVEL": "WARNING",
        }
        drainer = subprocess.Popen(
            [sys.executable, "-m", "voxflow.cli", "drain", "--linger", "30", "--json"],
            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        # Two files first, out of the statistics: the drain's start-up (flow, cluster, JIT) is not load.
        queue.enqueue([QueueItem(str(clips.pop())) for _ in range(2)])
        started = time.perf_counter()
        if not wait_until_empty(queue, [Phase("start", 0, 0)], timeout_s=300):
            drainer.kill()
            sys.exit(f"the drain did not start:\n{drainer.communicate()[1][-4000:]}")
        start_s = time.perf_counter() - started
        begin_ms = int(time.time() * 1000)
        for phase in phases:
            run_phase(phase, queue, clips)
        drained = wait_until_empty(queue, phases, args.drain_timeout)
        samples = {s.entry_id: (s.latency_s, s.outcome) for s in latency.since(begin_ms)}
        stdout, stderr = drainer.communicate(timeout=120)
    if drainer.returncode != 0:
        sys.exit(f"drain failed:\n{stderr[-4000:]}")
    summary = json.loads(stdout.strip().splitlines()[-1])
    rows = [phase_row(p, samples) for p in phases]
    print(pd.DataFrame(rows).to_string(index=False))
    acked_at = [entry_time_s(i) + latency for i, (latency, _) in samples.items()]
    busy_s = max(acked_at, default=phases[-1].ended) - phases[0].started
    keeps_up = [r["rate_per_s"] for r in rows if r["time_to_drain_s"] is not None and r["time_to_drain_s"] <= 5.0]
    report(
        {
            "bench": "load",
            "scale": args.scale,
            "time_scale": args.time_scale,
            "workers": args.workers,
            "cpus": os.cpu_count(),
            "clip_s": args.clip_s,
            "drain_start_s": round(start_s, 1),
            "phases": rows,
            "drained": drained,
            "acked_per_s_overall": round(len(samples) / busy_s, 2),
            "keeps_up_to_per_s": max(keeps_up, default=None),
            "drain_batches": summary["batches"],
            "drain_acked": summary["acked"],
        }
    )


if __name__ == "__main__":
    main()
