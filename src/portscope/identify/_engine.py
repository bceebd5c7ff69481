"""Identification of one port and of many: probe order, budgets, concurrency.

Order (nmap's idea of trying the likely probe first, our own table): the probes whose
protocol is usual on the port (``Probe.ports``) or named by the registry for it
(``Probe.services``) go first, then the ``banner`` wait when not already tried, then the
rest in ``PROBES`` order. A match that points elsewhere (``Match.refine``: nginx's "plain
HTTP request was sent to HTTPS port", a TLS alert, a RESP error; an HTTP answer to another
protocol's probe) moves that probe to the front. The first ``confirmed`` match without a
pending refinement ends the port; otherwise the most certain match wins (at a tie, the
later probe: the one sent on purpose), and with none the registry's name is a ``guess``.

Time: the whole port gets ``timeout_s`` (``--version-timeout``), each answer ``wait_s``,
the greeting ``banner_wait_s`` (longer on ports where a greeting is usual, as SMTP
servers may pause before it). Many ports run at once under a semaphore.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence

from portscope.identify._match import Match
from portscope.identify._probes import PROBES, Probe, ProbeContext
from portscope.identify._types import Confidence, Evidence, Identity

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_TIMEOUT_S",
    "identify_async",
    "identify_many",
    "identify_port",
    "probe_order",
]

DEFAULT_TIMEOUT_S = 8.0
DEFAULT_WAIT_S = 2.0
DEFAULT_BANNER_WAIT_S = 1.0
GREETING_BANNER_WAIT_S = 4.0  # on a port where the server speaks first (SMTP greet pause)
DEFAULT_CONCURRENCY = 32
_BY_NAME = {p.name: p for p in PROBES}


def _registry_name(port: int) -> str | None:
    try:
        from portscope.registry import service_name

        return service_name(port, "tcp")
    except Exception:  # the registry is optional for identification
        return None


def probe_order(port: int, registry_name: str | None = None) -> list[str]:
    """The probe names for ``port``, most likely first (see the module docstring)."""
    likely = [
        p.name
        for p in PROBES
        if port in p.ports or (registry_name is not None and registry_name in p.services)
    ]
    # a greeting costs nothing to wait for when none of the likely protocols is client-first
    head = likely if likely and "banner" not in likely else ["banner", *likely]
    seen = dict.fromkeys(head)
    return list(seen) + [p.name for p in PROBES if p.name not in seen]


def _check(timeout_s: float, wait_s: float, concurrency: int = 1) -> None:
    from portscope.errors import InvalidInput

    if not 0 < timeout_s <= 3600:
        raise InvalidInput(f"version timeout {timeout_s!r}: expected seconds above 0, at most 3600")
    if not 0 < wait_s <= 3600:
        raise InvalidInput(f"probe wait {wait_s!r}: expected seconds above 0")
    if concurrency < 1:
        raise InvalidInput(f"concurrency {concurrency!r}: expected a whole number above 0")


async def identify_async(
    address: str,
    port: int,
    *,
    host: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    wait_s: float = DEFAULT_WAIT_S,
    banner_wait_s: float | None = None,
    registry_name: str | None = None,
    probes: Sequence[str] | None = None,
) -> Identity:
    """What answers on ``address``:``port`` (TCP), by speaking protocols to it.

    Args:
        address: an IPv4 or IPv6 address (no name resolution here).
        port: the TCP port, 1-65535.
        host: the name for HTTP ``Host`` and TLS SNI; default the address.
        timeout_s: the budget for the whole port (``--version-timeout``). Default 8 s.
        wait_s: seconds to wait for each answer. Default 2 s.
        banner_wait_s: seconds to wait for a greeting; default 1 s, 4 s on ports where
            the server speaks first (SSH, SMTP, FTP, POP3, IMAP, MySQL, VNC).
        registry_name: the registry's name for the port (looked up when ``None``).
        probes: probe names to run, in this order (default: ``probe_order``).

    Returns:
        The identity: ``confirmed``/``likely`` with the evidence, or the registry's
        ``guess`` when nothing recognizable answered. Connection errors end the port
        early (the identity says so in ``facts["error"]``).

    Raises:
        InvalidInput: a bad budget or an unknown probe name.
        InvalidTarget: ``address`` is not an IP address (names are not resolved here).

    Needs no privilege. Sends only to ``address``.
    """
    import ipaddress

    from portscope._ports import check_port

    try:
        ipaddress.ip_address(address)
    except ValueError:
        from portscope.errors import InvalidTarget

        raise InvalidTarget(f"{address!r} is not an IP address; resolve names first") from None
    check_port(port)
    _check(timeout_s, wait_s)
    if registry_name is None:
        registry_name = _registry_name(port)
    names = list(probes) if probes is not None else probe_order(port, registry_name)
    unknown = [n for n in names if n not in _BY_NAME]
    if unknown:
        from portscope.errors import InvalidInput

        raise InvalidInput(f"unknown probe(s) {unknown}: use {', '.join(_BY_NAME)}")
    greeting_port = port in _BY_NAME["banner"].ports
    if banner_wait_s is None:
        banner_wait_s = GREETING_BANNER_WAIT_S if greeting_port else DEFAULT_BANNER_WAIT_S
    ctx = ProbeContext(address, port, host or address, wait_s, banner_wait_s)
    started = time.monotonic()
    ran: list[str] = []
    found: list[tuple[str, Match]] = []
    error: str | None = None
    try:
        async with asyncio.timeout(timeout_s):
            error = await _run(ctx, names, ran, found)
    except TimeoutError:
        error = None  # the budget ran out: what was found stands
    elapsed = time.monotonic() - started
    return _decide(ctx, registry_name, ran, found, error, elapsed)


async def _run(
    ctx: ProbeContext, names: list[str], ran: list[str], found: list[tuple[str, Match]]
) -> str | None:
    queue = list(names)
    refused = 0
    while queue:
        name = queue.pop(0)
        if name in ran:
            continue
        ran.append(name)
        probe: Probe = _BY_NAME[name]
        try:
            outcome = await probe.run(ctx)
        except ConnectionRefusedError:
            refused += 1
            if refused >= 2:  # the port closed under us: nothing more to learn
                return "connection refused"
            continue
        except OSError as err:  # reset, TLS failure, unreachable: this probe's answer
            if isinstance(err, ConnectionError | TimeoutError) or _is_ssl_error(err):
                continue
            return err.strerror or type(err).__name__
        match = outcome.match
        if match is None:
            continue
        found.append((name, match))
        refine = match.refine
        if refine is None and match.service == "http" and name not in ("http", "tls"):
            refine = "http"  # HTTP answered another probe: ask it properly (title, /metrics)
        if refine and refine not in ran:
            queue.insert(0, refine)
            continue
        if match.confidence is Confidence.CONFIRMED and match.service is not None:
            return None
        if match.confidence is Confidence.CONFIRMED and match.tls is not None:
            return None  # TLS with nothing known inside: nothing more to ask
    return None


def _is_ssl_error(err: OSError) -> bool:
    import ssl

    return isinstance(err, ssl.SSLError)


def _decide(
    ctx: ProbeContext,
    registry_name: str | None,
    ran: list[str],
    found: list[tuple[str, Match]],
    error: str | None,
    elapsed_s: float,
) -> Identity:
    facts: dict[str, str] = {}
    if error:
        facts["error"] = error
    probes = tuple(ran)
    best: tuple[str, Match] | None = None
    for name, match in found:
        rank = (match.confidence.rank, match.tls is not None, match.service is not None)
        if best is None or rank >= (  # at a tie the later, more specific probe wins
            best[1].confidence.rank,
            best[1].tls is not None,
            best[1].service is not None,
        ):
            best = (name, match)
    if best is None or (best[1].service is None and best[1].tls is None):
        if registry_name:
            facts["registry"] = registry_name
        confidence = Confidence.GUESS if registry_name else Confidence.NONE
        evidence = tuple(Evidence(n, x.matched) for n, x in found)
        return Identity(ctx.address, ctx.port, registry_name, confidence, facts=facts,
                        evidence=evidence, probes=probes, elapsed_s=elapsed_s)  # fmt: skip
    name, match = best
    others = [Evidence(n, x.matched) for n, x in found if x is not match]
    evidence = (Evidence(name, match.matched), *others)
    return Identity(
        ctx.address, ctx.port, match.service, match.confidence, match.product, match.version,
        facts | match.facts, match.tls, evidence, probes, elapsed_s,
    )  # fmt: skip


async def identify_many(
    endpoints: Iterable[tuple[str, int]],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    wait_s: float = DEFAULT_WAIT_S,
    hosts: dict[str, str] | None = None,
) -> list[Identity]:
    """Identify many (address, port) endpoints, at most ``concurrency`` at once.

    Args:
        endpoints: (address, TCP port) pairs.
        concurrency: ports identified at the same time. Default 32.
        timeout_s: budget per port. Default 8 s.
        wait_s: wait per answer. Default 2 s.
        hosts: address -> name given by the user (HTTP Host, TLS SNI).

    Returns:
        One identity per endpoint, in the order given.

    Raises:
        InvalidInput: a bad budget or concurrency.
    """
    items = list(endpoints)
    _check(timeout_s, wait_s, concurrency)
    gate = asyncio.Semaphore(concurrency)
    results: list[Identity | None] = [None] * len(items)

    async def one(i: int, address: str, port: int) -> None:
        async with gate:
            results[i] = await identify_async(
                address,
                port,
                host=(hosts or {}).get(address),
                timeout_s=timeout_s,
                wait_s=wait_s,
            )

    async with asyncio.TaskGroup() as tg:
        for i, (address, port) in enumerate(items):
            tg.create_task(one(i, address, port))
    return [r for r in results if r is not None]


def identify_port(
    address: str,
    port: int,
    *,
    host: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    wait_s: float = DEFAULT_WAIT_S,
) -> Identity:
    """``identify_async`` for callers without an event loop (args and errors as there)."""
    return asyncio.run(identify_async(address, port, host=host, timeout_s=timeout_s, wait_s=wait_s))
