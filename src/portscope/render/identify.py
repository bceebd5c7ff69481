"""Output of service identification (``scan -sV``, ``probe --identify``, ``who --identify``).

JSON (``identity_dict``; stable, keys may be added): ``{"address", "port", "proto", "service",
"label", "confidence", "identified", "product", "version", "facts": {name: text},
"tls": null | {"version", "cipher", "alpn", "subject", "issuer", "sans", "not_before",
"not_after", "self_signed"}, "evidence": [{"probe", "data", "data_base64"}], "probes",
"elapsed_s"}``. ``data`` is the evidence as UTF-8 with undecodable bytes escaped
(``\\xNN``); ``data_base64`` is the exact bytes. Dates are ISO 8601 UTC.

Terminals get every remote string through ``render.safe`` (tables) or ``printable``
(evidence lines): a banner cannot move the cursor or change colours.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from portscope.identify._types import Confidence, Identity, TlsInfo
from portscope.render import safe
from portscope.render._table import Column, Table

if TYPE_CHECKING:
    from rich.console import RenderableType

__all__ = [
    "CONFIDENCE_STYLE",
    "identify_summary",
    "identity_details",
    "identity_dict",
    "nmap_conf",
    "render_identities",
]

CONFIDENCE_STYLE = {
    Confidence.CONFIRMED.value: "green",
    Confidence.LIKELY.value: "yellow",
    Confidence.GUESS.value: "dim",
    Confidence.NONE.value: "dim",
}


def nmap_conf(identity: Identity) -> int:
    """nmap's ``conf`` (0-10) for the XML ``service`` element: 10 confirmed, 8 likely,
    3 a registry guess (nmap's own value for ``method="table"``)."""
    return {Confidence.CONFIRMED: 10, Confidence.LIKELY: 8}.get(identity.confidence, 3)


def _tls_dict(tls: TlsInfo) -> dict[str, Any]:
    return {
        "version": tls.version,
        "cipher": tls.cipher,
        "alpn": tls.alpn,
        "subject": tls.subject,
        "issuer": tls.issuer,
        "sans": list(tls.sans),
        "not_before": tls.not_before.isoformat() if tls.not_before else None,
        "not_after": tls.not_after.isoformat() if tls.not_after else None,
        "self_signed": tls.self_signed,
    }


def identity_dict(identity: Identity) -> dict[str, Any]:
    """An identity as the documented JSON object (module docstring)."""
    return {
        "address": identity.address,
        "port": identity.port,
        "proto": identity.proto,
        "service": identity.service,
        "label": identity.label,
        "confidence": identity.confidence.value,
        "identified": identity.identified,
        "product": identity.product,
        "version": identity.version,
        "facts": dict(identity.facts),
        "tls": _tls_dict(identity.tls) if identity.tls else None,
        "evidence": [
            {
                "probe": e.probe,
                "data": e.data.decode("utf-8", "backslashreplace"),
                "data_base64": base64.b64encode(e.data).decode("ascii"),
            }
            for e in identity.evidence
        ],
        "probes": list(identity.probes),
        "elapsed_s": round(identity.elapsed_s, 6),
    }


def _evidence_text(data: bytes, limit: int = 120) -> str:
    from portscope.render.scan import printable

    return printable(data, limit)


def identity_details(identity: Identity) -> list[str]:
    """Plain lines under a port: TLS, facts, the deciding evidence (escaped)."""
    lines = []
    tls = identity.tls
    if tls is not None:
        alpn = f", ALPN {tls.alpn}" if tls.alpn else ""
        lines.append(f"tls: {tls.version}{alpn}, {tls.cipher or '-'}")
        if tls.subject or tls.issuer:
            signed = " (self-signed)" if tls.self_signed else f", issuer {tls.issuer}"
            lines.append(f"certificate: {tls.subject}{signed}")
        if tls.sans:
            lines.append("names: " + ", ".join(tls.sans))
        if tls.not_after:
            start = tls.not_before.date().isoformat() if tls.not_before else "?"
            lines.append(f"valid: {start} to {tls.not_after.date().isoformat()}")
    for name, value in identity.facts.items():
        lines.append(f"{name}: {value}")
    if identity.evidence and identity.identified:
        first = identity.evidence[0]
        lines.append(f"evidence ({first.probe}): {_evidence_text(first.data)}")
    elif not identity.identified:
        tried = ", ".join(identity.probes) or "none"
        lines.append(f"not identified: no probe answered recognizably (probes: {tried})")
    return [safe(line) for line in lines]


_COLUMNS = (
    Column("PORT"),
    Column("SERVICE", min_width=8, overflow="ellipsis"),
    Column("CONFIDENCE", drop=2, styles=CONFIDENCE_STYLE),
    Column("VERSION", drop=1, min_width=10, overflow="ellipsis"),
)


def render_identities(identities: Sequence[Identity]) -> list[RenderableType | Table]:
    """A table of identities (port, service, confidence, product and version), then each
    port's details indented below."""
    from rich.text import Text

    table = Table(_COLUMNS)
    for i in identities:
        where = f"{i.port}/{i.proto}" if len({x.address for x in identities}) == 1 else (
            f"{i.address} {i.port}/{i.proto}"
        )  # fmt: skip
        table.rows.append([where, i.label, i.confidence.value, i.product_version or "-"])
    out: list[RenderableType | Table] = [table]
    for i in identities:
        details = identity_details(i)
        if details:
            out.append(Text(f"{i.port}/{i.proto} {i.label}:", style="bold"))
            out += [Text(f"  {line}") for line in details]
    return out


def identify_summary(identities: Sequence[Identity]) -> str:
    """One line after a ``-sV`` scan: how many ports were identified, and how surely."""
    counts = {c: sum(1 for i in identities if i.confidence is c) for c in Confidence}
    longest = max((i.elapsed_s for i in identities), default=0.0)
    return (
        f"service identification: {len(identities):,} open TCP port(s): "
        f"{counts[Confidence.CONFIRMED]:,} confirmed, {counts[Confidence.LIKELY]:,} likely, "
        f"{counts[Confidence.GUESS] + counts[Confidence.NONE]:,} not identified "
        f"(longest {longest:.2f} s per port)"
    )
