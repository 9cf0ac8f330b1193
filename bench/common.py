"""Shared pieces of the benchmarks: a corpus, the plain baselines, and a real `voxflow analyze` run."""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
import psutil
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from features.synth import synth_vowel  # noqa: E402
from models.registry import load_bundle  # noqa: E402
from store.cache import connect_redis  # noqa: E402
from tasks.chunk import AudioPolicy  # noqa: E402
from tasks.extract import score_chunk  # noqa: E402
from tasks.ingest import FileRef, discover  # noqa: E402
from voxflow import services  # noqa: E402
from voxflow.settings import Settings  # noqa: E402

VOICED = REPO.parent / "shared" / "data" / "voiced"
_PR_SET_CHILD_SUBREAPER = 36
# `python -m voxflow.cli`, which also writes the command process's own CPU seconds (all its threads, not its
# children) to the file named by VOXFLOW_BENCH_CPU_FILE at exit, when that is set.
_CLI = """
import atexit, os, resource, runpy
def _own_cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open(os.environ["VOXFLOW_BENCH_CPU_FILE"], "w") as out:
        out.write(str(usage.ru_utime + usage.ru_stime))
if os.environ.get("VOXFLOW_BENCH_CPU_FILE"):
    atexit.register(_own_cpu)
runpy.run_module("voxflow.cli", run_name="__main__", alter_sys=True)
"""


def _write_synth_clip(folder: Path, seed: int, i: int) -> str:
    rng = np.random.default_rng((seed, i))
    pathological = i % 2 == 1
    y = synth_vowel(
        f0_hz=float(rng.uniform(90, 260)), duration_s=5.0, sr=16_000, seed=seed * 1_000_003 + i,
        jitter=0.02 if pathological else 0.004, shimmer=0.1 if pathological else 0.03, hnr_db=9.0 if pathological else 24.0,
    )
    path = folder / f"synth{i:05d}.wav"
    sf.write(path, y, 16_000)
    return str(path)


