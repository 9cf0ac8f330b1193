"""Whether a process that named itself by host and pid (a lock's holder, a queue consumer) has ended."""

from __future__ import annotations

import socket

import psutil


def ended_on_this_host(host: str, pid: str) -> bool:
    """True when ``host`` is this machine and no process ``pid`` runs here any more.

    A process on another host cannot be seen from here, and a pid taken again by another process
    counts as alive: both are False, left to whatever timeout the caller has.

    Examples
    --------
    >>> ended_on_this_host("another-host", "1"), ended_on_this_host(socket.gethostname(), "not-a-pid")
    (False, False)
    """
    return host == socket.gethostname() and pid.isdigit() and not psutil.pid_exists(int(pid))
