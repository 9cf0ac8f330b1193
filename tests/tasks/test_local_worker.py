"""The local workers' preload: a Ctrl-C is noted, not acted on, and quiets only the warnings of the close it brings."""

import subprocess
import sys

from tests.voxflow_cli import REPO

# A worker process in miniature: the preload set up, then distributed's warnings as a worker closing with a
# chunk still running logs them (BaseWorker.close cancels its asyncio task), before and after a Ctrl-C.
_WORKER = """
import logging, signal, sys
from tasks import local_worker

logging.basicConfig(stream=sys.stderr, format="%(levelname)s %(message)s")
local_worker.dask_setup(object())
log = logging.getLogger("distributed.worker.state_machine")  # distributed.worker_state_machine's
cancelled = "Async instruction for <Task cancelled name=\\"execute('score-chunk-r1-4')\\" coro=<Worker.execute() done>> ended with CancelledError"
log.warning(cancelled)
signal.raise_signal(signal.SIGINT)  # a terminal's Ctrl-C reaches the workers too
print("still running", file=sys.stderr)
log.warning(cancelled)
log.warning("another warning")
"""


def test_a_ctrl_c_leaves_out_only_the_closing_workers_cancelled_instruction_warnings() -> None:
    proc = subprocess.run([sys.executable, "-c", _WORKER], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("WARNING Async instruction for <Task cancelled") and lines[0].endswith("ended with CancelledError")  # no Ctrl-C yet: shown
    assert lines[1:] == ["still running", "WARNING another warning"]