def build_corpus(folder: Path, clips: int, *, seed: int = 0) -> Path:
    """A manifest of the VOICED records (when present) topped up with unique 5 s synthetic vowels.

    The synthetic clips are written by one process per core: 16 workers' worth of clips takes
    minutes on one.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = [str(p) for p in sorted(VOICED.glob("voice*.hea"))][:clips]
    missing = range(clips - len(paths))
    with ProcessPoolExecutor(max_workers=os.cpu_count(), mp_context=multiprocessing.get_context("spawn")) as pool:
        paths += pool.map(partial(_write_synth_clip, folder, seed), missing, chunksize=64)
    return write_manifest(folder / "manifest.csv", paths)


def write_manifest(path: Path, paths: list[str]) -> Path:
    """A manifest CSV listing ``paths``."""
    pd.DataFrame({"path": paths}).to_csv(path, index=False)
    return path


def manifest_files(manifest: Path, settings: Settings) -> list[FileRef]:
    return discover(str(manifest), max_file_bytes=int(settings.max_file_mb * 1e6)).files


def pool_rate(files: list[FileRef], settings: Settings, processes: int, *, opensmile: bool = False) -> float:
    """Clips/s of a plain multiprocessing.Pool running the same per-file code (start-up included): ``plain_pool.py``.

    With ``opensmile`` the pool decodes each file the same way and extracts openSMILE's eGeMAPSv02
    instead of voxflow's features and score: the peer's feature code under the same harness.
    """
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="voxflow-pool-") as job:
        json.dump({"files": [asdict(ref) for ref in files], "policy": asdict(AudioPolicy.from_settings(settings)),
                   "models_dir": str(settings.models_dir)}, job)
        job.flush()
        command = [sys.executable, str(REPO / "bench" / "plain_pool.py"), job.name, str(processes), *(["--opensmile"] if opensmile else [])]
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"the plain pool failed:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["files"] != len(files):
        sys.exit(f"the plain pool did {result['files']} of {len(files)} files")
    return len(files) / result["seconds"]


def loop_rate(files: list[FileRef], settings: Settings) -> float:
    """Clips/s of one process, file after file, no orchestration (after a JIT warm-up)."""
    policy, bundle = AudioPolicy.from_settings(settings), load_bundle(settings.models_dir)
    score_chunk(0, files[:2], policy, bundle)
    started = time.perf_counter()
    for ref in files:
        score_chunk(0, [ref], policy, bundle)
    return len(files) / (time.perf_counter() - started)


@contextmanager
def embedded_home(home: Path, **settings_fields) -> Iterator[Settings]:
    """Settings on a fresh VOXFLOW_HOME with its embedded servers running; stopped afterwards."""
    settings = Settings(home=home, **settings_fields)
    services.ensure_all(settings)
    try:
        yield settings
    finally:
        services.stop_services(settings)


def analyze(
    manifest: Path, settings: Settings, *, workers: int, min_workers: int | None = None, extra_env: dict[str, str] | None = None,
    checkout: Path = REPO,
) -> tuple[dict, float]:
    """Run the real CLI on a fresh database and an empty cache; return its JSON summary and the command's wall time.

    The cluster adapts from ``min_workers`` (default: ``workers``, a fixed size) up to ``workers``.
    ``checkout`` is the voxflow source tree the command runs (this one, or another checkout for ``ab.py``).
    """
    connect_redis(services.redis_url(settings)).flushdb()  # a cached score would make the run skip the file
    env = {
        **os.environ, "VOXFLOW_HOME": str(settings.home), "VOXFLOW_DASK_MIN_WORKERS": str(min_workers or workers),
        "VOXFLOW_DASK_MAX_WORKERS": str(workers), "VOXFLOW_MONGO_DB": f"bench_{time.time_ns()}",
        "PREFECT_LOGGING_LEVEL": "WARNING", **(extra_env or {}),
    }
    _adopt_orphans()
    ours = {child.pid for child in psutil.Process().children()}  # the servers, a pool's resource tracker...
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CLI, "analyze", str(manifest), "--json"],
                          env=env, cwd=checkout, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    _reap_orphans(keep=ours)
    if proc.returncode != 0:
        sys.exit(f"analyze failed:\n{proc.stderr[-4000:]}")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    check_all_scored(summary)
    return summary, wall


def check_all_scored(summary: dict) -> None:
    """Exit unless the run scored every file it saw: the corpora are valid audio, each run gets a fresh
    database and an empty cache, so anything quarantined or skipped means the run measured other work."""
    if summary["scored"] != summary["seen"] or summary["quarantined"] or summary["skipped"]:
        sys.exit(f"analyze did not score every file, so its rate would not compare: {json.dumps(summary)}")


@dataclass(frozen=True)
class CpuSplit:
    """CPU seconds of one `voxflow analyze`: its own process, the processes it started (the forkserver and
    the Dask scheduler and workers), and the embedded servers meanwhile."""

    command: float
    workers: float
    servers: float

    @property
    def total(self) -> float:
        return self.command + self.workers + self.servers


def analyze_with_cpu(manifest: Path, settings: Settings, **options) -> tuple[dict, float, CpuSplit]:
    """:func:`analyze` (same ``options``), and the CPU seconds of every process the command ran plus the
    embedded servers' meanwhile, split by where they were spent."""
    cpu, servers = children_cpu_s(), services_cpu_s(settings)
    with tempfile.NamedTemporaryFile(prefix="voxflow-bench-cpu-") as own:
        summary, command_s = analyze(manifest, settings, extra_env={"VOXFLOW_BENCH_CPU_FILE": own.name}, **options)
        command = float(Path(own.name).read_text())
    return summary, command_s, CpuSplit(command, children_cpu_s() - cpu - command, services_cpu_s(settings) - servers)


def _adopt_orphans() -> None:
    """Become the reaper of this process's orphaned descendants (Linux ``PR_SET_CHILD_SUBREAPER``).

    The CLI's forkserver outlives the CLI by a moment and is then nobody's child: its CPU, and that
    of the workers it forked, would never reach :func:`children_cpu_s`.
    """
    if ctypes.CDLL(None).prctl(_PR_SET_CHILD_SUBREAPER, 1) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def _reap_orphans(*, keep: set[int]) -> None:
    """Wait for the children adopted since ``keep`` was listed: they exit once their CLI has."""
    for child in psutil.Process().children():
        if child.pid not in keep:
            child.wait(timeout=30)


