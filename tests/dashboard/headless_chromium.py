"""Load a page in a real headless Chromium over the DevTools protocol: wait for charts, inspect them, screenshot."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tornado.websocket import websocket_connect

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking")

# Runs in the page: the h1 text and, for each Vega chart, how many marks it drew (SVG elements or painted canvas pixels).
_INSPECT = """
(() => {
  const marks = [...document.querySelectorAll('.vega-embed')].map(chart => {
    const canvas = chart.querySelector('canvas');
    if (!canvas) return chart.querySelectorAll('g.role-mark > path, g.role-mark > rect, g.role-mark > circle').length;
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
    return n;
  });
  return JSON.stringify({title: (document.querySelector('h1') || {}).innerText || '', marks});
})()
"""


@dataclass(frozen=True)
class Rendered:
    title: str
    marks: list[int]  # marks drawn by each chart (SVG elements, or painted pixels of a canvas)
    png: bytes


async def _session(ws_url: str, url: str, *, width: int, height: int, timeout_s: float, min_charts: int) -> Rendered:
    ws = await websocket_connect(ws_url, max_message_size=64 * 1024 * 1024)
    ids = iter(range(1, 10_000))

    async def call(method: str, **params: object) -> dict:
        msg_id = next(ids)
        ws.write_message(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(await ws.read_message())
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    await call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
    await call("Page.navigate", url=url)
    deadline = time.monotonic() + timeout_s
    state: dict = {"title": "", "marks": []}
    while time.monotonic() < deadline:
        result = await call("Runtime.evaluate", expression=_INSPECT, returnByValue=True)
        state = json.loads(result["result"]["value"])
        if state["title"] and len(state["marks"]) >= min_charts and all(state["marks"]):
            await asyncio.sleep(1.0)  # let the remaining elements settle before the picture
            break
        await asyncio.sleep(0.3)
    shot = await call("Page.captureScreenshot", format="png")
    ws.close()
    return Rendered(state["title"], state["marks"], base64.b64decode(shot["data"]))


def _stop(browser: subprocess.Popen[bytes]) -> None:
    """Stop Chromium and every helper it started: they write into the profile folder until they exit,
    so removing it after the main process alone has gone can fail ("Directory not empty")."""
    for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):  # Chromium may already have exited (crashed, say)
            os.killpg(browser.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):  # then SIGKILL
            browser.wait(timeout=wait_s)
        if _group_gone(browser.pid, timeout_s=wait_s):
            return


def _group_gone(pgid: int, *, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            os.killpg(pgid, 0)  # raises once no process of the group is left
        except ProcessLookupError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def _devtools_port(profile: Path) -> int | None:
    """The port Chromium's DevTools server listens on, from the ``DevToolsActivePort`` file it writes in its profile
    once bound (the port, a newline, the browser's target path); None until the port's line is there whole."""
    try:
        text = (profile / "DevToolsActivePort").read_text()
    except FileNotFoundError:
        return None
    line, newline, _ = text.partition("\n")
    return int(line) if newline else None


def _pages(port: int) -> list[dict]:
    """The page targets the DevTools server on ``port`` lists; none while it does not answer yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=1) as reply:
            return [t for t in json.load(reply) if t["type"] == "page"]
    except OSError:
        return []


def render(url: str, *, width: int = 1400, height: int = 900, timeout_s: float = 40.0, min_charts: int = 2) -> Rendered:
    """Open ``url`` in headless Chromium, wait until the h1 and ``min_charts`` charts with marks are there, and screenshot it."""
    with tempfile.TemporaryDirectory() as profile:
        # Port 0: Chromium binds a port the system picks and writes it in the (new, empty) profile folder;
        # none is picked here and released for it to bind later, when another process may have taken it.
        browser = subprocess.Popen(
            ["chromium", *CHROMIUM_FLAGS, "--remote-debugging-port=0", f"--user-data-dir={profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 20
            port = None
            while True:
                port = port or _devtools_port(Path(profile))
                targets = _pages(port) if port is not None else []
                if targets:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("chromium did not open its DevTools port")
                time.sleep(0.2)
            return asyncio.run(_session(targets[0]["webSocketDebuggerUrl"], url, width=width, height=height, timeout_s=timeout_s, min_charts=min_charts))
        finally:
            _stop(browser)
