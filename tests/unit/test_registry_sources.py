"""Source parsers: services(5), nmap-services and IANA's CSV with its quirks."""

from __future__ import annotations

from pathlib import Path

import pytest

from portscope import RegistryError
from portscope.registry._sources import (
    parse_iana_text,
    parse_services,
    read_iana_csv,
    read_services_file,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "registry"


def test_services_file_names_aliases_comments_and_skips() -> None:
    entries = read_services_file(FIXTURES / "services", source="system")
    assert [(e.port, e.proto, e.name) for e in entries] == [
        (1, "tcp", "alpha"),
        (7, "tcp", "echo"),
        (7, "udp", "echo"),
        (4711, "tcp", "sysonly"),
    ]  # 'notaport', 99999 and the 'xtp' transport are skipped as libc skips them
    alpha = entries[0]
    assert alpha[4] == ("alf", "al")
    assert alpha[5] == "alpha from the system file"
    assert alpha[6] == "system"
    assert alpha[8] is None


def test_nmap_services_frequency_column() -> None:
    entries = read_services_file(FIXTURES / "nmap-services", source="nmap", frequency_column=True)
    by_name = {e.name: e for e in entries}
    assert by_name["alpha"][8] == pytest.approx(0.1)
    assert by_name["alpha"][4] == ()  # the third column is not an alias list
    assert by_name["unknown"][0] == 2
    assert by_name["highudp"][2] == "udp"
    assert by_name["lowudp"][5] is None


def test_services_port_range_syntax() -> None:
    (entry,) = parse_services(["x11 6000-6063/tcp"], source="system")
    assert entry[:3] == (6000, 6063, "tcp")
    assert list(parse_services(["bad 10-5/tcp"], source="system")) == []


def test_iana_quirks_counts() -> None:
    _, stats = read_iana_csv(FIXTURES / "iana-quirks.csv")
    assert stats.rows == 17
    assert stats.entries == 10
    assert stats.reserved == 1
    assert stats.unassigned == 3  # single ports, a port without transport, and a range
    assert stats.no_port == 1
    assert stats.other == 2  # De-registered, and a port above 65535


def test_iana_quirks_entries() -> None:
    entries, _ = read_iana_csv(FIXTURES / "iana-quirks.csv")
    keyed = {(e.name, e.proto): e for e in entries}
    multi = keyed[("multi", "tcp")]
    # A quoted description spanning lines becomes one line; doubled quotes unescaped.
    assert multi[5] == (
        'First line of a description that continues on a second line, with a "quote"'
    )
    assert keyed[("displays", "tcp")][:2] == (6000, 6009)
    assert keyed[("displays", "udp")][:2] == (6000, 6009)
    # A named row without a transport is taken as TCP and UDP.
    assert keyed[("legacy", "tcp")][:2] == (3322, 3325)
    assert keyed[("legacy", "udp")][:2] == (3322, 3325)
    assert keyed[("sctpsvc", "sctp")][0] == 9899
    assert keyed[("dccpsvc", "dccp")][0] == 5004
    assert ("MixedCase", "tcp") in keyed
    assert ("sameport", "tcp") in keyed
    names = {e.name for e in entries}
    assert "nameonly" not in names and "badport" not in names and "" not in names
    assert all(e.source == "iana" for e in entries)


def test_iana_columns_found_by_header_and_bom() -> None:
    text = (
        "\ufeffDescription,Transport Protocol,Port Number,Service Name\n"
        '"Web, secure",tcp,443,https\n'
    )
    entries, stats = parse_iana_text(text)
    assert entries == [(443, None, "tcp", "https", (), "Web, secure", "iana", None, None)]
    assert stats.rows == 1


def test_iana_missing_column_names_the_input() -> None:
    with pytest.raises(RegistryError, match=r"some\.csv: not an IANA .*'Port Number'"):
        parse_iana_text("Service Name,Port\nx,1\n", name="some.csv")


def test_iana_not_utf8(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"Service Name,Port Number,Transport Protocol,Description\nx,1,tcp,\xff\xfe\n")
    with pytest.raises(RegistryError, match="not UTF-8"):
        read_iana_csv(bad)


def test_iana_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=r"cannot read .*missing\.csv"):
        read_iana_csv(tmp_path / "missing.csv")
