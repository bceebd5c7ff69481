"""Merged lookups, service_name, top_ports, sources and the compiled cache, over fixtures."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portscope import (
    InvalidInput,
    InvalidPort,
    InvalidPortSpec,
    Proto,
    lookup,
    registry_sources,
    service_name,
    top_ports,
    update_registry,
)
from portscope.registry import parse_query
from portscope.registry._curated import curated_entries
from portscope.registry._layout import FORMAT
from portscope.registry._store import STORE

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "registry"


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A registry of the curated table plus the fixture files, cached in tmp_path."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("PORTSCOPE_CACHE_DIR", str(cache))
    monkeypatch.setenv("PORTSCOPE_SERVICES_FILE", str(FIXTURES / "services"))
    monkeypatch.setenv("PORTSCOPE_NMAP_SERVICES", str(FIXTURES / "nmap-services"))
    STORE.reset()
    update_registry(from_file=FIXTURES / "iana-quirks.csv")
    yield cache
    STORE.reset()


# -- query parsing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "port", "end", "proto"),
    [
        ("443", "port", 443, None, None),
        (" 443 ", "port", 443, None, None),
        ("udp/53", "port", 53, None, Proto.UDP),
        ("53/udp", "port", 53, None, Proto.UDP),
        ("53/UDP", "port", 53, None, Proto.UDP),
        ("8000-8100", "range", 8000, 8100, None),
        ("tcp/8000-8100", "range", 8000, 8100, Proto.TCP),
        ("80-80", "port", 80, None, None),
        ("0", "port", 0, None, None),
        ("65535", "port", 65535, None, None),
    ],
)
def test_parse_ports(text: str, kind: str, port: int, end: int | None, proto: Proto | None) -> None:
    q = parse_query(text)
    assert (q.kind, q.port, q.port_end, q.proto) == (kind, port, end, proto)


def test_parse_names() -> None:
    assert parse_query("HTTPS").name == "https"
    q = parse_query("dns/udp")
    assert (q.kind, q.name, q.proto) == ("name", "dns", Proto.UDP)
    assert parse_query("message  broker").name == "message broker"
    assert parse_query(443).port == 443
    assert parse_query("53", "udp").proto is Proto.UDP


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("70000", "port '70000' is out of range; accepted: 0-65535"),
        ("-1", "port range '-1' is missing an end"),
        ("65536/tcp", "port '65536' is out of range"),
        ("80-", "port range '80-' is missing an end"),
        ("+443", "bad port '+443'"),
        ("٤٤٣", "bad port '٤٤٣'"),
        ("000443", "port '000443' is out of range"),
        ("tcp/", "'tcp/' is not PORT/TRANSPORT"),
        ("/53", "'/53' is not PORT/TRANSPORT"),
        ("53/tcp/udp", "is not PORT/TRANSPORT"),
        ("53/xtp", "neither '53' nor 'xtp' is a transport"),
        ("9-3", "reversed port range '9-3'; write it low-high: 3-9"),
        ("1-70000", "port '70000' is out of range"),
    ],
)
def test_parse_bad_ports(text: str, message: str) -> None:
    with pytest.raises(InvalidPort, match=re.escape(message)):
        parse_query(text)


def test_parse_bad_other() -> None:
    with pytest.raises(InvalidInput, match="empty query"):
        parse_query("  ")
    with pytest.raises(InvalidInput, match="'a;b' is not a port, range or service name"):
        parse_query("a;b")
    with pytest.raises(InvalidPort, match="'xyz' is not a transport"):
        parse_query("53", "xyz")
    with pytest.raises(InvalidPort, match="asks for udp but the transport given is tcp"):
        parse_query("53/udp", "tcp")
    with pytest.raises(InvalidPort):
        lookup(-1)


# -- lookups ---------------------------------------------------------------------------


def test_port_merges_sources_with_provenance(registry: Path) -> None:
    tcp = [(s.name, s.source) for s in lookup(1, "tcp")]
    # curated first, then IANA's two services; system's alpha merged into IANA's alpha
    assert tcp == [("tcpmux", "curated"), ("alpha", "iana"), ("sameport", "iana")]
    alpha = next(s for s in lookup("1/tcp") if s.name == "alpha")
    assert alpha.aliases == ("alf", "al")  # from /etc/services
    assert alpha.description == "Alpha Service"  # IANA outranks the system comment
    assert alpha.frequency == pytest.approx(0.1)  # nmap's frequency for 1/tcp
    udp = lookup(1, Proto.UDP)
    assert [(s.name, s.source, s.proto) for s in udp] == [("alpha", "iana", Proto.UDP)]


def test_port_in_registered_range(registry: Path) -> None:
    found = {(s.name, s.proto.value, s.port, s.port_end, s.source) for s in lookup(6005)}
    assert ("displays", "tcp", 6000, 6009, "iana") in found
    assert ("displays", "udp", 6000, 6009, "iana") in found
    assert ("x11", "tcp", 6000, 6063, "curated") in found
    legacy = {(s.proto.value, s.port_end) for s in lookup(3323) if s.name == "legacy"}
    assert legacy == {("tcp", 3325), ("udp", 3325)}


@pytest.mark.parametrize(
    ("name", "proto", "first", "last", "source"),
    [
        ("displays", "tcp", 6000, 6009, "iana"),
        ("displays", "udp", 6000, 6009, "iana"),
        ("x11", "tcp", 6000, 6063, "curated"),
        ("legacy", "tcp", 3322, 3325, "iana"),
    ],
)
def test_a_range_is_found_at_both_ends_and_not_past_them(
    registry: Path, name: str, proto: str, first: int, last: int, source: str
) -> None:
    # issue 18: a planted off-by-one that lost a range's last port (lookup 6063 no longer
    # finding x11's 6000-6063) passed the whole suite; both ends, the API and the fast path
    import io

    from portscope.cli.lookup import quick

    entry = (name, proto, first, last, source)
    for port in (first, last):
        found = {(s.name, s.proto.value, s.port, s.port_end, s.source) for s in lookup(port)}
        assert entry in found, port
        out = io.StringIO()
        assert quick([str(port)], out) == 0
        assert f"{first}-{last}" in out.getvalue() and name in out.getvalue(), port
    for port in (first - 1, last + 1):
        found = {(s.name, s.proto.value, s.port, s.port_end, s.source) for s in lookup(port)}
        assert entry not in found, port


def test_sctp_dccp_and_proto_filter(registry: Path) -> None:
    assert [s.name for s in lookup("sctp/9899")] == ["sctpsvc"]
    assert lookup("9899/tcp") == []
    assert [s.name for s in lookup(5004, "dccp")] == ["dccpsvc"]


def test_port_range_lists_in_port_order(registry: Path) -> None:
    found = lookup("1-7")
    ports = [s.port for s in found]
    assert ports == sorted(ports)
    assert {"tcpmux", "alpha", "echo", "multi"} <= {s.name for s in found}
    assert all(1 <= s.port <= 7 for s in found)


def test_unknown_port_is_empty(registry: Path) -> None:
    assert lookup(51000) == []


def test_nmap_unknown_rows_give_no_service(registry: Path) -> None:
    assert all(s.name != "unknown" for s in lookup(2))


def test_name_search_ranking(registry: Path) -> None:
    found = lookup("alpha")
    assert found[0].name == "alpha" and found[0].port == 1
    assert lookup("alf")[0].name == "alpha"  # exact alias
    assert lookup("mixedcase")[0].name == "MixedCase"  # names match in any case
    assert lookup("multi")[0].name == "multi"
    # a description word finds the service; names outrank descriptions
    assert [s.name for s in lookup("continues")] == ["multi"]
    assert lookup("postgres")[0].name == "postgresql"  # curated alias
    assert lookup("nosuchthing") == []


def test_name_search_multiple_words_and_proto(registry: Path) -> None:
    assert [s.name for s in lookup("display range", "udp")] == ["displays"]
    assert lookup("alpha/udp")[0].proto is Proto.UDP
    assert all(s.proto is Proto.UDP for s in lookup("alpha/udp"))


def test_curated_security_notes_reach_lookup(registry: Path) -> None:
    (telnet,) = lookup(23, "tcp")
    assert telnet.source == "curated"
    assert telnet.notes is not None and "Plaintext" in telnet.notes


# -- service_name ----------------------------------------------------------------------


def test_service_name_prefers_curated_then_iana_system_nmap(registry: Path) -> None:
    assert service_name(1) == "tcpmux"  # curated over IANA's alpha
    assert service_name(1, "udp") == "alpha"  # IANA
    assert service_name(4711) == "sysonly"  # /etc/services only
    assert service_name(31337) == "nmaponly"  # nmap only
    assert service_name(2) is None  # nmap's "unknown" is no name
    assert service_name(51000) is None
    assert service_name(443, Proto.TCP) == "https"
    assert service_name(9899, "sctp") == "sctpsvc"


def test_service_name_ranges(registry: Path) -> None:
    assert service_name(6005) == "x11"  # curated range beats IANA's
    assert service_name(6005, "udp") == "displays"
    assert service_name(3324, "udp") == "legacy"
    assert service_name(31000) is None  # the NodePort range is too wide to name ports


def test_service_name_tolerates_odd_arguments(registry: Path) -> None:
    assert service_name(1, "xtp") is None
    assert service_name(70000) is None


# -- top_ports -------------------------------------------------------------------------


def test_top_ports_follow_nmap_frequency(registry: Path) -> None:
    assert top_ports(4) == [2, 1, 7, 31337]
    assert top_ports(2, "udp") == [53, 69]
    more = top_ports(10)
    assert more[:4] == [2, 1, 7, 31337]
    assert len(set(more)) == 10
    curated_tcp = sorted(
        {e.port for e in curated_entries() if e.proto == "tcp" and e.port_end is None}
    )
    assert more[4:] == [p for p in curated_tcp if p not in (0, 1, 2, 7, 31337)][:6]


def test_top_ports_without_nmap(registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTSCOPE_NMAP_SERVICES", "")
    STORE.reset()
    curated_tcp = sorted(
        {e.port for e in curated_entries() if e.proto == "tcp" and e.port_end is None}
    )
    assert top_ports(5) == [p for p in curated_tcp if p != 0][:5]
    everything = top_ports(65535)
    assert len(everything) == 65535
    assert set(everything) == set(range(1, 65536))


@pytest.mark.parametrize("n", [0, -1, 65536])
def test_top_ports_bad_count(n: int) -> None:
    with pytest.raises(InvalidPortSpec, match="expected 1-65535"):
        top_ports(n)


def test_top_ports_bad_proto() -> None:
    with pytest.raises(InvalidPort, match="not a transport"):
        top_ports(5, "xtp")


# -- sources and the cache -------------------------------------------------------------


def test_registry_sources_report(registry: Path) -> None:
    info = {s.name: s for s in registry_sources()}
    assert list(info) == ["curated", "iana", "system", "nmap"]
    assert info["curated"].entries == len(curated_entries())
    assert info["iana"].loaded and info["iana"].entries == 11  # 10 rows, one without transport
    assert info["iana"].path == str(registry / "service-names-port-numbers.csv")
    assert info["iana"].detail is not None and "17 rows" in info["iana"].detail
    assert info["iana"].url == str((FIXTURES / "iana-quirks.csv").resolve())
    assert info["system"].entries == 4 and info["system"].path == str(FIXTURES / "services")
    assert info["nmap"].entries == 6
    assert info["nmap"].age_s is not None and info["nmap"].age_s >= 0


def test_sources_without_iana_and_nmap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTSCOPE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("PORTSCOPE_NMAP_SERVICES", "")
    monkeypatch.setenv("PORTSCOPE_SERVICES_FILE", str(tmp_path / "none"))
    STORE.reset()
    try:
        info = {s.name: s for s in registry_sources()}
        assert not info["iana"].loaded and "portscope registry update" in (
            info["iana"].detail or ""
        )
        assert not info["nmap"].loaded and info["nmap"].path is None
        assert not info["system"].loaded and info["system"].detail == "not found"
        assert service_name(22) == "ssh"  # the curated table answers on a bare machine
    finally:
        STORE.reset()


def test_every_curated_port_answers_on_a_bare_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORTSCOPE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("PORTSCOPE_NMAP_SERVICES", "")
    monkeypatch.setenv("PORTSCOPE_SERVICES_FILE", "")
    STORE.reset()
    try:
        for port, end, proto, name, *_ in curated_entries():
            found = lookup(port, proto)
            assert (name, "curated", end) in {(s.name, s.source, s.port_end) for s in found}
            if end is None or end - port < 100:
                assert service_name(port, proto) is not None
    finally:
        STORE.reset()


def test_cache_is_written_and_reused(registry: Path) -> None:
    lookup(443)
    lookup("https")
    parts = sorted(p.name for p in registry.glob("registry-v*"))
    assert parts == [f"registry-v{FORMAT}.{part}" for part in ("data", "index", "text")]
    stamps = {p: p.stat().st_mtime_ns for p in registry.glob("registry-v*")}
    STORE.reset()
    assert service_name(4711) == "sysonly"
    assert lookup("sysonly")[0].port == 4711
    assert stamps == {p: p.stat().st_mtime_ns for p in registry.glob("registry-v*")}


def test_cache_rebuilds_when_a_source_changes(
    registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = tmp_path / "services"
    services.write_text("first\t4711/tcp\n")
    monkeypatch.setenv("PORTSCOPE_SERVICES_FILE", str(services))
    STORE.reset()
    assert service_name(4711) == "first"
    services.write_text("second\t4711/tcp\n")
    os.utime(services, ns=(1, 10**18))  # a different mtime even on coarse clocks
    STORE.reset()
    assert service_name(4711) == "second"
    assert [s.name for s in lookup(4711)] == ["second"]


def test_corrupt_cache_is_rebuilt(registry: Path) -> None:
    lookup(443)
    for part in registry.glob("registry-v*"):
        part.write_bytes(b"not marshal")
    STORE.reset()
    assert service_name(1, "udp") == "alpha"
    assert lookup(1, "udp")[0].name == "alpha"


def test_unwritable_cache_dir_still_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("PORTSCOPE_CACHE_DIR", str(blocker / "cache"))  # under a file
    STORE.reset()
    try:
        assert service_name(22) == "ssh"
        assert lookup(22, "tcp")[0].name == "ssh"
    finally:
        STORE.reset()


def test_reading_some_ports_equals_the_loaded_data_part(registry: Path) -> None:
    from portscope.registry._layout import part_file, source_files, source_key
    from portscope.registry._store import Data, read_ports

    lookup(443)
    key = source_key(source_files())
    path = part_file(registry, "data")
    data = Data(Path(path).read_bytes())
    assert data.key == key and data.ranges
    ports = sorted({e.port for e in curated_entries()} | {0, 1, 4711, 6000, 6063, 50000, 65535})
    for port in ports:
        assert read_ports(path, [port], key) == ({port: data.at(port)}, data.ranges), port
    assert read_ports(path, ports, key) == ({p: data.at(p) for p in ports}, data.ranges)
    assert read_ports(path, [443], ("another", "key")) is None
    assert read_ports(str(registry / "missing"), [443], key) is None
    assert data.between(20, 25) == [e for p in range(20, 26) for e in data.at(p)]


def test_first_and_later_lookups_agree(registry: Path) -> None:
    # The first lookup of a process reads a few ports from the file, later ones the part.
    for query in (443, "https", "alpha", 1, "x11"):
        STORE.reset()
        first = lookup(query)
        assert lookup(query) == first == lookup(query), query


def test_truncated_parts_are_rebuilt(registry: Path) -> None:
    from portscope.registry._layout import part_file

    before = (lookup(443), lookup("8000-8100"), lookup("alpha"))
    for part in ("data", "text"):
        path = Path(part_file(registry, part))
        for size in (path.stat().st_size - 7, path.stat().st_size - 8, 40, 3):
            path.write_bytes(path.read_bytes()[:size])
            STORE.reset()
            assert (lookup(443), lookup("8000-8100"), lookup("alpha")) == before, (part, size)


def test_query_syntax_is_the_regular_expressions() -> None:
    # Digits, signs, dashes and blanks go to the port parser (ASCII digits only there);
    # the name pattern is checked with str methods.
    from portscope.registry._answer import _is_numeric

    samples = [
        "443", "+443", "-443", "", "+", "-", "4 4", "٤٤٣", "²", "1_0", "0x1", "44a", "+-4",
        "1-2", "1-", "-2", "1--2", "1-2-3", "\u0664-\u0665", "1-²", " 1-2", "1-2 ", "⁴-5",
    ]  # fmt: skip
    for text in samples:
        assert _is_numeric(text) is bool(re.fullmatch(r"[\d\s+-]*\d[\d\s+-]*", text)), text
    assert parse_query("443").port == 443
    assert (parse_query(" 80 - 90 ").port, parse_query(" 80 - 90 ").port_end) == (80, 90)
    for text in ("٤٤٣", "+443", "80 90", "0000443"):
        with pytest.raises(InvalidInput):
            parse_query(text)
    names = [
        "https", "message broker", "ftp-data", "x11:1", "a_b", "c++", "*", "---", "é", "²x",
        "dns,udp", "a!b", "a\tb", "é\u0301", "\u01c5z", "mq (x)", "a.b.c", "日本", "a\u200bb",
    ]  # fmt: skip
    for text in names:
        body = " ".join(text.split())
        valid = bool(re.match(r"^[\w.+*:-]+(?: [\w.+*:-]+)*$", body))
        try:
            accepted = parse_query(text).kind == "name"
        except InvalidInput:
            accepted = False
        assert accepted is valid, text


def _search_by_brute_force(
    everything: list[tuple[Any, ...]], text: str, proto: str | None
) -> list[tuple[Any, ...]]:
    # What the text part and its line index stand for: every entry, scored in order.
    from portscope.registry._answer import _SOURCE_BONUS, _score_word
    from portscope.registry._layout import PROTO_INDEX

    words = text.split()
    scored = []
    for e in everything:
        line = f"{e.name} {' '.join(e.aliases)}\t{e.description or ''}".lower()
        if words[0] not in line or (proto is not None and e.proto != proto):
            continue
        aliases = tuple(a.lower() for a in e.aliases)
        scores = [
            _score_word(w, e.name.lower(), aliases, (e.description or "").lower()) for w in words
        ]
        if all(scores):
            total = sum(scores) + _SOURCE_BONUS[e.source]
            scored.append((-total, -(e.frequency or 0.0), e.port, PROTO_INDEX[e.proto], e))
    scored.sort(key=lambda t: t[:4])
    return [t[4] for t in scored]


def test_name_search_equals_brute_force(registry: Path) -> None:
    from portscope.registry._answer import search

    data = STORE.data()
    everything = [*data.between(0, 65535), *data.ranges]
    words = ["https", "http", "alpha", "al", "x11", "sql", "message broker", "dns", "ftp-data"]
    words += sorted({e.name.lower() for e in curated_entries()})[::5]
    for proto in (None, "udp"):
        for text in words:
            STORE.reset()  # the first search of a process reads only its ports
            first = search(text, proto)
            assert first == search(text, proto), text
            assert first == _search_by_brute_force(everything, text, proto), text
