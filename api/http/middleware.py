"""What every request passes before a route: the Host and Origin checks and the body-size guard.

- Host (DNS rebinding, docs/design.md): a server bound to loopback answers only to loopback
  names (and the names the operator lists), so a web page whose name an attacker points at
  127.0.0.1 cannot read or drive it.
- Origin (CSRF): a browser sends `Origin` (or `Sec-Fetch-Site`) with every cross-site POST;
  mutating requests from another origin are refused, so a page elsewhere cannot cancel or
  create studies through a visitor's browser (OWASP: verifying origin with standard headers).
  Clients that are not browsers (the CLI, curl, workers) send neither and pass.
- Body size: bodies over max_body bytes are refused with 413, declared or streamed.
Refusals are JSON bodies that name the header (or the body) and the reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import urlsplit

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def refuse(send, status: int, field_name: str, reason: str) -> None:
    """Send a JSON error response naming the field and the reason (the app's error shape)."""
    body = json.dumps(
        {"detail": f"{field_name}: {reason}", "errors": [{"field": field_name, "reason": reason}]}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def hostname(host: str) -> str:
    """The name part of a Host header or netloc: no port, no IPv6 brackets, lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class HostOriginGuard:
    """ASGI middleware: refuse unknown Host names (400) and cross-site mutating requests (403)."""

    def __init__(
        self, app, allowed_hosts: Iterable[str] | None, allowed_origins: Iterable[str] = ()
    ):
        self.app = app
        # None: any name (a server on a public address, reached by names it cannot know)
        self.allowed_hosts = None if allowed_hosts is None else {hostname(h) for h in allowed_hosts}
        self.allowed_origins = {o.rstrip("/").lower() for o in allowed_origins}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.lower(): v.decode("latin-1") for k, v in scope.get("headers") or ()}
        host = headers.get(b"host", "")
        if self.allowed_hosts is not None and hostname(host) not in self.allowed_hosts:
            return await refuse(
                send, 400, "host", f"{host!r} is not a name this server answers to "
                "(the operator lists more in DSE_ALLOWED_HOSTS)"
            )  # fmt: skip
        if scope["method"] in MUTATING:
            reason = self._cross_site(headers, host)
            if reason:
                return await refuse(send, 403, "origin", reason)
        return await self.app(scope, receive, send)

    def _cross_site(self, headers: dict, host: str) -> str | None:
        """Why a mutating request is cross-site, or None when it is not."""
        origin = headers.get(b"origin")
        if origin is not None:
            origin = origin.strip().rstrip("/").lower()
            if origin in self.allowed_origins:
                return None
            parts = urlsplit(origin)
            if origin != "null" and parts.netloc and parts.netloc == host.strip().lower():
                return None
            return f"a request from {origin!r} to this server is refused (cross-site)"
        if headers.get(b"sec-fetch-site", "").lower() in ("cross-site", "same-site"):
            return "a request from another site to this server is refused (cross-site)"
        return None


class BodyLimit:
    """ASGI middleware: refuse request bodies over max_body bytes with 413 (declared or streamed)."""

    def __init__(self, app, max_body: int):
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_body
            except ValueError:
                too_big = False
            if too_big:
                return await self._refuse(send)
        seen = 0
        started = False

        async def counted_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise _TooLarge()
            return message

        async def tracked_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send):
        await refuse(send, 413, "body", f"request body exceeds {self.max_body} bytes")


class _TooLarge(Exception):
    pass
