"""`voxflow dashboard` served for real on a loopback port of its choosing, and a client speaking Streamlit's websocket protocol."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import IO, Iterator

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from tornado.websocket import WebSocketClientConnection, websocket_connect

from tests.voxflow_cli import REPO


@dataclass
class Served:
    """The dashboard's base URL; ``output`` holds what it printed once it has stopped."""

    url: str
    output: str = ""


# Streamlit's line for the address it serves on, printed once it listens ("Local URL: ..." when bound to all addresses).
_URL_LINE = re.compile(r"URL: http://\S+:(\d+)")


def _collect(stream: IO[str], lines: list[str]) -> None:
    for line in stream:
        lines.append(line)


def _wait_for_port(proc: subprocess.Popen, lines: list[str], timeout_s: float = 30) -> int:
    """The port in the dashboard's URL line, once it has printed it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = next((m for line in list(lines) if (m := _URL_LINE.search(line))), None)
        if found:
            return int(found.group(1))
        assert proc.poll() is None, f"voxflow dashboard exited with {proc.returncode}:\n{''.join(lines)[-3000:]}"
        time.sleep(0.1)
    raise AssertionError(f"the dashboard printed no URL line:\n{''.join(lines)[-3000:]}")


def _wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"voxflow dashboard exited with {proc.returncode}"
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the dashboard did not answer /_stcore/health")


@contextmanager
def serve_dashboard(env: dict[str, str]) -> Iterator[Served]:
    """Run ``voxflow dashboard --port 0`` with exactly the VOXFLOW_/PREFECT_ variables of ``env`` until the block ends.

    Streamlit binds a port the system picks and prints it in its URL line, read from there: no port is picked
    here and released for the dashboard to bind later, when another process may have taken it.
    """
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("VOXFLOW_", "PREFECT_"))} | env
    full_env["PYTHONUNBUFFERED"] = "1"  # the URL line must reach the pipe as soon as it is printed
    proc = subprocess.Popen(
        [sys.executable, "-m", "voxflow.cli", "dashboard", "--port", "0"],
        env=full_env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=_collect, args=(proc.stdout, lines), daemon=True)  # read all along: the pipe never fills
    reader.start()
    served = Served("")
    try:
        served.url = f"http://127.0.0.1:{_wait_for_port(proc, lines)}"
        _wait_healthy(served.url, proc)
        yield served
    finally:
        with suppress(ProcessLookupError):  # it may have exited already (failed to start, say): keep that error
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        reader.join(timeout=20)
        proc.stdout.close()
        served.output = "".join(lines)


@dataclass
class ScriptRun:
    """What the server sent for one script (or fragment) run: headings, metrics by label, auto-rerun requests, pages, exceptions."""

    headings: list[str] = field(default_factory=list)
    metrics: dict[str, str] = field(default_factory=dict)
    auto_reruns: list[tuple[float, str]] = field(default_factory=list)  # (interval s, fragment id)
    pages: dict[str, str] = field(default_factory=dict)  # page name -> page_script_hash
    exceptions: list[str] = field(default_factory=list)


class BrowserSession:
    """One websocket session, sending what Streamlit's frontend sends: a rerun for a page, or for one fragment on its timer."""

    def __init__(self, ws: WebSocketClientConnection) -> None:
        self._ws = ws

    @classmethod
    async def open(cls, url: str) -> BrowserSession:
        ws = await websocket_connect(url.replace("http", "ws", 1) + "/_stcore/stream", subprotocols=["streamlit"])
        return cls(ws)

    async def rerun(self, state: ClientState, *, timeout_s: float = 30) -> ScriptRun:
        """Request a run with ``state`` and collect its messages until the script finishes."""
        request = BackMsg()
        request.rerun_script.CopyFrom(state)
        await self._ws.write_message(request.SerializeToString(), binary=True)
        run = ScriptRun()
        while True:
            message = ForwardMsg()
            message.ParseFromString(await asyncio.wait_for(self._ws.read_message(), timeout_s))
            kind = message.WhichOneof("type")
            if kind == "script_finished":
                return run
            if kind == "auto_rerun":
                run.auto_reruns.append((message.auto_rerun.interval, message.auto_rerun.fragment_id))
            elif kind == "navigation":
                run.pages.update({page.page_name: page.page_script_hash for page in message.navigation.app_pages})
            elif kind == "delta" and message.delta.WhichOneof("type") == "new_element":
                element = message.delta.new_element
                if element.WhichOneof("type") == "heading":
                    run.headings.append(element.heading.body)
                elif element.WhichOneof("type") == "metric":
                    run.metrics[element.metric.label] = element.metric.body
                elif element.WhichOneof("type") == "exception":
                    run.exceptions.append(element.exception.message)

    def close(self) -> None:
        self._ws.close()
