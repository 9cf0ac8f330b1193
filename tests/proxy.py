"""A loopback TCP proxy to a real server, to make that server go away (and come back) under a connected client (shared by tests)."""

from __future__ import annotations

import socket
import threading
from typing import Union

import redis

from tests.voxflow_cli import reserve_port

Address = Union[str, tuple[str, int]]  # a unix socket path, or (host, port)


class TcpProxy:
    """Forward every connection to ``127.0.0.1:port`` to ``upstream`` while started; :meth:`close` cuts them all.

    Closed, the port refuses connections and every forwarded one is shut down, as when the server stops;
    :meth:`start` listens on the same port again. The port is held from construction to :meth:`release` by a
    bound socket that never listens, so no other process can take it meanwhile, while closed included.
    """

    def __init__(self, upstream: Address) -> None:
        self.upstream = upstream
        self._held = reserve_port(shared=True)
        self.port: int = self._held.getsockname()[1]
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past the last start's connections in TIME_WAIT
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # beside the socket that holds the port
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def close(self) -> None:
        with self._lock:  # one step with _accept's registration: no connection slips between the two
            listener, self._listener = self._listener, None
            sockets, self._open = self._open, []
        if listener is not None:
            listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
            listener.close()
        for sock in sockets:
            _cut(sock)

    def release(self) -> None:
        """Close, and give the port back."""
        self.close()
        self._held.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.socket(socket.AF_UNIX if isinstance(self.upstream, str) else socket.AF_INET)
            server.connect(self.upstream)
            with self._lock:
                kept = self._listener is listener  # else close() ran since accept() returned: cut this one too
                if kept:
                    self._open += [client, server]
            if not kept:
                for sock in (client, server):
                    _cut(sock)
                return
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def proxied_redis(url: str) -> tuple[TcpProxy, str]:
    """A started proxy to the Redis at ``url`` and the URL of the same database through it."""
    target = redis.connection.parse_url(url)
    upstream = target["path"] if "path" in target else (target.get("host", "127.0.0.1"), int(target.get("port", 6379)))
    proxy = TcpProxy(upstream).start()
    return proxy, f"redis://127.0.0.1:{proxy.port}/{target.get('db', 0)}"


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass  # the proxy was closed under it
    finally:
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _cut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already gone
    sock.close()
