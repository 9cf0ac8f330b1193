"""The ``voxflow`` command line: analyse batches, read results, manage models and embedded servers."""

from __future__ import annotations

import os
import signal
import sys
import threading


def _exit_at_ctrl_c_while_starting(signum: int, frame: object) -> None:
    """A Ctrl-C while the command starts (the imports below, ~0.2 s; reading its arguments and settings): nothing
    has started yet, so it exits at once with the one line and 130, not a KeyboardInterrupt traceback from
    wherever the imports were. :func:`main` hands over to :func:`_raise_at_ctrl_c` when the command runs."""
    try:
        os.write(2, b"voxflow: interrupted\n")
    except OSError:  # no stderr to say it on
        pass
    os._exit(130)


# Only where this process is the command (python -m voxflow.cli, or the console script; not where a test, a
# flow or a worker re-running the parent's __main__ as __mp_main__ imports this module), and before the imports
# that follow, on purpose. Before this line (the interpreter's own start-up, site, runpy, compiling or loading
# this file: 25-40 ms after exec here) Python's handler is in place, or none yet: a Ctrl-C there still ends
# with a KeyboardInterrupt traceback, or silently by SIGINT.
if __name__ == "__main__" or os.path.basename(getattr(sys.modules["__main__"], "__file__", None) or "") == "voxflow":
    signal.signal(signal.SIGINT, _exit_at_ctrl_c_while_starting)

import argparse
import json
import logging
import math
import re
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Iterable, Iterator, Literal, Sequence

from pydantic import ValidationError
from pydantic_settings import SettingsError

from voxflow.errors import LockError, PrefectUnreachable, SourceError, VoxflowError
from voxflow.garbage import freeze_at_exit, imports_uncollected
from voxflow.interrupts import STOP_SIGNALS, completed_runs, lost_stops_raised_again, raise_terminated, raise_where_it_counts, stop_signal, stops_deferred
from voxflow.settings import VOXFLOW_PACKAGES, Settings, check_work_pool_name, get_settings, unknown_variables

if TYPE_CHECKING:
    from pymongo.database import Database

    from store.models import ModelStore
    from store.mongo import ResultStore

# Prefect's client-side usage telemetry starts when prefect is imported; voxflow does not phone home
# (DO_NOT_TRACK=0 in the environment turns it back on). The servers voxflow starts have theirs off too.
os.environ.setdefault("DO_NOT_TRACK", "1")

RESULT_COLUMNS = ("created_at", "path", "score", "label", "reference_label", "quality_flags", "model_version", "run_id")
QUARANTINE_COLUMNS = ("created_at", "path", "stage", "reason", "run_id")
# seen: files an analyze listed; acked: queue entries a drain finished (a drain lists no source).
BACKUPS_LISTED = 20
RUN_COLUMNS = (
    "started_at", "run_id", "status", "seen", "acked", "scored", "skipped", "duplicates", "quarantined", "ignored", "wall_s", "clips_per_s",
    "input_drift", "source", "error",
)
LISTED = 50  # records a listing shows by default
PREDICTED_LABELS = ("healthy", "pathological")  # models.artifact's NEGATIVE_LABEL, POSITIVE_LABEL (its import costs numpy's)
FEATURE_STORE_COLUMNS = ("feature_version", "chunk_files", "runs", "parts", "bytes")
DRIFT_COLUMNS = ("feature", "read", "psi", "p_value", "bin", "share", "training_share")
DRIFT_LISTED = 20  # shifted features `voxflow drift` lists
OUTCOME_COLUMNS = ("metric", "live", "ci_95", "cross_validated", "verdict")
OUTCOMES_MIN_PER_CLASS = 10  # models.outcomes.MIN_PER_CLASS (its import costs numpy's and scipy's)
OUTCOMES_LEVEL = "95%"  # models.outcomes.LEVEL
CALIBRATION_COLUMNS = ("score", "n", "mean_score", "observed", "cross_validated")
GROUP_COLUMNS = ("group", "n", "positive", "auc", "sensitivity", "specificity", "worse")
BACKUP_COLUMNS = ("started_at", "backup_id", "status", "verified", "path", "error", "prune_error")


class BriefExpectedErrors(logging.Formatter):
    """Console log lines that show an expected voxflow error (bad input, a store down or refusing) or the Prefect
    API gone without its traceback: the command ends with that error in one line anyway. The run's record keeps the
    error (a voxflow error's run log lines have no traceback: :class:`~voxflow.errors.OneLineInRunLogs`); any other
    exception is printed with it."""

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info and _expected(record.exc_info[1]):
            record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
        return super().format(record)


def _expected(exc: BaseException | None) -> bool:
    """Whether ``exc`` is an error the command ends with in one line (:func:`main`)."""
    if isinstance(exc, VoxflowError):
        return True
    if "prefect" not in sys.modules:  # no Prefect API was spoken to; and the check would import it (~1 s)
        return False
    from voxflow.orchestration import unreachable_reason

    return exc is not None and unreachable_reason(exc) is not None


class CtrlCNotACrash(logging.Filter):
    """Leaves out of the console Prefect's lines on a run ended by a stop signal ("Crash detected! Execution was
    aborted by an interrupt signal.", "... by a termination signal.", "Finished in state Crashed(...)", ERROR): the
    command says it was stopped in its last line, and the run's record says "interrupted". Prefect's API log keeps
    them, with the Crashed state.

    Also leaves out tornado's ERROR traceback of distributed's ``sync()`` failing to cancel a call that a Ctrl-C cut
    before its coroutine started (distributed 2026.8's ``cancel`` reads its ``future`` before it is assigned:
    ``NameError``); there was nothing to cancel."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "tornado.application":
            return not _uncancelled_sync_call(record)
        if not record.name.startswith("prefect."):
            return True
        message = record.getMessage()
        if "aborted by an interrupt signal" in message or "aborted by a termination signal" in message:
            return False
        return not (_stopped_by is not None and "Crash" in message)  # SIGHUP's: "...by an unexpected exception: Terminated"


def _uncancelled_sync_call(record: logging.LogRecord) -> bool:
    """Whether ``record`` is tornado's report of distributed's ``sync.<locals>.cancel`` raising ``NameError``."""
    error = record.exc_info[1] if record.exc_info else None
    return isinstance(error, NameError) and "sync.<locals>.cancel" in record.getMessage()


def _cell(value: Any) -> Any:
    """A listing's cell: a list joined with ",", a report (a run's input drift) by its brief, a missing value (None, NaN,
    "" or an empty list) as "-"."""
    if isinstance(value, dict):
        value = value.get("brief")
    if isinstance(value, (list, tuple)):
        value = ",".join(map(str, value))
    missing = value is None or value == "" or (isinstance(value, float) and math.isnan(value))
    return "-" if missing else value


def _whole_numbers(records: list[dict[str, Any]], column: str) -> bool:
    """Whether every value ``records`` give ``column`` is an integer (a count, a pid)."""
    present = [record[column] for record in records if record.get(column) is not None]
    return bool(present) and all(isinstance(value, int) and not isinstance(value, bool) for value in present)


def _print_records(records: list[dict[str, Any]], columns: Sequence[str], *, as_json: bool, empty: str) -> None:
    """``records`` as a table of ``columns`` (those they have), or as one JSON list; ``empty`` when there are none."""
    if as_json:
        print(json.dumps(records, default=str))
        return
    if not records:
        print(empty)
        return
    import pandas as pd  # only listings need it; analyze starts its workers sooner without its import

    frame = pd.DataFrame(records)
    shown = [c for c in columns if c in frame.columns]
    for column in shown:
        if _whole_numbers(records, column):  # pandas reads integers beside a missing value as floats (12.0)
            frame[column] = [_cell(record.get(column)) for record in records]
        elif not (pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_datetime64_any_dtype(frame[column])):
            frame[column] = frame[column].map(_cell)  # na_rep reaches only numbers and times, not None among text
    with pd.option_context("display.max_colwidth", 60, "display.width", 200):
        print(frame[shown].to_string(index=False, na_rep="-"))


def _print_summary(summary: dict[str, Any], *, as_json: bool) -> None:
    """A run summary as aligned ``key  value`` lines, or as one JSON object."""
    if as_json:
        print(json.dumps(summary), flush=True)
        return
    from models.drift import as_shown

    width = max(map(len, summary))
    print("\n".join(f"{key:<{width}}  {as_shown(value)}" for key, value in summary.items()), flush=True)


def _database(settings: Settings) -> ContextManager[Database]:
    """The configured MongoDB database for one command (:func:`store.mongo.open_database`)."""
    from store.mongo import open_database
    from voxflow import services

    return open_database(services.mongo_uri(settings), settings.mongo_db)


def _number_in(low: float, high: float | None = None, *, convert: Callable[[str], float] = int) -> Callable[[str], Any]:
    """An argparse ``type`` that reads a number with ``convert`` and refuses one outside [``low``, ``high``]."""
    kind = "an integer" if convert is int else "a number"
    wanted = f"{kind} from {low} to {high}" if high is not None else f"{kind} of at least {low}"

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            value = None
        # Written so that NaN is refused too; infinity is no count and no wait a run can finish.
        if value is None or not (low <= value and (high is None or value <= high)) or math.isinf(value):
            raise argparse.ArgumentTypeError(f"must be {wanted}, not {text!r}")
        return value

    return parse


def _like_setting(name: str) -> Callable[[str], Any]:
    """An argparse ``type`` for an option that stands in for setting ``name``: an integer within that setting's bounds."""
    bounds = {type(rule).__name__: rule for rule in Settings.model_fields[name].metadata}
    return _number_in(bounds["Ge"].ge, bounds["Le"].le)


