"""`voxflow dashboard` served for real on a free loopback port, and a client speaking Streamlit's websocket protocol."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from tornado.websocket import WebSocketClientConnection, websocket_connect

from tests.voxflow_cli import REPO, free_port


@dataclass
class Served:
    """The dashboard's base URL; ``output`` holds what it printed once it has stopped."""

    url: str
    output: str = ""


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
    """Run ``voxflow dashboard --port N`` with exactly the VOXFLOW_/PREFECT_ variables of ``env`` until the block ends."""
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("VOXFLOW_", "PREFECT_"))} | env
    full_env["PYTHONUNBUFFERED"] = "1"  # the URL line must reach the pipe before SIGTERM
    proc = subprocess.Popen(
        [sys.executable, "-m", "voxflow.cli", "dashboard", "--port", str(port)],
        env=full_env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    served = Served(f"http://127.0.0.1:{port}")
    try:
        _wait_healthy(served.url, proc)
        yield served
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        served.output = proc.communicate(timeout=20)[0].decode(errors="replace")


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
