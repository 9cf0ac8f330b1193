"""This checkout's `voxflow analyze` against another checkout's: same corpus, servers and interpreter.

For changes to a command's fixed costs (imports, start-up, exit) that are smaller than the drift of
a shared machine between two bench runs: each round runs both commands back to back, in alternating
order, and the figures are medians. Each side's modules are first compiled to bytecode (a worktree has
none, and with PYTHONDONTWRITEBYTECODE every process would compile them again), then each side runs once
unmeasured (numba compiles its kernel cache for each checkout's source paths).

    git worktree add /tmp/voxflow-base <commit>
    .venv/bin/python bench/ab.py /tmp/voxflow-base --clips 500 --rounds 7
    .venv/bin/python bench/ab.py /tmp/voxflow-base --clips 500 --rounds 7 --min-workers 1   # the default adaptive bounds
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import tempfile
import tomllib
from pathlib import Path

from common import REPO, analyze, analyze_with_cpu, build_corpus, embedded_home, report


def compile_packages(checkout: Path) -> None:
    """Compile the checkout's packages (those its pyproject.toml installs) to bytecode, as `make venv` does."""
    find = tomllib.loads((checkout / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    for pattern in find["include"]:
        compileall.compile_dir(checkout / pattern.rstrip("*"), quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=Path, help="the other checkout (a git worktree of the commit to compare with)")
    parser.add_argument("--clips", type=int, default=500)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--min-workers", type=int, help="adapt from this many workers up to --workers (default: a fixed --workers)")
    args = parser.parse_args()
    sides = {"baseline": args.baseline.resolve(), "this": REPO}
    samples: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="voxflow-bench-") as tmp:
        manifest = build_corpus(Path(tmp) / "corpus", args.clips)
        with embedded_home(Path(tmp) / "home") as settings:
            for checkout in sides.values():
                compile_packages(checkout)
                analyze(manifest, settings, workers=args.workers, min_workers=args.min_workers, checkout=checkout)
            for round_ in range(args.rounds):
                for side, checkout in (sides.items() if round_ % 2 == 0 else reversed(sides.items())):
                    summary, command_s, cpu = analyze_with_cpu(manifest, settings, workers=args.workers, min_workers=args.min_workers, checkout=checkout)
                    for key, value in {"command_s": command_s, "flow_s": summary["wall_s"], "discover_s": summary["discover_s"], "outside_flow_s": command_s - summary["wall_s"],
                                       "cpu_s": cpu.total, "command_cpu_s": cpu.command, "workers_cpu_s": cpu.workers, "servers_cpu_s": cpu.servers}.items():
                        samples.setdefault(f"{side}_{key}", []).append(value)
                    print(f"  {side:8s} command {command_s:6.2f} s, flow {summary['wall_s']:6.2f} s, CPU {cpu.total:6.2f} s "
                          f"(command {cpu.command:5.2f}, workers {cpu.workers:5.2f}, servers {cpu.servers:5.2f})", flush=True)
    medians = {key: round(statistics.median(values), 3) for key, values in samples.items()}
    report({"bench": "ab", "baseline": str(sides["baseline"]), "clips": args.clips, "workers": args.workers, "min_workers": args.min_workers or args.workers, "rounds": args.rounds, **medians,
            "command_ratio": round(medians["this_command_s"] / medians["baseline_command_s"], 3),
            "this_faster_rounds": sum(t < b for t, b in zip(samples["this_command_s"], samples["baseline_command_s"])),
            "load_avg_1m": round(os.getloadavg()[0], 2)})


if __name__ == "__main__":
    main()