_positive_int = _number_in(1)
_score = _number_in(0, 1, convert=float)


def cmd_analyze(args: argparse.Namespace, settings: Settings) -> int:
    from tasks.forkserver import start_forkserver
    from tasks.ingest import check_source, count_listed

    check_source(args.source)
    start_forkserver(settings)  # the workers' imports (~2.5 s of CPU) load beside this process's own from here on
    # A Ctrl-C during the commands' heavy imports (distributed, Prefect and the flows: ~1-2 s each) takes effect
    # once they are done: raised inside them, pydantic-core reported it as unraisable and the command went on, or
    # it left CPython's import lock held, and the first thread to import after it hung the command.
    with imports_uncollected(), stops_deferred():
        from tasks.cluster import handed_over, initial_workers, local_cluster_ahead

    chunk_size = args.chunk_size or settings.chunk_size
    workers = initial_workers(count_listed(args.source, limit=settings.dask_max_workers * chunk_size), settings, chunk_size)
    with local_cluster_ahead(settings, workers=workers) as scheduler_address:  # the workers start while Prefect and the flow's imports do
        with imports_uncollected(), stops_deferred():
            from flows.analyze import analyze_batch
            from voxflow.orchestration import prefect_api

        with prefect_api(settings), handed_over(scheduler_address()):
            summary = analyze_batch(source=args.source, model_version=args.model, chunk_size=args.chunk_size)
        _print_summary(summary, as_json=args.json)  # before the workers shut down
    return 0


def _run_named(store: ResultStore, text: str | None) -> str | None:
    """The id of the run ``text`` names: a run's whole id, or the start of exactly one run's id (as git reads a short hash).

    Raises
    ------
    VoxflowError
        When no run's id starts with ``text``, or more than one does.
    """
    if text is None:
        return None
    if not text.strip():
        raise VoxflowError("--run is empty: give a run id or its start (`voxflow runs` lists them)")
    found = store.run_ids(text, limit=4)
    if found[:1] == [text] or len(found) == 1:
        return found[0]
    if not found:
        raise VoxflowError(f"no run {text} (`voxflow runs` lists them)")
    raise VoxflowError(f"more than one run id starts with {text} ({', '.join(found[:3])}{', ...' if len(found) > 3 else ''}): give more of it")


def _model_scored(store: ResultStore, version: str | None) -> str | None:
    """``version``, when some stored prediction was made by it.

    Raises
    ------
    VoxflowError
        When no stored prediction names that model version (a typo would list nothing, as if none matched).
    """
    if version is None or store.scored_by(version):
        return version
    raise VoxflowError(f"no stored prediction was made by model {version!r} (each prediction's model_version: `voxflow results --json`)")


