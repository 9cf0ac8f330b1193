"""`voxflow dashboard` served for real and rendered in headless Chromium: the title and painted charts."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from tests.dashboard.conftest import Seeded
from tests.dashboard.headless_chromium import render
from tests.dashboard.served import serve_dashboard

pytestmark = pytest.mark.slow


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium is not installed (.ci/run installs it)")
def test_dashboard_renders_in_chromium(seeded: Seeded, tmp_path: Path) -> None:
    with serve_dashboard(seeded.env) as served:
        page = render(served.url)
    (tmp_path / "dashboard.png").write_bytes(page.png)
    assert f"URL: {served.url}" in served.output, served.output[-2000:]  # bound to the loopback default, not 0.0.0.0
    assert page.title == "Overview", page.title
    assert len(page.marks) >= 2 and min(page.marks) > 0, page.marks  # clips/min and per-day charts drew their marks
    image = Image.open(io.BytesIO(page.png)).convert("L")
    assert image.size == (1400, 900), image.size
    assert len(image.getcolors(256)) > 20  # text, metrics and charts, not a blank page
    if os.environ.get("VOXFLOW_SAVE_SCREENSHOT"):
        Path(os.environ["VOXFLOW_SAVE_SCREENSHOT"]).write_bytes(page.png)
