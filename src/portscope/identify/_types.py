"""The result of service identification: what answered, how sure, and the bytes that show it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["Confidence", "Evidence", "Identity", "TlsInfo"]


class Confidence(enum.StrEnum):
    """How a service name was reached, most certain first.

    ``confirmed``: the protocol answered our probe correctly (a well-formed SSH
    identification line, ``+PONG``, a PostgreSQL ErrorResponse ...). ``likely``: a partial
    match (a one-byte answer, a protocol's error to another protocol's probe). ``guess``:
    nothing recognizable answered; the name is the registry's for the port, never shown as
    identified. ``none``: nothing recognizable and no registry name.
    """

    CONFIRMED = "confirmed"
    LIKELY = "likely"
    GUESS = "guess"
    NONE = "none"

    @property
    def rank(self) -> int:
        """3 (confirmed) to 0 (none)."""
        return _RANKS[self]


_RANKS = {Confidence.CONFIRMED: 3, Confidence.LIKELY: 2, Confidence.GUESS: 1, Confidence.NONE: 0}


@dataclass(frozen=True, slots=True)
class Evidence:
    """The bytes a match rests on.

    Attributes:
        probe: the probe that drew the answer (``banner``, ``http``, ``tls``, ``redis`` ...).
        data: the matched bytes, exact (at most a few hundred; JSON shows them as text and
            base64, terminals escaped).
    """

    probe: str
    data: bytes


@dataclass(frozen=True, slots=True)
class TlsInfo:
    """What a TLS handshake showed (``ssl`` module, certificate not verified).

    Attributes:
        version: the negotiated protocol (``TLSv1.3``).
        cipher: the negotiated cipher suite name.
        alpn: the ALPN protocol the server chose (RFC 7301), or ``None``.
        subject: the certificate subject (``CN=...,O=...``), or ``None``.
        issuer: the certificate issuer, or ``None``.
        sans: subjectAltName entries (``DNS:example.test``, ``IP:127.0.0.1``).
        not_before: start of validity, UTC, or ``None`` when unreadable.
        not_after: end of validity, UTC, or ``None``.
    """

    version: str
    cipher: str | None = None
    alpn: str | None = None
    subject: str | None = None
    issuer: str | None = None
    sans: tuple[str, ...] = ()
    not_before: datetime | None = None
    not_after: datetime | None = None

    @property
    def self_signed(self) -> bool:
        """True when subject and issuer are the same name."""
        return self.subject is not None and self.subject == self.issuer


@dataclass(frozen=True, slots=True)
class Identity:
    """What answers on one port (TCP; UDP when read from a UDP answer).

    Attributes:
        address: the address probed.
        port: the TCP port.
        service: the protocol that answered (``http``, ``ssh``, ``redis`` ...; inside TLS when
            ``tls`` is set, as nmap's ``ssl/http``), the registry's name when ``confidence``
            is ``guess``, or ``None``.
        confidence: how the name was reached.
        product: the implementation as the service names itself (``nginx``, ``OpenSSH``,
            ``MariaDB``), or ``None``.
        version: its version as the service says it, or ``None``.
        facts: further facts by name (``title``, ``status``, ``auth``, ``ssl`` ...).
        tls: the TLS handshake's facts when the service speaks TLS, else ``None``.
        evidence: the answers the identification rests on, first the deciding one.
        probes: the probes sent, in order.
        elapsed_s: seconds spent on the port.
        proto: ``tcp``, or ``udp`` for an identified UDP answer.
    """

    address: str
    port: int
    service: str | None
    confidence: Confidence
    product: str | None = None
    version: str | None = None
    facts: dict[str, str] = field(default_factory=dict)
    tls: TlsInfo | None = None
    evidence: tuple[Evidence, ...] = ()
    probes: tuple[str, ...] = ()
    elapsed_s: float = 0.0
    proto: str = "tcp"

    @property
    def identified(self) -> bool:
        """True when a protocol answered (confirmed or likely), not a registry guess."""
        return self.confidence.rank >= Confidence.LIKELY.rank

    @property
    def label(self) -> str:
        """The service as nmap writes it: ``ssl/http``; a guess ends in ``?``; ``unknown``."""
        if self.service is None:
            return "unknown"
        name = f"ssl/{self.service}" if self.tls is not None else self.service
        return name if self.identified else f"{name}?"

    @property
    def product_version(self) -> str | None:
        """``nginx 1.22.1``, ``OpenSSH``, or ``None``."""
        if self.product is None:
            return self.version
        return f"{self.product} {self.version}" if self.version else self.product