def _stripped(refusal: str) -> Callable[[str], str]:
    """An option's text as a manifest cell is stored, without the spaces around it; an empty one refused with ``refusal``."""
    def parse(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(refusal)
        return text.strip()

    return parse


def cmd_results(args: argparse.Namespace, settings: Settings) -> int:
    from store.mongo import PredictionFilter, ResultStore

    with _database(settings) as db:
        store = ResultStore(db)
        where = PredictionFilter(
            run_id=_run_named(store, args.run), label=args.label, min_score=args.min_score, max_score=args.max_score,
            model_version=_model_scored(store, args.model), subject_id=args.subject,
        )
        if args.output:
            return _export(store.iter_predictions(where, limit=args.limit), args.output, "predictions")
        records = store.find_predictions(where, limit=args.limit or LISTED)
        run = store.find_run(where.run_id) if where.run_id and not records and not args.json else None
    _print_records(records, RESULT_COLUMNS, as_json=args.json, empty=_scored_none(run) or "no predictions match")
    return 0


def _scored_none(run: dict[str, Any] | None) -> str | None:
    """Why ``voxflow results --run`` lists nothing, when the run scored no file: what it did with them instead.

    Examples
    --------
    >>> _scored_none({"run_id": "r1", "scored": 0, "skipped": 208, "duplicates": 0, "quarantined": 0})
    'run r1 scored no file: 208 skipped, scored before by earlier runs (`voxflow results` lists their predictions)'
    >>> _scored_none({"run_id": "r1", "scored": 0, "skipped": 0, "duplicates": 1, "quarantined": 2})
    'run r1 scored no file: 1 duplicate, 2 quarantined (`voxflow quarantine --run r1` lists them)'
    >>> _scored_none({"run_id": "r1", "scored": 3}) is None
    True
    """
    if run is None or run.get("scored"):
        return None
    skipped, duplicates, quarantined = (run.get(key) or 0 for key in ("skipped", "duplicates", "quarantined"))
    done, hints = [], []
    if skipped:
        done.append(f"{skipped} skipped, scored before by earlier runs")
        hints.append("`voxflow results` lists their predictions")
    if duplicates:
        done.append(f"{duplicates} duplicate{'s' if duplicates != 1 else ''}")
    if quarantined:
        done.append(f"{quarantined} quarantined")
    if duplicates or quarantined:
        hints.append(f"`voxflow quarantine --run {run['run_id']}` lists them")
    return f"run {run['run_id']} scored no file: {', '.join(done)} ({'; '.join(hints)})" if done else None


def cmd_quarantine(args: argparse.Namespace, settings: Settings) -> int:
    from store.mongo import ResultStore

    with _database(settings) as db:
        store = ResultStore(db)
        run_id = _run_named(store, args.run)
        if args.output:
            return _export(store.iter_quarantine(run_id=run_id, stage=args.stage, limit=args.limit), args.output, "quarantine")
        records = store.find_quarantine(run_id=run_id, stage=args.stage, limit=args.limit or LISTED)
    _print_records(records, QUARANTINE_COLUMNS, as_json=args.json, empty="nothing quarantined" + (f" at stage {args.stage}" if args.stage else ""))
    return 0


def _export(records: Iterable[dict[str, Any]], path: Path, kind: Literal["predictions", "quarantine"]) -> int:
    from store.export import PREDICTION_EXPORT, QUARANTINE_EXPORT, export_records

    rows = export_records(records, path, PREDICTION_EXPORT if kind == "predictions" else QUARANTINE_EXPORT)
    print(f"wrote {rows} {'predictions' if kind == 'predictions' else 'quarantine records'} to {path}")
    return 0


def _export_path(text: str) -> Path:
    from store.export import EXPORT_FORMATS
    from tasks.ingest import given_path

    if Path(text).suffix.lower() not in EXPORT_FORMATS:
        raise argparse.ArgumentTypeError(f"name a {' or '.join(EXPORT_FORMATS)} file, not {text!r}")
    try:
        return given_path(text, what="file")
    except SourceError as exc:
        raise argparse.ArgumentTypeError(exc.reason) from exc


def cmd_runs(args: argparse.Namespace, settings: Settings) -> int:
    from store.mongo import ResultStore

    with _database(settings) as db:
        records = ResultStore(db).find_runs(limit=args.limit)
    _print_records(records, RUN_COLUMNS, as_json=args.json, empty="no runs yet")
    return 0


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from tasks.ingest import check_source, given_path

    check_source(args.manifest)
    if args.out is not None:
        given_path(args.out, what="--out")  # '' would have registered the model instead
    with stops_deferred():
        from flows.train import VOICED_ATTRIBUTION, train_model
        from voxflow.orchestration import prefect_api

    dataset = VOICED_ATTRIBUTION if args.voiced else args.dataset
    with prefect_api(settings):
        card = train_model(manifest=args.manifest, out_dir=args.out, positive=args.positive, promote=args.promote, dataset=dataset)
    left_out = {key: card["training"][key] for key in ("rejected", "conflicts")}
    print(json.dumps({"version": card["version"], "threshold": card["threshold"], **card["metrics"], **left_out}))
    return 0


def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    if args.limit is not None and not args.list:
        raise VoxflowError("--limit goes with --list (backup alone takes a backup)")
    if args.list:
        from store.backup import recent_backups

        with _database(settings) as db:
            records = recent_backups(db, limit=args.limit or BACKUPS_LISTED)
        _print_records(records, BACKUP_COLUMNS, as_json=args.json, empty="no backups recorded")
        return 0
    with stops_deferred():
        from flows.backup import backup_nightly
        from voxflow.orchestration import prefect_api

    with prefect_api(settings):
        record = _done(backup_nightly())
    if args.json:
        print(json.dumps(record, default=str))
    else:
        counts = ", ".join(f"{n} {name}" for name, n in record["counts"].items())
        print(f"backup {record['backup_id']} verified at {record['path']} ({counts}); removed: {', '.join(record['removed']) or 'nothing'}")
        if record.get("prune_error"):
            print(f"old backups were not pruned: {record['prune_error']}")
    return 0


def _done(result: dict[str, Any]) -> dict[str, Any]:
    """A flow's result, or its refusal (another run held its lock) as the command's error."""
    if result.get("status") == "skipped":
        raise LockError(result["reason"])
    return result


def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    with stops_deferred():
        from flows.backup import restore_backup

    summary = restore_backup(settings, args.date, into=args.into, drop=args.drop, force=args.force)
    if args.json:
        print(json.dumps(summary))
    else:
        counts = ", ".join(f"{n} {name}" for name, n in summary["counts"].items())
        print(f"restored backup {summary['backup_id']} into database {summary['database']} ({counts}); checksums match")
        if any(summary["erased_again"].values()):
            again = ", ".join(f"{n} {name}" for name, n in summary["erased_again"].items())
            print(f"erased again what `voxflow forget` had erased since or before: {again}")
    return 0


MODEL_COLUMNS = ("created_at", "version", "status", "feature_version", "auc", "uar", "promoted_at", "reason")
POSITIVE_HELP = ("label value that means screen-positive, in any case, a number by its value (1 matches 1.0); every other value counts "
                 "negative, and the summary names those values (default: 0/1 or pathological/healthy)")
METRIC_ROWS = ("n", "n_positive", "auc", "auc_std", "uar", "f1", "sensitivity", "specificity", "brier", "threshold")


def cmd_labels(args: argparse.Namespace, settings: Settings) -> int:
    from store.labels import LabelStore
    from tasks.ingest import given_path
    from tasks.labels import read_labels, read_voiced_labels
    from voxflow.errors import SourceError

    source = given_path(args.file, what="FILE")
    max_bytes = int(settings.max_file_mb * 1e6)
    if args.voiced:
        found = read_voiced_labels(source, max_file_bytes=max_bytes)
    elif source.is_file():
        found = read_labels(source, positive=args.positive, max_file_bytes=max_bytes)
    elif source.is_dir():
        raise SourceError(f"{source} is a folder, not a label manifest (CSV/Parquet); for a VOICED folder add --voiced")
    else:
        raise SourceError(f"label manifest {source} does not exist")
    with _database(settings) as db:
        store = LabelStore(db)
        store.ensure_indexes()
        written = store.replace([row.to_doc(source=args.source or source.name) for row in found.rows])
        total = store.count()
    for refused in found.rejected:
        print(f"not imported: {refused['row']}: {refused['reason']}", file=sys.stderr)
    for kept in found.by_sha256:
        print(f"imported by its sha256, its file unread: {kept['row']}: {kept['reason']}", file=sys.stderr)
    positives, negatives = sum(row.label for row in found.rows), found.negative_labels
    report = {
        "imported": written, "positive": positives, "negative": len(found.rows) - positives, "negative_labels": negatives,
        "by_sha256": len(found.by_sha256), "rejected": len(found.rejected), "conflicts": found.conflicts, "total": total,
    }
    named = ", ".join(f"{value} {n}" for value, n in negatives.items())
    by_sha = f"; {len(found.by_sha256)} by their sha256, their file unreadable" if found.by_sha256 else ""
    conflicts = f" ({found.conflicts} audio listed with conflicting labels or subjects)" if found.conflicts else ""
    print(json.dumps(report) if args.json else f"imported {written} labels ({positives} positive, {report['negative']} negative{': ' + named if named else ''}{by_sha}), "
          f"{len(found.rejected)} rejected{conflicts}; {total} in the labels collection")
    return 0


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    from store.models import ModelStore

    if args.action == "promote" and not args.version:
        raise VoxflowError("models promote needs a VERSION")
    if args.version and args.action != "promote":
        raise VoxflowError(f"models {args.action} takes no VERSION ({args.version!r}); models promote VERSION makes one champion")
    with _database(settings) as db:
        store = ModelStore(db)
        store.ensure_indexes()
        return _models_action(args, store, settings)


def _models_action(args: argparse.Namespace, store: ModelStore, settings: Settings) -> int:
    from tasks.model_registry import registry_changes, usable_artifact

    if args.action == "list":
        docs = store.list(limit=args.limit)
        records = [{**doc, "auc": (doc.get("metrics") or {}).get("auc"), "uar": (doc.get("metrics") or {}).get("uar")} for doc in docs]
        if not args.json:
            records = [{k: v for k, v in r.items() if k in MODEL_COLUMNS} for r in records]
        _print_records(records, MODEL_COLUMNS, as_json=args.json, empty="no registered models: the shipped baseline is champion")
        return 0
    if args.action == "promote":
        with registry_changes(settings):
            doc = store.promote(args.version, args.reason or "promoted by hand", check=usable_artifact(settings))
        report = {"champion": doc["version"], "reason": doc["reason"]}
    else:
        with registry_changes(settings):
            retired, restored = store.rollback(check=usable_artifact(settings))
        report = {"retired": retired["version"], "champion": restored["version"] if restored else None}
    if args.json:
        print(json.dumps(report))
    elif args.action == "promote":
        print(f"{report['champion']} is champion")
    else:
        print(f"retired {report['retired']}; champion is now {report['champion'] or 'the shipped baseline'}")
    return 0


def cmd_features(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import asdict

    from store.feature_store import FeatureStore
    from store.locks import FEATURE_STORE_LOCK, hold_lock

    store = FeatureStore(settings.feature_store_dir)
    versions = [args.feature_version] if args.feature_version is not None else store.versions()
    nothing = f"no features stored under {store.root} yet"
    if args.action == "status":
        _print_records([store.inventory(feature_version=v) for v in versions], FEATURE_STORE_COLUMNS, as_json=args.json, empty=nothing)
        return 0
    reports = []
    with _redis(settings) as client, hold_lock(client, FEATURE_STORE_LOCK, ttl_s=settings.lock_ttl_s):  # not while recordings are forgotten
        for version in versions:
            started = time.perf_counter()
            try:
                done = store.compact(feature_version=version)
            except OSError as exc:
                raise VoxflowError(f"feature version {version} of {store.root} not compacted, its chunk files left as they were: {exc}") from None
            seconds = time.perf_counter() - started
            reports.append({**asdict(done), "parts": [str(part) for part in done.parts], "seconds": round(seconds, 3)})
            if not args.json:
                print(f"{done.line()} in {seconds:.1f} s", flush=True)
    if args.json:
        print(json.dumps(reports))
    elif not versions:
        print(nothing)
    return 0


FORGET_HELP = "Remove what voxflow holds about recordings (by content, path or subject): predictions, labels, features, cache, queue."
FORGET_EPILOG = (
    "For a participant who withdrew, or audio stored by mistake. Every recording named, and every recording stored under "
    "a path or subject named (wherever else it was listed too), is removed from the predictions, quarantine records, "
    "labels, feature store, prediction cache and intake queue (and its latency samples); the dashboard's rollups count "
    "it out. The audio files themselves are left as they are. What cannot be undone from here is named: models trained "
    "on the recordings (retrain once their labels are gone) and backups taken before (pruned by retention; a restore "
    "of one erases the recordings again, from the erasures recorded; --list shows those records). Refused while runs "
    "are running (what they store could bring a recording back) or while a drain, backup, restore, retrain or "
    "feature-store compaction holds its lock. --dry-run shows what would go."
)


ERASURE_COLUMNS = ("at", "host", "recordings", "predictions", "quarantine", "labels", "feature_rows", "queued", "cached", "trained_on", "backups")
ERASURES_LISTED = 20


def cmd_drift(args: argparse.Namespace, settings: Settings) -> int:
    from tasks.drift_check import recent_drift

    checked = recent_drift(settings, hours=args.hours, model_version=args.model)
    if args.json:
        print(json.dumps(checked.as_doc()))
        return 0
    report = checked.report
    print(checked.line())
    print(report.line())
    shown = report.shifted or ([] if report.too_few else report.largest)
    if shown:
        print("shifted features, those the model reads first:" if report.shifted else "largest PSIs (none shifted):")
        rows = [
            {**shift.__dict__, "p_value": f"{shift.p_value:.1e}", "read": "yes" if shift.feature in report.reads else ""}
            for shift in shown[:DRIFT_LISTED]
        ]
        _print_records(rows, DRIFT_COLUMNS, as_json=False, empty="")
        if len(shown) > DRIFT_LISTED:
            print(f"... and {len(shown) - DRIFT_LISTED} more (--json lists every one)")
    return 0


def cmd_outcomes(args: argparse.Namespace, settings: Settings) -> int:
    from models.outcomes import Interval
    from tasks.outcomes import model_outcomes

    report = model_outcomes(settings, model_version=args.model, days=args.days, by=args.by)
    if args.json:
        print(json.dumps(report.as_doc()))
        return 0
    print(report.header())
    if said := report.verification_line():
        print(said)
    if report.overall.n:
        rows = [
            {"metric": m.name, "live": m.live and round(m.live.value, 3), "ci_95": m.live and f"{m.live.low:.3f}-{m.live.high:.3f}",
             "cross_validated": m.expected_text(), "verdict": m.verdict}
            for m in report.overall.metrics
        ]
        _print_records(rows, OUTCOME_COLUMNS, as_json=False, empty="")
    if args.calibration and report.overall.calibration:
        print(f"calibration: how often the recordings of each score bin were {report.positive_label} ({OUTCOMES_LEVEL} interval), "
              "and the card's out-of-fold rate there:")
        bins = [
            {"score": f"{row['bin_low']:.1f}-{row['bin_high']:.1f}", "n": row["n"], "mean_score": round(row["mean_score"], 3),
             "observed": Interval(row["positive_rate"], row["positive_low"], row["positive_high"]).text(),
             "cross_validated": row["cross_validated_rate"]}
            for row in report.overall.calibration
        ]
        _print_records(bins, CALIBRATION_COLUMNS, as_json=False, empty="")
    if report.groups:
        print(f"by {report.by}, each group against the card's estimates ({report.group_level:.1%} intervals, for {len(report.groups)} groups):")
        groups = [
            {"group": name, "n": outcomes.n, "positive": outcomes.n_positive, "worse": outcomes.worse,
             **{m.name: m.live.text() if m.live else "too few" for m in outcomes.metrics}}
            for name, outcomes in report.groups.items()
        ]
        _print_records(groups, GROUP_COLUMNS, as_json=False, empty="")
    print(report.line())
    return 0


def cmd_forget(args: argparse.Namespace, settings: Settings) -> int:
    if args.limit is not None and not args.list:
        raise VoxflowError("--limit goes with --list")
    if args.list:
        from store.erasures import recent_erasures

        if args.sha256 or args.path or args.subject or args.dry_run or args.force:
            raise VoxflowError("--list shows the erasures done; it takes no --sha256, --path, --subject, --dry-run or --force")
        with _database(settings) as db:
            records = recent_erasures(db, limit=args.limit or ERASURES_LISTED)
        _print_records(records, ERASURE_COLUMNS, as_json=args.json, empty="no erasures recorded")
        return 0
    from tasks.erasure import erase, erasure_lines, named_recordings  # reads the models and the ingest: not for --list

    named = named_recordings(args.sha256 or (), args.path or (), args.subject or (), max_file_bytes=int(settings.max_file_mb * 1e6))
    report = erase(named, settings, dry_run=args.dry_run, force=args.force)
    print(json.dumps(report) if args.json else "\n".join(erasure_lines(report, settings.backup_location)))
    return 0


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from tasks.ingest import check_source

    check_source(args.manifest, lists_paths=False)
    with stops_deferred():
        from flows.evaluate import evaluate_manifest
        from voxflow.orchestration import prefect_api

    with prefect_api(settings):
        report = evaluate_manifest(manifest=args.manifest, positive=args.positive)
    print("\n".join(f"{name:<12} {report[name]}" for name in METRIC_ROWS))
    print(json.dumps({k: v for k, v in report.items() if k not in ("calibration", "fold_aucs")}))
    return 0


def cmd_retrain(args: argparse.Namespace, settings: Settings) -> int:
    with stops_deferred():
        from flows.retrain import retrain_nightly
        from voxflow.orchestration import prefect_api

    with prefect_api(settings):
        result = _done(retrain_nightly())
    if not args.json:
        print(f"{result['version']}: {result['status']} ({result['reason']})")
    print(json.dumps({**result, "metrics": {k: v for k, v in result["metrics"].items() if k not in ("calibration", "fold_aucs")}}))
    return 0


COUNTS_HELP = "Rebuild the dashboard's rollups (prediction_counts, score_counts) from the stored predictions and quarantine."
COUNTS_EPILOG = (
    "A process killed between storing a chunk and counting it (or a count retried after its first attempt landed) leaves "
    "the per-day and score-drift figures off, and nothing notices; this recounts both rollups from every stored result and "
    "prints how their totals changed. It first marks as crashed the runs still 'running' whose process on this host has "
    "ended, then refuses (exit 2) while any run is still running, on any host: what a run stores during the rebuild may be "
    "lost or counted twice. ~10 s per 100,000 predictions."
)
def cmd_counts(args: argparse.Namespace, settings: Settings) -> int:
    from pymongo.errors import BulkWriteError

    from store.counts import COUNTS, SCORES, read_rollups, rebuild_counts, rollup_changes
    from store.mongo import ResultStore
    from store.runs import refuse_while_running, run_owner

    with _database(settings) as db:
        db.command("ping")  # an unreachable server is one line naming the database, before any retried write
        results = ResultStore(db, retry_s=settings.mongo_retry_s)
        closed, running = refuse_while_running(results, "rebuilding the counts", harm="lost or counted twice", force=args.force)
        before = read_rollups(db)
        try:
            quarter_hours = rebuild_counts(db)
        except BulkWriteError as exc:  # an $inc upserted a bucket between the drop and the rebuilt documents
            raise LockError(
                "results were counted while the counts were rebuilt (a run is storing results), so the rollups are "
                "incomplete: run `voxflow counts rebuild` again once `voxflow runs` shows none running"
            ) from exc
        after = read_rollups(db)
        forced = {run["run_id"] for run in running}
        started = [run for run in results.running_runs(paused=True) if run["run_id"] not in forced]
    changes = rollup_changes(before, after)
    report = {
        "database": settings.mongo_db, "closed_runs": closed, "forced": sorted(forced), "started_meanwhile": [run["run_id"] for run in started],
        "quarter_hours": quarter_hours, **changes,
    }
    if started:
        print(f"voxflow: warning: {len(started)} run(s) started while the counts were rebuilt ({', '.join(map(run_owner, started))}): "
              "what they stored meanwhile may be miscounted; run `voxflow counts rebuild` again once they have ended", file=sys.stderr)
    if args.json:
        print(json.dumps(report))
        return 0
    for run_id in closed:
        print(f"closed abandoned run {run_id} as crashed (its process had ended)")
    if forced:
        print(f"--force: rebuilt while {len(forced)} run(s) were running: {', '.join(map(run_owner, running))}")
    print(f"rebuilt {COUNTS} ({quarter_hours} quarter hours, {changes[COUNTS]['changed']} changed) and {SCORES} "
          f"({changes[SCORES]['documents']} quarter hours by model, {changes[SCORES]['changed']} changed) in database {settings.mongo_db}")
    for name in (COUNTS, SCORES):
        old, new = changes[name]["before"], changes[name]["after"]
        print(f"{name:<{len(COUNTS)}}  " + ", ".join(f"{field} {old[field]} -> {new[field]}{_difference(new[field] - old[field])}" for field in new))
    return 0


def _difference(delta: int) -> str:
    """`` (+3)``, `` (-2)``, or nothing for no change."""
    return f" ({delta:+d})" if delta else ""


def cmd_voiced_manifest(args: argparse.Namespace, settings: Settings) -> int:
    from tasks.ingest import given_path
    from tasks.voiced import voiced_manifest

    output = given_path(args.output, what="--output")
    frame, skipped = voiced_manifest(given_path(args.folder, what="FOLDER"))
    frame.to_csv(output, index=False)
    for record in skipped:
        print(f"skipped {record['row']}: {record['reason']}", file=sys.stderr)
    counts = frame["label"].value_counts().to_dict()
    also = f"; {len(skipped)} records skipped" if skipped else ""
    print(f"wrote {len(frame)} records to {args.output} ({', '.join(f'{v} {k}' for k, v in counts.items())}){also}")
    return 0


def cmd_demo_corpus(args: argparse.Namespace, settings: Settings) -> int:
    from tasks.ingest import given_path
    from voxflow.demo import write_demo_corpus

    manifest = write_demo_corpus(given_path(args.folder, what="FOLDER"), n=args.n)
    print(f"wrote {args.n} labelled clips and a bad-input folder under {args.folder} (manifest {manifest})")
    return 0


def cmd_services(args: argparse.Namespace, settings: Settings) -> int:
    from voxflow import services

    if args.action == "stop":
        stopped = services.stop_services(settings)
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        return 0
    if args.action == "start":
        services.ensure_all(settings)
    rows = [status.__dict__ for status in services.services_status(settings)]
    _print_records(rows, ("name", "mode", "state", "address", "pid"), as_json=args.json, empty="no services")
    return 0


def dashboard_command(settings: Settings, port: int | None = None) -> list[str]:
    """The ``streamlit run`` command line of the ops dashboard (bound to ``dashboard_address``, no usage stats)."""
    app = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
    return [
        sys.executable, "-m", "streamlit", "run", str(app),
        "--server.address", settings.dashboard_address,
        "--server.port", str(settings.dashboard_port if port is None else port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
    ]


def _check_bind_address(address: str) -> None:
    """Raise VoxflowError unless a socket binds ``address`` as Streamlit's server will (IPv6 when it holds a ':').

    Streamlit would say that 999.1.1.1 does not resolve, or that an address is not this machine's, in a traceback.
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family) as probe:
            probe.bind((address, 0))
    except OSError as exc:  # socket.gaierror is one
        raise VoxflowError(f"bad setting VOXFLOW_DASHBOARD_ADDRESS: cannot serve on {address} ({exc.strerror or exc})") from None


def cmd_dashboard(args: argparse.Namespace, settings: Settings) -> int:
    _check_bind_address(settings.dashboard_address)
    # Streamlit replaces this process: a service manager's SIGTERM (or a `kill` of this pid) reaches the server
    # itself, where a child would have outlived its parent, holding the port.
    argv = dashboard_command(settings, args.port)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)


def _redis(settings: Settings):
    from store.cache import connect_redis
    from voxflow import services

    return connect_redis(services.redis_url(settings))


def cmd_enqueue(args: argparse.Namespace, settings: Settings) -> int:
    from store.queue import FileQueue, QueueItem
    from tasks.ingest import check_source, list_source

    for source in args.sources:
        check_source(source)
    items, rejected, ignored = [], [], []
    for source in args.sources:
        candidates, refused, skipped = list_source(source)
        items += [QueueItem(str(c.path), subject_id=c.subject_id, label=c.label) for c in candidates]
        for unread in (c.unread_label for c in candidates if c.unread_label):
            print(f"warning: {unread}", file=sys.stderr)
        rejected += [{"path": r.path, "reason": r.reason} for r in refused]
        ignored += skipped
    queue = FileQueue(_redis(settings))
    ids = queue.enqueue(items)
    report = {"enqueued": len(ids), "rejected": rejected, "ignored": len(ignored), "depth": queue.status().depth}
    if args.json:
        print(json.dumps(report))
        return 0
    for refused in rejected:
        print(f"not enqueued: {refused['path']}: {refused['reason']}", file=sys.stderr)
    print(f"enqueued {report['enqueued']} files ({report['ignored']} non-audio ignored); queue depth {report['depth']}")
    return 0


def cmd_queue(args: argparse.Namespace, settings: Settings) -> int:
    import time
    from dataclasses import asdict

    from store.latency import LatencyLog, latency_summary
    from store.queue import FileQueue

    client = _redis(settings)
    status = FileQueue(client).status()
    hour_ago_ms = int((time.time() - 3600) * 1000)
    latency = latency_summary([s.latency_s for s in LatencyLog(client, maxlen=settings.metrics_maxlen).since(hour_ago_ms)])
    report = {**asdict(status), "latency_last_hour": latency}
    if args.json:
        print(json.dumps(report))
        return 0
    age = "-" if status.oldest_pending_age_s is None else f"{status.oldest_pending_age_s:.1f} s"
    print(f"depth {status.depth}  delivered-unacked {status.pending}  oldest waiting {age}")
    p50, p95 = ("-" if latency[key] is None else f"{latency[key]} s" for key in ("p50_s", "p95_s"))
    print(f"latency (last hour, {latency['count']} files): p50 {p50}  p95 {p95}")
    _print_records([asdict(c) for c in status.consumers], ("name", "pending", "idle_s"), as_json=False, empty="no consumers")
    return 0


def cmd_drain(args: argparse.Namespace, settings: Settings) -> int:
    with stops_deferred():
        from flows.drain import drain_queue
        from voxflow.orchestration import prefect_api

    with prefect_api(settings):
        summary = drain_queue(model_version=args.model, chunk_size=args.chunk_size, batch_size=args.batch_size, linger_s=args.linger)
    _print_summary(summary, as_json=args.json)
    return 0


def cmd_deploy(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import asdict

    with stops_deferred():
        from voxflow.deploy import deploy_all
        from voxflow.orchestration import prefect_api

    with prefect_api(settings):
        report = deploy_all(work_pool=settings.work_pool, timezone=settings.schedule_timezone)
    if args.json:
        print(json.dumps(asdict(report)))
        return 0
    print(f"work pool {report.work_pool} ({'created' if report.pool_created else 'exists'})")
    for name, deployment_id in report.deployed.items():
        print(f"deployed {name}  {deployment_id}")
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    if args.pool is not None:
        try:
            check_work_pool_name(args.pool)
        except ValueError as exc:
            raise VoxflowError(f"--pool {exc}") from None
    with stops_deferred():
        from voxflow.console import CONSOLE_CLASS_VARIABLE, PLAIN_CONSOLE_CLASS
        from voxflow.deploy import end_flow_runs, run_worker
        from voxflow.orchestration import prefect_api

    os.environ.update(settings.path_variables())  # its flow runs start in the project's folder
    os.environ.setdefault(CONSOLE_CLASS_VARIABLE, PLAIN_CONSOLE_CLASS)  # and their console prints "voxflow:lock:retrain" as written
    with prefect_api(settings), _stops_cancel_the_task(first=end_flow_runs):  # it runs on asyncio.run()
        run_worker(args.pool or settings.work_pool, run_once=args.run_once)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voxflow",
        description="Batch voice-health screening. Servers left unconfigured (VOXFLOW_REDIS_URL, VOXFLOW_MONGO_URI, "
        "PREFECT_API_URL, VOXFLOW_DASK_ADDRESS) are started and reused under VOXFLOW_HOME.",
        epilog="Settings are VOXFLOW_* environment variables; README.md, section Configuration, lists each with its default.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Callable[[argparse.Namespace, Settings], int], help_text: str, *, resumable: bool = False) -> argparse.ArgumentParser:
        # resumable: running the command again after an interruption finishes what it left (it skips what is stored)
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(handler=handler, resumable=resumable)
        return command

    analyze = add("analyze", cmd_analyze, "Score every audio file of SOURCE and store the predictions.", resumable=True)
    analyze.add_argument("source", help="a folder (recursive), a glob in quotes, a CSV/Parquet manifest with a 'path' column, or one file")
    analyze.add_argument("--model", help="model version to use (default: the champion, else the shipped baseline)")
    analyze.add_argument("--chunk-size", type=_like_setting("chunk_size"), help="files per Dask task (default: VOXFLOW_CHUNK_SIZE)")
    analyze.add_argument("--json", action="store_true", help="print the run summary as one JSON object on the last line")

    results = add("results", cmd_results, "Show stored predictions, newest first.")
    results.add_argument("--label", type=str.lower, choices=PREDICTED_LABELS, help="only this predicted label (in any case)")
    results.add_argument("--min-score", type=_score, help="only scores of at least this (0 to 1)")
    results.add_argument("--max-score", type=_score, help="only scores of at most this (0 to 1)")
    results.add_argument("--model", metavar="VERSION", help="only the predictions of this model version (each file has one per model that scored it)")
    results.add_argument("--subject", metavar="ID", type=_stripped("an empty subject_id matches no recording"), help="only the recordings listed with this subject_id (a participant's visits, newest first)")

    quarantine = add("quarantine", cmd_quarantine, "Show files that were quarantined, with the stage and reason.")
    quarantine.add_argument("--stage", type=lambda text: text.strip().lower(), help="only this stage's records (discover, decode, quality, features, timeout, worker, duplicate)")

    for command in (results, quarantine):
        command.add_argument("--run", metavar="RUN_ID", help="only this run: its id, or the start of exactly one run's id (an unknown one is an error)")
        shown = command.add_mutually_exclusive_group()
        shown.add_argument("--json", action="store_true", help="print JSON instead of a table")
        shown.add_argument("-o", "--output", type=_export_path, metavar="FILE",
                           help="write every match to FILE (.csv or .parquet) in the order stored, instead of listing the newest")
        command.add_argument("--limit", type=_positive_int, help=f"at most this many (default: {LISTED} listed; with --output, all)")

    runs = add("runs", cmd_runs, "Show recent runs and their counts.")
    runs.add_argument("--limit", type=_positive_int, default=LISTED, help="at most this many, newest first (default: %(default)s)")
    runs.add_argument("--json", action="store_true", help="print JSON instead of a table")

    train = add("train", cmd_train, "Train a model from a labelled manifest (path, label, subject_id) with subject-grouped CV.")
    train.add_argument("manifest", help="CSV/Parquet manifest with path, label and subject_id columns")
    destination = train.add_mutually_exclusive_group()
    destination.add_argument("--out", help="write the model folder here, unregistered, instead of VOXFLOW_HOME/models/<version>")
    destination.add_argument("--promote", action="store_true", help="make it the champion used by analyze")
    train.add_argument("--positive", help="label value that means screen-positive (default: 0/1 or pathological/healthy, any case)")
    train.add_argument("--dataset", default="", help="training data name and licence for the model card")
    train.add_argument("--voiced", action="store_true", help="record the VOICED database attribution on the card")

    backup = add("backup", cmd_backup, "Back up MongoDB, models and the feature manifest to VOXFLOW_BACKUP_DIR, verify it, apply retention.")
    backup.add_argument("--list", action="store_true", help="show recorded backups instead of taking one")
    backup.add_argument("--limit", type=_positive_int, help=f"with --list, at most this many, newest first (default: {BACKUPS_LISTED})")
    backup.add_argument("--json", action="store_true", help="print JSON on the last line")

    restore = add("restore", cmd_restore, "Restore a backup after checking every file's checksum; into a scratch database unless --into.")
    restore.add_argument("date", help="backup name (2026-11-27T020000Z), a day (2026-11-27: its newest) or 'latest'")
    restore.add_argument("--into", help="target database (default: VOXFLOW_MONGO_DB_restore_<backup without dashes>, e.g. voxflow_restore_20261127T020000Z)")
    restore.add_argument("--drop", action="store_true", help="replace the target's collections; needed to restore into the live database")
    restore.add_argument("--force", action="store_true", help="restore even while runs are recorded 'running' in the target (runs known to have ended, "
                         "e.g. on another host); without it, such runs refuse the restore: what they store meanwhile would be lost")
    restore.add_argument("--json", action="store_true", help="print JSON on the last line")

    voiced = add("voiced-manifest", cmd_voiced_manifest, "Write a labelled manifest for a VOICED (PhysioNet) folder.")
    voiced.add_argument("folder", help="the VOICED folder (its voiceNNN.hea/.dat and -info.txt files)")
    voiced.add_argument("-o", "--output", default="voiced-manifest.csv", metavar="FILE", help="manifest to write (default: %(default)s)")

    demo = add("demo-corpus", cmd_demo_corpus, "Write a small labelled synthetic corpus, plus broken files, to FOLDER.")
    demo.add_argument("folder", help="folder to write to (created if missing)")
    demo.add_argument("-n", type=_positive_int, default=40, help="number of labelled clips (default: %(default)s)")

    svc = add("services", cmd_services, "Show, start or stop the embedded servers (Redis, MongoDB wire server, Prefect).")
    svc.add_argument("action", choices=("status", "start", "stop"), nargs="?", default="status", help="what to do (default: %(default)s)")
    svc.add_argument("--json", action="store_true", help="print JSON instead of a table")

    dash = add("dashboard", cmd_dashboard, "Serve the read-only ops dashboard (Streamlit) on VOXFLOW_DASHBOARD_ADDRESS.")
    dash.add_argument("--port", type=_number_in(0, 65535),
                      help="port to serve on; 0: one the system picks, shown in the URL line (default: VOXFLOW_DASHBOARD_PORT, 8501)")

    enqueue = add("enqueue", cmd_enqueue, "Add audio files (files, folders, globs, manifests) to the voxflow:queue stream.")
    enqueue.add_argument("sources", nargs="+", metavar="PATH", help="a file, folder (recursive), glob in quotes, or CSV/Parquet manifest")
    enqueue.add_argument("--json", action="store_true", help="print the counts as one JSON object")

    queue = add("queue", cmd_queue, "Show the queue: depth, oldest waiting file, consumers and their pending entries.")
    queue.add_argument("action", choices=("status",), nargs="?", default="status", help="what to do (default: %(default)s)")
    queue.add_argument("--json", action="store_true", help="print the status as one JSON object")

    drain = add("drain", cmd_drain, "Analyse queued files in batches until the queue is empty (the drain-queue flow).", resumable=True)
    drain.add_argument("--model", help="model version to use (default: the champion)")
    drain.add_argument("--chunk-size", type=_like_setting("chunk_size"), help="files per Dask task (default: VOXFLOW_CHUNK_SIZE)")
    drain.add_argument("--batch-size", type=_like_setting("queue_batch_size"), help="queue entries per batch (default: VOXFLOW_QUEUE_BATCH_SIZE)")
    drain.add_argument("--linger", type=_number_in(0, convert=float), default=0.0, metavar="SECONDS", help="once empty, wait this long for new files before finishing (default: %(default)s)")
    drain.add_argument("--json", action="store_true", help="print the run summary as one JSON object on the last line")

    deploy = add("deploy", cmd_deploy, "Create the work pool if missing and register the deployments of prefect.yaml.")
    deploy.add_argument("--json", action="store_true", help="print the work pool and deployments as one JSON object")

    worker = add("worker", cmd_worker, "Run a Prefect process worker for the work pool (VOXFLOW_WORK_POOL).")
    worker.add_argument("--pool", help="work pool name (default: VOXFLOW_WORK_POOL)")
    worker.add_argument("--run-once", action="store_true", help="run the flow runs due now, then exit")

    labels = add("labels", cmd_labels, "Import reference labels (path or sha256, label, subject_id) into the labels collection.")
    labels.add_argument("action", choices=("import",), help="what to do: import FILE")
    labels.add_argument("file", help="CSV/Parquet manifest (relative paths resolve against its folder), or a VOICED folder with --voiced")
    labels.add_argument("--positive", help=POSITIVE_HELP)
    labels.add_argument("--voiced", action="store_true", help="FILE is a VOICED (PhysioNet) folder: labels from its -info.txt files")
    labels.add_argument("--source", help="name recorded with each label (default: the file name)")
    labels.add_argument("--json", action="store_true", help="print the counts as one JSON object")

    models = add("models", cmd_models, "List registered models, promote one to champion, or roll back to the previous champion.")
    models.add_argument("action", choices=("list", "promote", "rollback"), help="list the models, promote VERSION, or roll back")
    models.add_argument("version", nargs="?", help="the version to promote")
    models.add_argument("--reason", help="why, recorded with the promotion")
    models.add_argument("--limit", type=_positive_int, default=50, help="with list, at most this many, newest first (default: %(default)s)")
    models.add_argument("--json", action="store_true", help="print JSON instead of a table or a line")

    counts = add("counts", cmd_counts, COUNTS_HELP)
    counts.epilog = COUNTS_EPILOG
    counts.add_argument("action", choices=("rebuild",), help="what to do: rebuild both rollups from the stored results and say what changed")
    counts.add_argument("--force", action="store_true",
                        help="rebuild even while runs are 'running' (for runs known to have ended, e.g. on another host); "
                        "UNSAFE while a run stores results: its counts may be lost or doubled")
    counts.add_argument("--json", action="store_true", help="print the report as one JSON object")

    features = add("features", cmd_features, "Show the Parquet feature store, or merge its chunk files into parts that read many times faster.")
    features.add_argument("action", choices=("status", "compact"),
                          help="status: chunk files, their runs, merged parts and bytes per feature version; "
                          "compact: merge the chunk files into one part per version (safe while runs write)")
    features.add_argument("--feature-version", type=_positive_int, help="only this feature version (default: every version stored)")
    features.add_argument("--json", action="store_true", help="print JSON instead of a table or lines")

    forget = add("forget", cmd_forget, FORGET_HELP)
    forget.epilog = FORGET_EPILOG
    forget.add_argument("--sha256", action="append", metavar="HASH", help="a recording's content hash (audio_sha256); repeatable")
    forget.add_argument("--path", action="append", metavar="SOURCE",
                        help="a file, folder, glob or manifest, as analyze takes them; a path no longer on disk matches what was stored "
                        "under it, as a file or a folder; repeatable")
    forget.add_argument("--subject", action="append", metavar="ID", help="a subject_id: every recording listed with it; repeatable")
    forget.add_argument("--dry-run", action="store_true", help="show what would be removed; remove nothing")
    forget.add_argument("--force", action="store_true", help="forget even while runs are 'running' (for runs known to have ended, e.g. on another host)")
    forget.add_argument("--list", action="store_true", help="show the erasures done (when, where, how many; no path, subject or hash) instead")
    forget.add_argument("--limit", type=_positive_int, help=f"with --list, at most this many, newest first (default: {ERASURES_LISTED})")
    forget.add_argument("--json", action="store_true", help="print the report as one JSON object (with --list, a JSON list)")

    drift = add("drift", cmd_drift, "Compare what a model scored lately, over every run and drain, with its training data (input drift).")
    drift.add_argument("--hours", type=_number_in(0.1, 24 * 366, convert=float), default=24.0,
                       help="the window: predictions stored in the last this many hours (default: %(default)s)")
    drift.add_argument("--model", help="model version (default: the champion)")
    drift.add_argument("--json", action="store_true", help="print the comparison as one JSON object, every shift in it")

    outcomes = add("outcomes", cmd_outcomes, "Measure a model on the recordings it scored that have reference labels since (voxflow labels import): "
                   "AUC, sensitivity, specificity with 95 percent confidence intervals, against its card's cross-validated estimates.")
    outcomes.epilog = ("Recordings the model trained on, and other recordings of their subjects, are left out: they would flatter it. "
                       "The card's estimates get the intervals of a cohort of the card's size (it was measured on one), and a metric is "
                       "'worse' when the interval of the live value less the card's lies wholly on the wrong side of zero; "
                       f"'too few' below {OUTCOMES_MIN_PER_CLASS} labelled recordings of a class.")
    outcomes.add_argument("--model", help="model version (default: the champion)")
    outcomes.add_argument("--days", type=_number_in(0.01, 366 * 100, convert=float),
                          help="only predictions stored in the last this many days (default: all)")
    outcomes.add_argument("--by", metavar="FIELD", type=_stripped("an empty field names no label metadata"),
                          help="also measure each group of this label metadata field (gender, age, site...: a manifest's extra column); "
                          "a numeric field of many values by its quartiles")
    outcomes.add_argument("--calibration", action="store_true",
                          help="also show, per tenth of the score range, how often its recordings were positive (--json always holds it)")
    outcomes.add_argument("--json", action="store_true", help="print the report as one JSON object, groups and calibration included")

    evaluate = add("evaluate", cmd_evaluate, "Subject-grouped repeated CV on a labelled manifest (path, label, optional subject_id); registers nothing.")
    evaluate.add_argument("manifest", help="CSV/Parquet manifest with path (or sha256), label and optional subject_id columns")
    evaluate.add_argument("--positive", help=POSITIVE_HELP)

    retrain = add("retrain", cmd_retrain, "Run the retrain-nightly flow now: labels -> CV -> challenger -> champion if it wins.")
    retrain.add_argument("--json", action="store_true", help="only the JSON result")
    return parser


def _variable(field: str) -> str:
    """The environment variable of a settings field; a field read by its alias (PREFECT_API_URL) is named by that alias."""
    return f"VOXFLOW_{field.upper()}" if field in Settings.model_fields else field


def _bad_setting(exc: ValidationError | SettingsError) -> str:
    """One line on the first bad setting, naming its environment variable."""
    if isinstance(exc, SettingsError):  # a dict setting (VOXFLOW_DASK_CLUSTER_KWARGS) whose value is not JSON
        field = re.search(r'field "(\w+)"', str(exc))  # pydantic-settings names the field only in its message
        if field is None or not isinstance(exc.__cause__, json.JSONDecodeError):
            return f"bad setting: {exc}" + (f": {exc.__cause__}" if exc.__cause__ else "")
        return f"bad setting {_variable(field[1])}: not valid JSON ({exc.__cause__})"
    error = exc.errors()[0]
    reason = str(error["ctx"]["error"]) if error["type"] == "value_error" else error["msg"]
    if not error["loc"]:
        return f"bad settings: {reason}"
    return f"bad setting {_variable(str(error['loc'][0]))}: {reason}"


def _file_error(exc: OSError, settings: Settings) -> str:
    """One line on a file error; one on a path setting (VOXFLOW_HOME, VOXFLOW_NUMBA_CACHE_DIR, a local
    VOXFLOW_BACKUP_DIR) names that setting: an error on its folder or one above it, or below it while it is no folder.

    A path a user gave that happens to lie inside the home (``-o``, ``--out``) is their path's error.
    """
    if exc.filename is None:
        return str(exc)
    failed = Path(os.fsdecode(exc.filename))
    for variable, value in settings.path_variables().items():
        folder = Path(value)
        if folder.is_relative_to(failed) or (failed.is_relative_to(folder) and not folder.is_dir()):
            return f"{variable} {folder} is not usable: {exc.strerror}: {failed}"
    return str(exc)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``voxflow`` command."""
    global _stopped_by
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
    except (ValidationError, SettingsError) as exc:
        print(f"voxflow: error: {_bad_setting(exc)}", file=sys.stderr)
        return 2
    # A warning, not an error: an old variable left in a nightly job's environment must not stop it.
    for variable, closest in unknown_variables(os.environ).items():
        hint = f" (did you mean {closest}?)" if closest else ""
        print(f"voxflow: warning: {variable} is not a setting{hint}; ignored", file=sys.stderr)
    freeze_at_exit()
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(BriefExpectedErrors("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    console.addFilter(CtrlCNotACrash())
    logging.basicConfig(level=logging.WARNING, handlers=[console])
    for package in VOXFLOW_PACKAGES:
        logging.getLogger(package).setLevel(settings.log_level)
    # distributed sets its loggers from Dask's config when a command imports it, and Dask reads DASK_*
    # variables when it is imported: said that way, not by importing distributed first, so that analyze
    # starts its workers' forkserver before that import.
    distributed_level = max(logging.WARNING, logging.getLevelName(settings.log_level))
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", logging.getLevelName(distributed_level).lower())
    completed_before = len(completed_runs())
    try:
        _stopped_by = None
        signal.signal(signal.SIGINT, _raise_at_ctrl_c)
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) is signal.SIG_DFL:  # one ignored (nohup's SIGHUP) stays ignored
                signal.signal(signum, _raise_at_termination)
        with lost_stops_raised_again():
            code = args.handler(args, settings)
        sys.stdout.flush()  # a reader gone away (`voxflow results | head`) shows here, not in the interpreter's last flush
        if _stopped_by is not None:  # its exception swallowed on the way: the command did all it had to, then heard of it
            return _interrupted(_stopped_by, resumable=args.resumable, completed=True)
        return code
    except BaseException as exc:
        # Once a stop signal came, whatever the command ended with is the interruption: native code turns the
        # KeyboardInterrupt raised inside a callback of its into another error (pydantic: a PydanticSerializationError,
        # while Prefect's import dumps its settings), or swallows it and fails later.
        stopped = _stopped_by or stop_signal(exc)  # the signal that came, also when the command turned it into a Ctrl-C
        if stopped is not None:
            return _interrupted(stopped, resumable=args.resumable, completed=len(completed_runs()) > completed_before)
        if isinstance(exc, BrokenPipeError):
            # As any Unix filter whose reader has gone: no message; 141 is the status of a process that SIGPIPE ended.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141
        if isinstance(exc, VoxflowError):
            fresh = "\n" if isinstance(exc, PrefectUnreachable) and _prefect_log_worker_ran() else ""
            print(f"{fresh}voxflow: error: {exc.reason}", file=sys.stderr, flush=True)
            if isinstance(exc, PrefectUnreachable):
                # Prefect's workers still send their logs and events as the interpreter exits, and say that they
                # could not ("--- Error logging to API ---", "EventsWorker failed to process item") after that line.
                _last_line_said()
            return 2
        if isinstance(exc, OSError):  # a file or folder given to a command (demo-corpus /proc/x, -o, --out), or VOXFLOW_HOME itself
            print(f"voxflow: error: {_file_error(exc, settings)}", file=sys.stderr)
            return 2
        raise
    finally:
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                signal.signal(signum, _exit_at_stop)


_stopped_by: signal.Signals | None = None  # the stop signal that came while the command ran


def _raise_at_ctrl_c(signum: int, frame: object) -> None:
    """Python's own SIGINT handler (KeyboardInterrupt), remembering that Ctrl-C was pressed.

    asyncio.run() cancels its task at Ctrl-C only under Python's handler itself (:func:`_stops_cancel_the_task`).
    """
    global _stopped_by
    _stopped_by = signal.SIGINT
    raise_where_it_counts(signal.default_int_handler, signum, frame)


def _raise_at_termination(signum: int, frame: object) -> None:
    """SIGTERM or SIGHUP: raise Terminated, remembering it. Inside a flow run Prefect's own SIGTERM handler raises
    first (marking the run Crashed), then sends SIGTERM again to this one."""
    global _stopped_by
    _stopped_by = signal.Signals(signum)
    raise_where_it_counts(raise_terminated, signum, frame)


@contextmanager
def _stops_cancel_the_task(first: Callable[[], None]) -> Iterator[None]:
    """For a command on asyncio.run(): Ctrl-C, SIGTERM and SIGHUP inside the block cancel its task.

    asyncio.run() cancels its task at Ctrl-C only under Python's own SIGINT handler (otherwise a KeyboardInterrupt
    is raised anywhere in its event loop). SIGTERM and SIGHUP become that Ctrl-C once ``first`` has run, on a
    thread of its own while the event loop goes on: a Prefect worker first ends its flow runs
    (:func:`voxflow.deploy.end_flow_runs`), then stops, instead of dying with a traceback from its event loop
    and leaving them Running. The signal that came is remembered for the command's last line; one ignored
    (nohup's SIGHUP) stays ignored, and a second stop signal acts at once.
    """

    def as_ctrl_c(signum: int, frame: object) -> None:
        global _stopped_by
        if _stopped_by is not None:
            signal.raise_signal(signal.SIGINT)
            return
        _stopped_by = signal.Signals(signum)
        # To the process, not raised in this thread: the kernel then interrupts the main thread's wait in the event loop.
        threading.Thread(target=lambda: (first(), os.kill(os.getpid(), signal.SIGINT)), name="stop", daemon=True).start()

    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if callable(previous[signum]):
            signal.signal(signum, as_ctrl_c)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _interrupted(signum: signal.Signals, *, resumable: bool, completed: bool = False) -> int:
    """Say that the command was stopped, by what, and whether running it again finishes the rest; 128 + the signal's
    number to exit with (130 for Ctrl-C), as a shell reports a process that signal ended, also once the command had
    ``completed`` its work (its run recorded so) when the signal took effect: a caller still learns of the stop."""
    what = "interrupted" if signum == signal.SIGINT else f"terminated ({signum.name})"
    if completed:
        line = f"voxflow: {what} after the command completed" + ("; nothing left to re-run" if resumable else "")
    else:
        line = f"voxflow: {what}" + ("; re-run the same command to finish the rest" if resumable else "")
    print(line, file=sys.stderr, flush=True)
    _last_line_said()  # Prefect's EventsWorker says "Still processing items" as the interpreter exits
    # CPython notes a KeyboardInterrupt that left code it ran from a string (dataclasses and pydantic build
    # classes with exec, as modules import) and, run as `python -m`, then ends the process by SIGINT after it
    # exits, whatever status it exits with (_Py_UnhandledKeyboardInterrupt in Modules/main.c). Running a
    # string clears that note: the command handled the interrupt, and exits with 130.
    exec("")
    return 128 + signum


def _prefect_log_worker_ran() -> bool:
    """Whether Prefect's API log worker ran in this command. Each batch of log lines it could not send is said on stderr
    without ending the line ("--- Error logging to API ---", then "All connection attempts failed"), so the command's
    last line, about the API it lost, starts on a line of its own (the registry is Prefect's: no public way to ask)."""
    handlers = sys.modules.get("prefect.logging.handlers")
    return handlers is not None and any(isinstance(service, handlers.APILogWorker) for service in list(handlers.APILogWorker._instances.values()))


def _last_line_said() -> None:
    """The command's last line is out: what the interpreter's shutdown prints on stderr after it (Prefect's log and
    event workers flushing, or saying they could not) goes nowhere."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stderr.fileno())


def _exit_at_stop(signum: int, frame: object) -> None:
    """The command has ended: a stop signal while the interpreter shuts down (joining threads, atexit handlers)
    exits at once with 128 + its number, instead of a traceback from wherever the shutdown was."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more to say there
            pass
    os._exit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
