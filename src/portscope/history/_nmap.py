"""Scans into the store: nmap XML reports (``import FILE.xml``) and ``scan --save``.

The nmap XML format is nmap's DTD (``nmap.dtd``, https://nmap.org/book/nmap-dtd.html):
``nmaprun/@start`` is the scan's start (seconds since the epoch); each ``host`` has a
``status/@state``, ``address/@addr`` (``addrtype`` ipv4/ipv6; a MAC is skipped), and
``ports`` with ``extraports/@state`` (the state of the ports not listed) and
``port/@protocol,@portid`` with ``state/@state,@reason`` and ``service/@name``.

A report is someone else's file: ``xml.etree`` does not fetch external entities, and
expat (2.4.1+) refuses entity-expansion bombs; a file that is not a report, or that
expat refuses, is an ``InvalidInput`` naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from portscope.errors import InvalidInput
from portscope.history._model import ScanHost, ScanPort
from portscope.models import PortState, Proto

if TYPE_CHECKING:
    from collections.abc import Iterable

    from portscope.models import ProbeResult
    from portscope.scanner import HostSummary

__all__ = ["NmapReport", "ScanRecorder", "read_nmap_xml"]

#: nmap reports larger than this are refused (a bound on memory; ~1M ports)
MAX_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class NmapReport:
    """What an nmap XML report says.

    Attributes:
        started_at: the scan's start, seconds since the epoch (``None`` when absent).
        args: nmap's command line, or ``None``.
        hosts: the hosts.
        ports: the ports listed.
    """

    started_at: float | None
    args: str | None
    hosts: list[ScanHost]
    ports: list[ScanPort]


_PROTOS = {"tcp": Proto.TCP, "udp": Proto.UDP, "sctp": Proto.SCTP}
_STATES = {s.value: s for s in PortState}


def read_nmap_xml(path: str) -> NmapReport:
    """Read an nmap XML report (``nmap -oX``, ``portscope scan -oX``).

    Raises:
        InvalidInput: the file cannot be read, is not XML, or is not an nmap report.
    """
    import xml.etree.ElementTree as ET

    try:
        size = os.path.getsize(path)
        if size > MAX_BYTES:
            raise InvalidInput(f"{path!r} is {size:,} bytes; at most {MAX_BYTES:,} are read")
        root = ET.parse(path).getroot()
    except OSError as err:
        raise InvalidInput(f"cannot read {path!r}: {err.strerror or err}") from err
    except ET.ParseError as err:
        raise InvalidInput(f"{path!r} is not an nmap XML report: {err}") from err
    if root.tag != "nmaprun":
        raise InvalidInput(f"{path!r} is not an nmap XML report (root <{root.tag}>, not <nmaprun>)")
    start = root.get("start")
    started = float(start) if start and start.isdigit() else None
    hosts: list[ScanHost] = []
    ports: list[ScanPort] = []
    for h in root.iter("host"):
        address = None
        for a in h.findall("address"):
            if a.get("addrtype") in ("ipv4", "ipv6") and a.get("addr"):
                address = a.get("addr")
                break
        if address is None:
            continue
        name = h.find("hostnames/hostname")
        target = name.get("name") if name is not None and name.get("name") else address
        status = h.find("status")
        state = status.get("state", "up") if status is not None else "up"
        extra = None
        extras = h.findall("ports/extraports")
        if len(extras) == 1:
            extra = _STATES.get(extras[0].get("state", ""))
        elif not extras:
            extra = PortState.CLOSED  # nmap omits closed ports by default; none left out
        hosts.append(ScanHost(target or address, address, state, extra))
        for p in h.findall("ports/port"):
            proto = _PROTOS.get(p.get("protocol", ""))
            portid = p.get("portid", "")
            st = p.find("state")
            if proto is None or not portid.isdigit() or st is None:
                continue
            port_state = _STATES.get(st.get("state", ""))
            if port_state is None:
                continue
            service = p.find("service")
            ports.append(
                ScanPort(
                    target or address,
                    address,
                    proto,
                    int(portid),
                    port_state,
                    st.get("reason"),
                    service.get("name") if service is not None else None,
                )
            )
    return NmapReport(started, root.get("args"), hosts, ports)


@dataclass
class ScanRecorder:
    """Collects a running scan's results for the store (``scan --save``): call ``host``
    for each finished host (as ``NmapXmlWriter.host``), then ``Store.save_scan``."""

    started_at: float
    hosts: list[ScanHost] = field(default_factory=list)
    ports: list[ScanPort] = field(default_factory=list)

    def host(self, summary: HostSummary, results: Iterable[ProbeResult]) -> None:
        # a portscope scan lists every port that is not closed
        self.hosts.append(ScanHost(summary.host, summary.address, summary.status))
        for r in results:
            self.ports.append(ScanPort(r.host, r.address, r.proto, r.port, r.state, r.reason))
