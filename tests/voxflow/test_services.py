"""Embedded servers: started once, reused, reported, stopped; Redis keeps its data across a kill."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import psutil
import pytest

from store.cache import connect_redis
from voxflow import services
from voxflow.errors import ServiceError
from voxflow.settings import Settings


def embedded_settings(home: Path, **fields: object) -> Settings:
    return Settings(home=home, redis_url=None, mongo_uri=None, PREFECT_API_URL=None, **fields)


@pytest.fixture
def own_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A home of its own, so stopping servers here leaves the session's servers alone."""
    settings = embedded_settings(tmp_path_factory.mktemp("svc"))
    yield settings
    services.stop_services(settings)


def status_of(settings: Settings, name: str) -> services.ServiceStatus:
    return next(status for status in services.services_status(settings) if status.name == name)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mongodb://voxflow:s3cret@db1:27017,db2:27017/?replicaSet=rs0", "mongodb://voxflow:***@db1:27017,db2:27017/?replicaSet=rs0"),
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("rediss://cache:6380/0?password=s3cret&ssl_cert_reqs=none", "rediss://cache:6380/0?password=***&ssl_cert_reqs=none"),
        ("unix:///tmp/voxflow/redis.sock", "unix:///tmp/voxflow/redis.sock"),
        ("http://127.0.0.1:4200/api", "http://127.0.0.1:4200/api"),
        ("redis://:pa/ss@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://:pa#ss@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://:pa?ss@host:6379/0", "redis://:***@host:6379/0"),
        ("mongodb://u:pa@ss@db/", "mongodb://u:***@db/"),
        (
            "mongodb://db/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:tok123",
            "mongodb://db/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:***",
        ),
        ("mongodb://db/?tls=true&tlsCertificateKeyFilePassword=pw", "mongodb://db/?tls=true&tlsCertificateKeyFilePassword=***"),
        ("unix:///tmp/r.sock?password=pw", "unix:///tmp/r.sock?password=***"),
        ("unix:///tmp/r.sock?db=0&password=pw", "unix:///tmp/r.sock?db=0&password=***"),
    ],
)
def test_redact_hides_passwords(url: str, shown: str) -> None:
    assert services.redact(url) == shown


def test_ensure_reuses_running_servers(own_settings: Settings) -> None:
    with ThreadPoolExecutor(max_workers=3) as pool:
        uris = list(pool.map(lambda _: services.mongo_uri(own_settings), range(3)))
    assert len(set(uris)) == 1
    redis_url = services.redis_url(own_settings)
    pids = {name: status_of(own_settings, name).pid for name in ("redis", "mongo")}
    assert services.mongo_uri(own_settings) == uris[0]
    assert services.redis_url(own_settings) == redis_url
    assert {name: status_of(own_settings, name).pid for name in ("redis", "mongo")} == pids
    assert redis_url == f"unix://{own_settings.services_dir / 'redis.sock'}"


def test_status_running_then_stopped(own_settings: Settings) -> None:
    uri = services.mongo_uri(own_settings)
    services.redis_url(own_settings)
    mongo = status_of(own_settings, "mongo")
    assert (mongo.mode, mongo.state, mongo.address) == ("embedded", "running", uri)
    assert status_of(own_settings, "prefect").state == "stopped"

    assert services.stop_services(own_settings) == ["redis", "mongo"]
    assert [status.state for status in services.services_status(own_settings)] == ["stopped"] * 3
    assert services.stop_service(own_settings, "mongo") is False
    assert services.mongo_uri(own_settings) == uri


def test_external_servers_are_checked_and_redacted(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        redis_url="redis://:s3cret@127.0.0.1:9/0",
        mongo_uri="mongodb://voxflow:s3cret@127.0.0.1:9/",
        PREFECT_API_URL="http://127.0.0.1:9/api",
    )
    statuses = services.services_status(settings)
    assert [(s.mode, s.state, s.pid) for s in statuses] == [("external", "unreachable", None)] * 3
    assert statuses[1].address == "mongodb://voxflow:***@127.0.0.1:9/"
    assert all("s3cret" not in s.address for s in statuses)
    assert services.redis_url(settings) == "redis://:s3cret@127.0.0.1:9/0"
    assert services.stop_services(settings) == []


def test_embedded_redis_keeps_stream_entries_after_a_kill(own_settings: Settings) -> None:
    client = connect_redis(services.redis_url(own_settings))
    for i in range(100):
        client.xadd("voxflow:metrics:aof", {"i": i})
    # A write in the AOF file outlives a SIGKILL of the server. Redis writes its AOF buffer there before
    # replying, unless an fsync still running (appendfsync everysec) puts the write off: wait for it.
    deadline = time.monotonic() + 30
    while (aof := client.info("persistence"))["aof_buffer_length"] or aof["aof_rewrite_in_progress"]:
        assert time.monotonic() < deadline, f"the AOF buffer was not written in 30 s: {aof}"
        time.sleep(0.02)
    pid = status_of(own_settings, "redis").pid
    os.kill(pid, signal.SIGKILL)
    client.close()

    client = connect_redis(services.redis_url(own_settings))
    assert status_of(own_settings, "redis").pid != pid
    assert client.xlen("voxflow:metrics:aof") == 100
    client.close()


