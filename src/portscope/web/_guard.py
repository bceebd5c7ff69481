"""The guard in front of every request of ``portscope serve`` (an ASGI middleware).

A local dashboard is reachable by every web page the user's browser opens: a hostile
page can send requests to ``127.0.0.1:PORT`` (CSRF) or, through a name that resolves to
127.0.0.1, read the answers (DNS rebinding). So, on every request, in order:

1. the ``Host`` header must be a loopback literal (``127.0.0.1``, ``[::1]``, any of
   127.0.0.0/8) or ``localhost``, with any port: a rebinding page's requests carry its
   own name (``127.0.0.1.evil.example``) and are refused with 421 Misdirected Request;
2. the query must carry ``token=`` equal to the random token printed at start
   (compared in constant time): 403 without it; a page elsewhere cannot know it;
3. a request with an ``Origin`` header must come from a loopback origin (403).

Every answer carries a strict Content-Security-Policy (our own script and style only),
``Referrer-Policy: no-referrer`` (the token is in the URL), ``X-Frame-Options: DENY``
and ``X-Content-Type-Options: nosniff``. Killing needs more (``--allow-kill``, POST, a
CSRF token): ``web.app``.
"""

from __future__ import annotations

import ipaddress
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

Scope = dict[str, Any]

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
)


def host_name(host: str) -> str:
    """The name or address of a ``Host`` header value, without its port and brackets."""
    host = host.strip()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        return host.partition(":")[0]
    return host


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback address literals (``127.0.0.0/8``, ``::1``),
    with or without a port; False for every other name (DNS rebinding)."""
    name = host_name(host).lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class Guard:
    """ASGI middleware: Host check, token check, security headers (module docstring)."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        host = headers.get(b"host", b"").decode("latin-1")
        if not is_loopback_host(host):
            await _refuse(
                send, 421, "Host refused: portscope serve answers only to 127.0.0.1, [::1] "
                "or localhost (DNS rebinding guard)",
            )  # fmt: skip
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given = (query.get("token") or [""])[0]
        if not given or not secrets.compare_digest(given.encode(), self.token.encode()):
            await _refuse(send, 403, "token missing or wrong: use the URL portscope serve printed")
            return
        origin = headers.get(b"origin")
        if origin is not None and origin != b"null":
            netloc = urlsplit(origin.decode("latin-1")).netloc
            if not is_loopback_host(netloc):
                await _refuse(send, 403, "cross-origin request refused")
                return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _refuse(send: Any, status: int, text: str) -> None:
    body = (text + "\n").encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
