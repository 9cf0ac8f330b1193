"""The one settings object: every knob, read from ``VOXFLOW_*`` environment variables."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Mapping
from difflib import get_close_matches
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


# MongoDB's rules for a database name: pymongo checks them only where a command first uses the database.
_DATABASE_NAME_FORBIDDEN = '/\\. "$\x00'
_DATABASE_NAME_MAX_BYTES = 63
# Prefect's rules for a work pool name: WorkPoolCreate's pattern (prefect.types.Name, whose import takes ~1 s)
# and the server's prefix reserved for its own pools.
_WORK_POOL_FORBIDDEN = "/%&><"
_WORK_POOL_RESERVED_PREFIX = "prefect"
# The packages whose loggers ``log_level`` sets: the console's (the CLI) and the Prefect run log's (flows/run_log.py).
VOXFLOW_PACKAGES = ("voxflow", "features", "models", "store", "tasks", "flows")
# VOXFLOW_* variables that name no setting and are still read: by the test suite.
_TEST_VARIABLE_PREFIX = "VOXFLOW_TEST_"
_TEST_VARIABLES = ("VOXFLOW_SAVE_SCREENSHOT",)
_HOUR_S = 3600
_DAY_S = 24 * _HOUR_S


def _is_http_url(url: str) -> bool:
    # urlsplit's own messages may quote part of a password, so they are not passed on.
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _refuse_characters(name: str, forbidden: str, *, what: str) -> None:
    """Raise ValueError when ``name`` holds any of the ``forbidden`` characters of ``what``."""
    found = [character for character in forbidden if character in name]
    if found:
        raise ValueError(f"{name!r} is not {what}: it may not hold {' '.join(map(repr, found))}")


def check_work_pool_name(name: str) -> str:
    """``name``, when Prefect takes it as a work pool's (``VOXFLOW_WORK_POOL``, ``voxflow worker --pool``).

    Raises
    ------
    ValueError
        Saying which of Prefect's rules it breaks.
    """
    _refuse_characters(name, _WORK_POOL_FORBIDDEN, what="a Prefect work pool name")
    if not name.strip("' \""):
        raise ValueError(f"{name!r} is not a Prefect work pool name: it needs more than quotes and spaces")
    if name.lower().startswith(_WORK_POOL_RESERVED_PREFIX):
        raise ValueError(f"{name!r} is not a Prefect work pool name: Prefect keeps names that start with 'prefect' for itself")
    return name


def _check_scheduler_address(address: str) -> None:
    """Raise ValueError unless distributed reads ``address`` (``tcp://host:8786``, ``host:8786``) as a host and port."""
    from distributed.comm.addressing import parse_address  # imports distributed (~0.4 s): only for a configured address
    from distributed.comm.registry import get_backend

    try:
        scheme, location = parse_address(address)
        host, port = get_backend(scheme).get_address_host_port(location)
    except NotImplementedError:  # ucx://, inproc://: their connectors read the location their own way
        return
    except ValueError as exc:
        raise ValueError(f"not a Dask scheduler address such as tcp://host:8786: {exc}") from None
    if not host or not 0 < port < 65536:
        raise ValueError("not a Dask scheduler address such as tcp://host:8786: it needs a host and a port from 1 to 65535")


def _check_fsspec_url(url: str) -> None:
    """Raise ValueError unless fsspec knows each protocol of ``url`` (``s3://...``, ``simplecache::s3://...``) and imports its package."""
    import fsspec  # only for a backup URL
    from fsspec.core import split_protocol

    for link in url.split("::"):
        protocol = split_protocol(link)[0] or link  # a link without :// names a protocol only, as fsspec reads a chain
        try:
            fsspec.get_filesystem_class(protocol)
        except ImportError as exc:  # "Install s3fs to access S3"
            raise ValueError(f"{protocol}:// needs a package this environment lacks: {exc}") from None
        except ValueError:
            raise ValueError(f"fsspec knows no protocol {protocol!r} (a local folder needs none)") from None


class Settings(BaseSettings):
    """voxflow configuration.

    Every field can be set as ``VOXFLOW_<FIELD>`` (for example ``VOXFLOW_CHUNK_SIZE=128``).
    Server addresses left unset mean "start and reuse the embedded server under ``home``".
    Connection strings are secrets: they are never logged or printed in full.
    """

    # allow_inf_nan: no setting means "forever"; an infinite wait or limit failed deep in a run instead. So did
    # a huge one (an OverflowError on every clip, Redis refusing an expiry part-way through a run, a date out of
    # range on the dashboard): the upper bounds lie beyond any real setting.
    model_config = SettingsConfigDict(env_prefix="VOXFLOW_", extra="ignore", populate_by_name=True, allow_inf_nan=False)

    home: Path = Field(default=Path.home() / ".voxflow", description="State folder for embedded servers, models, features.")

    # Servers: unset means embedded.
    redis_url: SecretStr | None = Field(default=None, description="redis://... of a production Redis.")
    mongo_uri: SecretStr | None = Field(default=None, description="mongodb://... of a production MongoDB.")
    mongo_db: str = "voxflow"
    prefect_api_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("PREFECT_API_URL", "VOXFLOW_PREFECT_API_URL"),
        description="Prefect API of a running server; unset starts the embedded one.",
    )
    dask_address: str | None = Field(default=None, description="tcp://host:8786 of an existing Dask scheduler.")
    dask_cluster_class: str | None = Field(
        default=None,
        description="Import path of a Dask cluster class to start instead of a LocalCluster, "
        "e.g. dask_kubernetes.operator.KubeCluster (see deployments/kubernetes).",
    )
    dask_cluster_kwargs: dict[str, Any] = Field(default_factory=dict, description="JSON keyword arguments for dask_cluster_class.")

    # Dask fan-out.
    dask_min_workers: int = Field(default=1, ge=1)
    # Default: the CPU count, raised to the minimum when that is set higher.
    dask_max_workers: int = Field(default_factory=lambda data: max(os.cpu_count() or 1, data.get("dask_min_workers", 1)), ge=1)
    numba_cache_dir: Path | None = Field(default=None, description="Where workers keep numba's JIT cache (default: numba's own).")
    dask_start_method: Literal["forkserver", "spawn"] = Field(
        default_factory=lambda: "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn",
        description="How local workers start: forked from one process that has loaded the feature stack, or each a fresh interpreter.",
    )
    chunk_size: int = Field(default=48, ge=1, le=4096, description="Files per Dask task (~50 ms each).")
    dask_scheduler_timeout_s: float = Field(
        default=120.0, ge=1, le=_DAY_S, description="How long a run waits for a Dask scheduler that stopped answering mid-run before it fails."
    )
    dask_worker_start_timeout_s: float = Field(
        default=300.0, ge=1, le=_DAY_S,
        description="How long a run waits for the Dask cluster's first worker before it fails (a first run after an install or an update compiles numba's kernels as its workers start, ~30 s).",
    )

    # Audio and quality gate.
    sample_rate: int = Field(default=16_000, ge=4_000, le=192_000)
    min_duration_s: float = Field(default=0.5, gt=0)
    max_duration_s: float = Field(default=120.0, gt=0, le=4 * _HOUR_S)
    max_file_mb: float = Field(default=200.0, gt=0, le=100_000)
    # RMS of full-scale audio is at most 0 dBFS.
    silence_dbfs: float = Field(default=-60.0, ge=-200, le=0, description="Clips quieter than this RMS (dBFS) are silence.")
    clipping_fraction: float = Field(default=0.01, gt=0, lt=1, description="Share of samples at full scale that counts as clipped.")
    file_timeout_s: float = Field(default=60.0, gt=0, le=_DAY_S, description="Per-file processing limit on a worker.")

    # Stores.
    cache_ttl_s: int = Field(default=300, ge=1, le=365 * _DAY_S, description="TTL of the Redis prediction cache.")
    metrics_maxlen: int = Field(default=10_000, ge=100, le=10_000_000)
    mongo_retry_s: float = Field(default=30.0, ge=0, le=_DAY_S, description="How long MongoDB writes retry while the server is unreachable.")
    service_start_timeout_s: float = Field(default=60.0, gt=0, le=_HOUR_S, description="How long to wait for an embedded server to answer.")

    # Models.
    model_version: str | None = Field(default=None, description="Pin a registered model; unset uses the champion.")
    promotion_margin: float = Field(default=0.01, ge=0, le=1, description="AUC gain a challenger needs over the champion, compared on the same recordings, to be promoted.")
    target_sensitivity: float | None = Field(default=None, gt=0, le=1, description="Choose the threshold on training folds for this sensitivity; unset maximises balanced accuracy.")
    cv_splits: int = Field(default=5, ge=2, description="Folds of the subject-grouped cross-validation.")
    cv_repeats: int = Field(default=5, ge=1, description="Repeats of the subject-grouped cross-validation.")
    retrain_min_labels: int = Field(default=20, ge=4, description="Fewest labelled recordings with features a retrain accepts.")
    distributed_training_rows: int = Field(default=100_000, ge=1, description="From this many rows the final model trains on the Dask cluster (xgboost.dask).")
    drift_psi: float = Field(default=0.25, gt=0, le=100, description="A run's feature has shifted from the model's training data at this population stability index, when the shift is significant too.")
    drift_alpha: float = Field(default=0.01, gt=0, lt=1, description="Significance of a feature's shift (chi-square test, divided among the features compared).")

    # Scaling triggers (the platform's scaling guide); evaluated by voxflow.scaling.recommend.
    trigger_cpu_pct: float = Field(default=70.0, gt=0, le=100, description="Scale out above this sustained CPU %.")
    trigger_p95_latency_s: float = Field(default=2.0, gt=0, description="Scale out above this p95 per-file latency.")
    trigger_error_rate: float = Field(default=0.01, ge=0, le=1, description="Scale out (and alert) above this error rate.")
    trigger_backlog: int = Field(default=100, ge=0, description="Scale out above this many files waiting.")
    trigger_memory_pct: float = Field(default=85.0, gt=0, le=100, description="Scale up memory above this %.")

    # Ops dashboard (``voxflow dashboard``): reads MongoDB and Redis only.
    dashboard_address: str = Field(default="127.0.0.1", description="Address the dashboard binds to.")
    dashboard_port: int = Field(default=8501, ge=1, le=65535)
    dashboard_refresh_s: float = Field(default=15.0, ge=1, le=_DAY_S, description="Auto-refresh interval of every page.")
    dashboard_timezone: str = Field(default="UTC", description="IANA time zone the dashboard shows times in.")
    dashboard_window_h: float = Field(default=1.0, gt=0, le=30 * 24, description="Window of the live rates and latency percentiles (hours).")
    dashboard_mongo_uri: SecretStr | None = Field(default=None, description="Read-only MongoDB user for the dashboard; unset uses mongo_uri.")
    dashboard_redis_url: SecretStr | None = Field(default=None, description="Read-only Redis user for the dashboard; unset uses redis_url.")
    prefect_ui_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("PREFECT_UI_URL", "VOXFLOW_PREFECT_UI_URL"),
        description="Prefect UI base URL; the dashboard links runs to it when set.",
    )

    # Backups (``voxflow backup`` / ``restore``, the nightly flow).
    backup_dir: str | None = Field(default=None, description="Folder or fsspec URL of the dated backups; unset means home/backups.")
    backup_keep_daily: int = Field(default=7, ge=1, description="Keep the newest backup of this many most recent days.")
    backup_keep_weekly: int = Field(default=4, ge=0, description="Keep the newest backup of this many most recent ISO weeks.")
    backup_use_mongodump: bool = Field(default=False, description="Dump with the mongodump tool when it is on PATH.")
    lock_ttl_s: float = Field(default=60.0, gt=0, le=_DAY_S, description="How long a flow lock outlives a crashed holder; renewed every third of it.")
    # Forgetting recordings through the forget-recordings deployment: an erasure request waits out what holds its locks.
    forget_retries: int = Field(default=12, ge=0, le=10_000, description="Tries again of a forget-recordings run refused while runs run or a lock is held.")
    forget_retry_delay_s: float = Field(default=300.0, ge=0, le=_DAY_S, description="Seconds between those tries.")
    forget_drain_wait_s: float = Field(
        default=300.0, ge=0, le=_DAY_S, description="How long a forget waits for a running drain to finish its batch and pause before refusing."
    )

    # Continuous intake (``voxflow enqueue`` / ``drain``) and deployments (``voxflow deploy`` / ``worker``).
    queue_batch_size: int = Field(default=256, ge=1, le=10_000, description="Queue entries a drain reads per batch.")
    queue_claim_idle_s: float = Field(default=300.0, ge=0, le=30 * _DAY_S, description="Entries a consumer left unacknowledged this long are claimed again (XAUTOCLAIM).")
    work_pool: str = Field(default="voxflow", description="Prefect process work pool of the deployments.")
    schedule_timezone: str = Field(default="UTC", description="IANA time zone of the deployment schedules (cron 02:00/03:00).")

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(default="INFO", description="Level of voxflow's own loggers, in any case.")

    def path_variables(self) -> dict[str, str]:
        """The path settings, resolved, as the ``VOXFLOW_*`` variables a child process reads.

        A flow run a worker starts runs in the project's folder: a relative path it inherited as written
        would name another place there (other servers, an empty queue, backups elsewhere).
        """
        paths = {"VOXFLOW_HOME": str(self.home), "VOXFLOW_NUMBA_CACHE_DIR": self.numba_cache_dir, "VOXFLOW_BACKUP_DIR": self.backup_dir}
        return {name: str(value) for name, value in paths.items() if value is not None}

    @field_validator("*", mode="before")
    @classmethod
    def _not_blank(cls, value: object) -> object:
        # A variable left empty (an expansion of nothing) must not mean the current folder (Path("") is ".")
        # or, as an address to bind, every interface.
        if isinstance(value, str) and not value.strip():
            raise ValueError(f"is empty ({value!r}): unset it for the default, or give a value")
        return value

    @field_validator("home", "numba_cache_dir")
    @classmethod
    def _absolute_path(cls, path: Path | None) -> Path | None:
        # Servers run in folders of their own and workers elsewhere: a relative or ~ path must mean one place.
        return path.expanduser().resolve() if path is not None else None

    @field_validator("backup_dir")
    @classmethod
    def _check_backup_dir(cls, location: str | None) -> str | None:
        if location is None:
            return None
        if "://" in location:
            _check_fsspec_url(location)
            return location
        return str(Path(location).expanduser().resolve())

    @field_validator("mongo_db")
    @classmethod
    def _check_database_name(cls, name: str) -> str:
        _refuse_characters(name, _DATABASE_NAME_FORBIDDEN, what="a MongoDB database name")
        if len(name.encode()) > _DATABASE_NAME_MAX_BYTES:
            raise ValueError(f"a MongoDB database name has at most {_DATABASE_NAME_MAX_BYTES} bytes, not {len(name.encode())}")
        return name

    @field_validator("work_pool")
    @classmethod
    def _check_work_pool(cls, name: str) -> str:
        return check_work_pool_name(name)

    @field_validator("dask_address")
    @classmethod
    def _check_dask_address(cls, address: str | None) -> str | None:
        if address is not None:
            _check_scheduler_address(address)
        return address

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, level: object) -> object:
        return level.upper() if isinstance(level, str) else level

    @field_validator("redis_url", "dashboard_redis_url")
    @classmethod
    def _check_redis_url(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None:
            from voxflow.services import check_redis_url  # imports redis: only for a configured URL

            check_redis_url(url.get_secret_value())
        return url

    @field_validator("mongo_uri", "dashboard_mongo_uri")
    @classmethod
    def _check_mongo_uri(cls, uri: SecretStr | None) -> SecretStr | None:
        if uri is not None:
            from voxflow.services import check_mongo_uri  # imports pymongo: only for a configured URI

            check_mongo_uri(uri.get_secret_value())
        return uri

    @field_validator("prefect_api_url", "prefect_ui_url")
    @classmethod
    def _check_http_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        if not _is_http_url(url):
            raise ValueError("must be an http:// or https:// URL with a host and, if any, a numeric port")
        if "@" in urlsplit(url).netloc:
            # Prefect prints its URLs in its logs ("View at ..."), in flow runs too, where no filter of ours runs.
            raise ValueError(
                "must not carry a user name or password (Prefect prints this URL in its logs): give a self-hosted "
                "server's basic auth as PREFECT_API_AUTH_STRING, a Prefect Cloud key as PREFECT_API_KEY"
            )
        return url

    @field_validator("dashboard_timezone", "schedule_timezone")
    @classmethod
    def _check_timezone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Europe/Paris)") from exc
        return name

    @model_validator(mode="after")
    def _check_workers(self) -> "Settings":
        if self.dask_max_workers < self.dask_min_workers:
            raise ValueError(
                f"VOXFLOW_DASK_MAX_WORKERS ({self.dask_max_workers}) is below VOXFLOW_DASK_MIN_WORKERS ({self.dask_min_workers})"
            )
        if self.max_duration_s <= self.min_duration_s:
            raise ValueError(
                f"VOXFLOW_MAX_DURATION_S ({self.max_duration_s}) must be greater than VOXFLOW_MIN_DURATION_S ({self.min_duration_s})"
            )
        return self

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def feature_store_dir(self) -> Path:
        return self.home / "features"

    @property
    def services_dir(self) -> Path:
        return self.home / "services"

    @property
    def backup_location(self) -> str:
        """Where backups go: ``backup_dir``, else ``home/backups``."""
        return self.backup_dir or str(self.home / "backups")


def unknown_variables(environ: Mapping[str, str]) -> dict[str, str | None]:
    """The ``VOXFLOW_*`` variables of ``environ`` that name no setting, each with the closest setting's variable, if any.

    Settings ignore them: a misspelt ``VOXFLOW_MONGO_URL`` left voxflow on its embedded MongoDB, unsaid.

    Examples
    --------
    >>> unknown_variables({"VOXFLOW_MONGO_URL": "mongodb://db/", "VOXFLOW_HOME": "/srv/voxflow", "PATH": "/bin"})
    {'VOXFLOW_MONGO_URL': 'VOXFLOW_MONGO_URI'}
    """
    fields = [field.upper() for field in Settings.model_fields]
    unknown: dict[str, str | None] = {}
    for variable in environ:
        name = variable.upper()  # settings are read in any case
        if not name.startswith("VOXFLOW_") or name.startswith(_TEST_VARIABLE_PREFIX) or name in _TEST_VARIABLES:
            continue
        field = name.removeprefix("VOXFLOW_")
        if field not in fields:
            closest = get_close_matches(field, fields, n=1)
            unknown[variable] = f"VOXFLOW_{closest[0]}" if closest else None
    return unknown


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read once from the environment."""
    return Settings()