def test_a_relative_home_is_the_callers_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = embedded_settings(Path("relhome"))
    try:
        assert connect_redis(services.redis_url(settings)).ping()
    finally:
        services.stop_services(settings)
    assert (tmp_path / "relhome" / "services" / "redis").is_dir()


@pytest.fixture
def deep_home(tmp_path: Path) -> Iterator[tuple[Settings, Path]]:
    """Settings whose home is too deep for a socket path, and the /tmp folder its Redis socket went to."""
    settings = embedded_settings(tmp_path / ("deep-" * 20))
    socket_dir = Path(services.redis_url(settings).removeprefix("unix://")).parent
    services.stop_services(settings)
    yield settings, socket_dir
    services.stop_services(settings)
    shutil.rmtree(socket_dir)


def test_deep_home_gets_a_short_redis_socket(deep_home: tuple[Settings, Path]) -> None:
    settings, socket_dir = deep_home
    url = services.redis_url(settings)
    assert url == f"unix://{socket_dir}/redis.sock" and url.startswith("unix:///tmp/voxflow-") and len(url) < 60
    assert connect_redis(url).ping()
    assert socket_dir.stat().st_mode & 0o777 == 0o700


def test_a_socket_folder_others_can_enter_is_refused(deep_home: tuple[Settings, Path]) -> None:
    settings, socket_dir = deep_home
    socket_dir.chmod(0o755)
    with pytest.raises(ServiceError, match=r"is not a private folder of this user .*drwxr-xr-x"):
        services.redis_url(settings)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving the folder to another user needs root")
def test_a_socket_folder_of_another_user_is_refused(deep_home: tuple[Settings, Path]) -> None:
    settings, socket_dir = deep_home
    os.chown(socket_dir, 65534, 65534)
    with pytest.raises(ServiceError, match="owner uid 65534"):
        services.redis_url(settings)


def test_a_server_that_fails_to_start_reports_its_log(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path)
    aof = settings.services_dir / "redis" / "appendonly.aof"
    aof.parent.mkdir(parents=True)
    aof.write_text("not an append-only file\n")
    with pytest.raises(ServiceError, match=r"(?s)embedded redis did not answer .*\(exited with code 1\).*Bad file format"):
        services.redis_url(settings)
    assert status_of(settings, "redis").state == "stopped"


def test_a_server_interrupted_while_it_starts_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = embedded_settings(tmp_path)
    started: list[psutil.Process] = []

    def interrupted(service: object, address: str, pid: int, timeout_s: float, *, port: int | None = None) -> bool:
        started.append(psutil.Process(pid))
        raise KeyboardInterrupt  # a Ctrl-C while the command waits for it to answer

    monkeypatch.setattr(services, "_wait_until_answering", interrupted)
    with pytest.raises(KeyboardInterrupt):
        services.redis_url(settings)
    left = [server for server in started if server.is_running()]
    for server in left:
        server.kill()  # no state file names it: nothing else would
    assert started and left == []


def test_a_port_another_server_took_first_is_not_mistaken_for_ours(own_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The port is picked free, then bound by the server a moment later: another nx-27017 bound it in between.
    # It answered the readiness ping, so this home recorded, and wrote its data to, the other home's server.
    other_uri = services.mongo_uri(own_settings)
    taken = urlsplit(other_uri).port
    real_pick = services._pick_port
    picks = iter([taken])
    monkeypatch.setattr(services, "_pick_port", lambda previous: next(picks, None) or real_pick(previous))
    settings = embedded_settings(tmp_path)
    try:
        uri = services.mongo_uri(settings)
        port, pid = urlsplit(uri).port, status_of(settings, "mongo").pid
        assert port != taken and pid is not None
        assert any(sock.laddr.port == port for sock in psutil.Process(pid).net_connections(kind="tcp"))
        assert status_of(own_settings, "mongo").state == "running"
    finally:
        services.stop_services(settings)


def test_prefect_server_is_started_once_and_reused(test_settings: Settings, prefect_api: str) -> None:
    state_file = test_settings.services_dir / "prefect.json"  # pid, its start time, started_at
    started = (status_of(test_settings, "prefect").pid, state_file.read_text())
    services.ensure_all(test_settings)
    assert services.prefect_api_url(test_settings) == prefect_api
    assert (status_of(test_settings, "prefect").pid, state_file.read_text()) == started
    prefect = status_of(test_settings, "prefect")
    assert (prefect.mode, prefect.state, prefect.address) == ("embedded", "running", prefect_api)


def test_a_recorded_pid_now_used_by_another_process_is_left_alone(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path)
    settings.services_dir.mkdir(parents=True)
    (settings.services_dir / "mongo.json").write_text(
        json.dumps(
            {"pid": os.getpid(), "pid_start_ticks": 1, "address": "mongodb://127.0.0.1:9/", "port": 9, "started_at": "2026-01-01T00:00:00+00:00"}
        )
    )
    assert status_of(settings, "mongo").state == "stopped"
    assert services.stop_service(settings, "mongo") is False