def children_cpu_s() -> float:
    """CPU seconds (user + system) of every finished child process of this one, and theirs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def services_cpu_s(settings: Settings) -> float:
    """CPU seconds the embedded servers (Redis, nx-27017, Prefect and its children) have used so far."""
    total = 0.0
    for status in services.services_status(settings):
        if status.pid is None:
            continue
        root = psutil.Process(status.pid)
        for process in (root, *root.children(recursive=True)):
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
    return total


def paired_rounds(
    manifest: Path, files: list[FileRef], settings: Settings, *, workers: int, rounds: int, min_workers: int | None = None,
    opensmile: bool = False,
) -> dict:
    """``rounds`` alternating runs of the plain pool and `voxflow analyze` at ``workers`` processes.

    A machine shared with other jobs slows whichever run it lands on, so each round pairs a pool
    run with a voxflow run (the pool first in even rounds, second in odd ones, so that neither side
    always follows the other's after-effects), and every figure is the median over rounds of that
    figure, ratios included: a ratio is the median of the rounds' ratios, not the ratio of the
    median rates. CPU seconds per clip (every process of each side, servers included for voxflow)
    tell orchestration cost apart from waiting on a busy machine. With ``opensmile`` each round ends
    with the same pool running openSMILE's eGeMAPSv02 on the same files (:func:`pool_rate`).
    """
    from features.extract import warm_up

    warm_up()  # numba compiles into its disk cache here, not inside the first timed run
    samples: dict[str, list[float]] = {}

    def run_pool(*, opensmile: bool = False) -> tuple[float, float]:
        """The pool's clips/s and its CPU ms per clip."""
        cpu = children_cpu_s()
        rate = pool_rate(files, settings, workers, opensmile=opensmile)
        return rate, 1000 * (children_cpu_s() - cpu) / len(files)

    for round_index in range(rounds):
        if round_index % 2 == 0:
            pool, pool_cpu_ms = run_pool()
        summary, command_s, voxflow_cpu = analyze_with_cpu(manifest, settings, workers=workers, min_workers=min_workers)
        if round_index % 2 == 1:
            pool, pool_cpu_ms = run_pool()
        analysed = summary["scored"] + summary["quarantined"]
        row = {
            "pool_clips_per_s": pool,
            "voxflow_clips_per_s": summary["clips_per_s"],
            "voxflow_command_clips_per_s": analysed / command_s,
            "voxflow_share_of_pool": summary["clips_per_s"] / pool,
            "voxflow_command_share_of_pool": analysed / command_s / pool,
            "pool_cpu_ms_per_clip": pool_cpu_ms,
            "voxflow_cpu_ms_per_clip": 1000 * voxflow_cpu.total / analysed,
            # where voxflow's seconds went: the flow's phases, and the command around the flow
            "voxflow_discover_s": summary["discover_s"],
            "voxflow_score_s": summary["score_s"],
            "voxflow_outside_flow_s": command_s - summary["wall_s"],
        }
        if opensmile:
            row["opensmile_clips_per_s"], row["opensmile_cpu_ms_per_clip"] = run_pool(opensmile=True)
            row["voxflow_command_over_opensmile"] = row["voxflow_command_clips_per_s"] / row["opensmile_clips_per_s"]
        for key, value in row.items():
            samples.setdefault(key, []).append(value)
        print(f"  round: pool {pool:5.1f} clips/s, voxflow {row['voxflow_clips_per_s']:5.1f} clips/s "
              f"({row['voxflow_share_of_pool']:.0%}), command {row['voxflow_command_clips_per_s']:5.1f} clips/s; "
              f"CPU ms/clip pool {row['pool_cpu_ms_per_clip']:.0f}, voxflow {row['voxflow_cpu_ms_per_clip']:.0f}"
              + (f"; openSMILE {row['opensmile_clips_per_s']:5.1f} clips/s, {row['opensmile_cpu_ms_per_clip']:.0f} CPU ms/clip" if opensmile else ""),
              flush=True)
    return {key: round(statistics.median(values), 3) for key, values in samples.items()}


def report(result: dict) -> None:
    """A readable table, then the result as one JSON object on the last line."""
    width = max(map(len, result))
    print("\n".join(f"{key:<{width}}  {value}" for key, value in result.items()))
    print(json.dumps(result))


def time_extractors(extractors: dict[str, Callable[[Any], object]], clips: list[tuple[str, Any]], repeats: int) -> dict[str, np.ndarray]:
    """Shape (2, clips, repeats) per extractor: this thread's CPU seconds and wall seconds per clip
    (each clip is a name and what the extractors take: samples, or what a bench computed from them).

    Rounds are interleaved so that drift in the machine's load hits every extractor alike. CPU time
    is the figure reported: on a machine shared with other jobs, wall time also counts the time this
    process waited for its core.
    """
    times = {name: np.zeros((2, len(clips), repeats)) for name in extractors}
    for r in range(repeats):
        for name, extract in extractors.items():
            for i, (_, y) in enumerate(clips):
                cpu, wall = time.thread_time(), time.perf_counter()
                extract(y)
                times[name][:, i, r] = time.thread_time() - cpu, time.perf_counter() - wall
    return times
