"""nmap XML output (-oX): well-formed, and every element and attribute as nmap.dtd declares."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from portscope.models import PortState, ProbeResult, Proto
from portscope.render.scan import NmapXmlWriter
from portscope.scanner import Coverage, HostSummary, ScanReport
from portscope.scanner.targets import parse_ports

DTD = Path("/usr/share/nmap/nmap.dtd")
_ATTR = re.compile(
    r"([\w-]+)\s+(\([^)]*\)|%[\w-]+;|CDATA|NMTOKEN|ID)\s+(#REQUIRED|#IMPLIED|\"[^\"]*\")"
)


def write_sample(ports: str = "T:1-100,U:53") -> str:
    spec = parse_ports(ports)
    out = io.StringIO()
    xml = NmapXmlWriter(out, spec, "portscope scan -p T:1-100,U:53 198.18.0.2")
    results = [
        ProbeResult("198.18.0.2", "198.18.0.2", 22, Proto.TCP, PortState.OPEN, "syn-ack",
                    None, 0.0004),
        ProbeResult("198.18.0.2", "198.18.0.2", 25, Proto.TCP, PortState.FILTERED,
                    "no-response"),
        ProbeResult("198.18.0.2", "198.18.0.2", 26, Proto.TCP, PortState.FILTERED,
                    "admin-prohibited", 113),
        ProbeResult("198.18.0.2", "198.18.0.2", 53, Proto.UDP, PortState.OPEN, "udp-response"),
    ]  # fmt: skip
    summary = HostSummary(
        host="lab-host", address="198.18.0.2", status="up", ports=101,
        counts={"open": 2, "filtered": 2, "closed": 97}, not_scanned=0, retried=3,
        timed_out=1, srtt_s=0.0002, rttvar_s=0.0001, timeout_s=0.1, elapsed_s=0.5,
    )  # fmt: skip
    xml.host(summary, results)
    report = ScanReport(1, 1, 101, dict(summary.counts), Coverage(100, 3, 1, 0), 104, 0.5, False)
    xml.close(report)
    return out.getvalue()


def test_xml_shape_mirrors_nmap() -> None:
    root = ET.fromstring(write_sample())
    assert root.tag == "nmaprun" and root.get("scanner") == "nmap"
    infos = {i.get("protocol"): i.attrib for i in root.iter("scaninfo")}
    assert infos["tcp"]["type"] == "connect" and infos["tcp"]["services"] == "1-100"
    assert infos["udp"]["type"] == "udp" and infos["udp"]["numservices"] == "1"
    host = root.find("host")
    assert host is not None
    assert host.find("status").get("state") == "up"  # type: ignore[union-attr]
    assert host.find("address").attrib == {"addr": "198.18.0.2", "addrtype": "ipv4"}  # type: ignore[union-attr]
    assert host.find("hostnames/hostname").get("name") == "lab-host"  # type: ignore[union-attr]
    extra = host.find("ports/extraports")
    assert extra is not None and extra.get("state") == "closed" and extra.get("count") == "97"
    reasons = extra.find("extrareasons")
    assert reasons is not None
    assert reasons.get("ports") == "1-21,23-24,27-100" and reasons.get("count") == "97"
    ports = {
        (p.get("protocol"), p.get("portid")): (p.find("state").get("state"),  # type: ignore[union-attr]
                                               p.find("state").get("reason"))  # type: ignore[union-attr]
        for p in host.iter("port")
    }  # fmt: skip
    assert ports == {
        ("tcp", "22"): ("open", "syn-ack"),
        ("tcp", "25"): ("filtered", "no-response"),
        ("tcp", "26"): ("filtered", "admin-prohibited"),
        ("udp", "53"): ("open", "udp-response"),
    }
    svc = host.find("ports/port/service")
    assert svc is not None and svc.get("name") == "ssh" and svc.get("method") == "table"
    assert host.find("times").get("srtt") == "200"  # type: ignore[union-attr]  # microseconds
    stats = root.find("runstats")
    assert stats is not None
    assert stats.find("hosts").attrib == {"up": "1", "down": "0", "total": "1"}  # type: ignore[union-attr]
    assert stats.find("finished").get("exit") == "success"  # type: ignore[union-attr]


@pytest.mark.skipif(not DTD.exists(), reason="nmap's nmap.dtd is not installed")
def test_xml_attributes_are_declared_in_nmap_dtd() -> None:
    dtd = DTD.read_text()
    declared: dict[str, dict[str, tuple[str, str]]] = {}
    for name, body in re.findall(r"<!ATTLIST\s+([\w-]+)(.*?)>", dtd, re.S):
        declared[name] = {a: (t, d) for a, t, d in _ATTR.findall(body)}
    elements = set(re.findall(r"<!ELEMENT\s+([\w-]+)", dtd))
    root = ET.fromstring(write_sample())
    for el in root.iter():
        assert el.tag in elements, el.tag
        attrs = declared.get(el.tag, {})
        for key, value in el.attrib.items():
            assert key in attrs, f"{el.tag}@{key} not in nmap.dtd"
            kind = attrs[key][0]
            if kind.startswith("("):
                allowed = {v.strip() for v in kind.strip("()").split("|")}
                assert value in allowed, f"{el.tag}@{key}={value!r} not in {allowed}"
        for key, (_, default) in attrs.items():
            if default == "#REQUIRED":
                assert key in el.attrib, f"{el.tag} lacks required {key}"


def test_every_foldable_state_over_25_ports_goes_into_extraports() -> None:
    # nmap folds every state but open into <extraports> when it has more than 25 ports
    # (nmap -sU -p 1-30 on a silent host: "Not shown: 30 open|filtered udp ports"); 55
    # filtered ports listed one by one were 55 ndiff differences
    spec = parse_ports("1-100")
    out = io.StringIO()
    xml = NmapXmlWriter(out, spec, "portscope scan -p 1-100 198.18.2.1")
    results = [
        ProbeResult("198.18.2.1", "198.18.2.1", p, Proto.TCP, PortState.FILTERED,
                    "admin-prohibited" if p in (7, 8) else "no-response")
        for p in range(1, 56)
    ] + [
        ProbeResult("198.18.2.1", "198.18.2.1", p, Proto.TCP, PortState.OPEN_FILTERED,
                    "no-response")
        for p in range(56, 90)
    ]  # fmt: skip
    summary = HostSummary(
        host="198.18.2.1", address="198.18.2.1", status="no-answer", ports=100,
        counts={"filtered": 55, "open|filtered": 34, "closed": 11}, not_scanned=0, retried=0,
        timed_out=55, srtt_s=None, rttvar_s=None, timeout_s=1.0, elapsed_s=2.0,
    )  # fmt: skip
    xml.host(summary, results)
    root = ET.fromstring(out.getvalue() + "</nmaprun>")
    host = root.find("host")
    assert host is not None
    assert host.find("status").get("state") == "up"  # type: ignore[union-attr]  # as -Pn
    extra, extra_of = host.findall("ports/extraports")
    assert (extra.get("state"), extra.get("count")) == ("filtered", "55")
    assert (extra_of.get("state"), extra_of.get("count")) == ("open|filtered", "34")
    reasons = {r.get("reason"): (r.get("count"), r.get("ports")) for r in extra}
    assert reasons == {"no-response": ("53", "1-6,9-55"), "admin-prohibited": ("2", "7-8")}
    listed = {p.get("portid"): p.find("state").get("state") for p in host.iter("port")}  # type: ignore[union-attr]
    assert listed == {str(p): "closed" for p in range(90, 101)}  # 11 closed: listed


def test_quoteattr_writes_what_saxutils_writes() -> None:
    from xml.sax.saxutils import quoteattr as reference

    from portscope.render.scan import quoteattr

    for text in ('a"b', "a'b", "a\"b'c", "x<&>\n\t\r", "", "plain", "\u00e9\x7f"):
        assert quoteattr(text) == reference(text)
