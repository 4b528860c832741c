"""Serving the app: the listening socket, who may reach it, and uvicorn with read deadlines.

- A request must arrive whole (head and body) within `read_timeout` seconds of the connection
  opening or of the previous response: uvicorn itself times out only idle keep-alive
  connections, so a client that sends half a request and stalls (or many of them, slowloris)
  would hold a connection for ever.
- A server bound to an address other apps or machines can reach gets a token: without
  DSE_TOKEN one is generated and printed once, loudly, since anyone who can connect could
  otherwise create and cancel studies. Loopback servers answer only to loopback Host names
  (DNS rebinding); the operator lists more names in DSE_ALLOWED_HOSTS and other origins that
  may send mutating requests in DSE_ALLOWED_ORIGINS (comma-separated).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import sys

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from api.http.middleware import LOOPBACK_NAMES

READ_TIMEOUT = 30.0  # seconds for one request to arrive (256 kB at ~10 kB/s)
KEEP_ALIVE = 5.0  # seconds an idle keep-alive connection stays open (uvicorn's default)


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for reading each request, head and body."""

    read_timeout = READ_TIMEOUT

    def connection_made(self, transport) -> None:  # type: ignore[override]
        """Start the first request's deadline."""
        self._read_deadline = None
        super().connection_made(transport)
        self._arm_if_reading()

    def data_received(self, data: bytes) -> None:
        """Feed h11; a request read to its end stops the deadline (the app's time is its own)."""
        super().data_received(data)
        if self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):
            self._disarm()

    def on_response_complete(self) -> None:
        """The next request on this connection gets its own deadline."""
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_if_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        """No deadline outlives its connection."""
        self._disarm()
        super().connection_lost(exc)

    def _arm_if_reading(self) -> None:
        self._disarm()
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY):
            self._read_deadline = self.loop.call_later(self.read_timeout, self._too_slow)

    def _disarm(self) -> None:
        if getattr(self, "_read_deadline", None) is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _too_slow(self) -> None:
        self._read_deadline = None
        if not self.transport.is_closing() and self.conn.their_state in (h11.IDLE, h11.SEND_BODY):
            self.transport.close()


def make_server(app, read_timeout: float = READ_TIMEOUT) -> uvicorn.Server:
    """A uvicorn server of `app` with read deadlines and keep-alive timeouts (serve on a socket)."""
    protocol = type("TimedH11", (TimedH11Protocol,), {"read_timeout": read_timeout})
    config = uvicorn.Config(
        app,
        http=protocol,
        timeout_keep_alive=KEEP_ALIVE,
        log_level="warning",
        access_log=False,
    )
    return uvicorn.Server(config)


def is_loopback(host: str) -> bool:
    """Whether a bind address is reachable from this machine only."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _names(env: dict[str, str], name: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in env.get(name, "").split(",") if n.strip())


def access(host: str, token: str | None, env=None, stream=sys.stderr) -> dict:
    """create_app's token, allowed_hosts and allowed_origins for a server bound to `host`."""
    env = os.environ if env is None else env
    extra_hosts = _names(env, "DSE_ALLOWED_HOSTS")
    if is_loopback(host):
        allowed_hosts = (*LOOPBACK_NAMES, host, *extra_hosts)
    else:  # reached by names it cannot know; a token guards what changes state
        allowed_hosts = extra_hosts or None
        if not token:
            token = secrets.token_urlsafe(24)
            stream.write(
                f"\ndse serve: WARNING: {host} is reachable from other machines and DSE_TOKEN "
                "is not set.\n  Mutating requests (create, cancel) now need this generated "
                f"token, shown once:\n\n    Authorization: Bearer {token}\n\n"
                "  Set DSE_TOKEN to choose your own, or bind 127.0.0.1.\n\n"
            )
            stream.flush()
    return {
        "token": token or None,
        "allowed_hosts": allowed_hosts,
        "allowed_origins": _names(env, "DSE_ALLOWED_ORIGINS"),
    }


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0 = any free port), so the URL is known before serving."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say so; without it
    # every kept-alive response waited ~40 ms for a delayed ACK (Nagle on its body)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ValueError(f"--port: cannot listen on {host}:{port} ({e.strerror})") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(host: str, sock: socket.socket) -> str:
    """The URL a browser on this machine opens for a bound socket."""
    port = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    shown = "::1" if shown == "::" else shown
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"
