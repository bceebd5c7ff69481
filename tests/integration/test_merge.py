"""``portscope merge``: shards (``scan --json``, ``-oX``) into one report, on loopback."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from portscope.cli import main


def _spec(ports: list[int], margin: int) -> str:
    """Ranges around each listener (other processes' listeners elsewhere stay out)."""
    return ",".join(f"{p - margin}-{p + margin}" for p in ports)


def _count(ports: list[int], margin: int) -> int:
    return len({q for p in ports for q in range(p - margin, p + margin + 1)})


def _lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _ports(lines: list[dict[str, object]]) -> dict[tuple[object, object, object], object]:
    return {(d["address"], d["proto"], d["port"]): d["state"] for d in lines if d["type"] == "port"}


def test_merged_shards_equal_the_whole_scan(
    listeners: list[int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _spec(listeners, 30)
    targets = ["127.0.0.1", "127.0.0.2"]
    assert main(["scan", "--json", "-p", spec, *targets]) == 0
    whole = _lines(capsys.readouterr().out)
    files = []
    for i in (1, 2, 3):
        if i == 2:  # one shard as nmap XML: both formats merge
            path = tmp_path / "s2.xml"
            assert main(["scan", "--shard", "2/3", "--seed", "11", "-p", spec, *targets,
                         "-oX", str(path)]) == 0  # fmt: skip
            capsys.readouterr()
        else:
            path = tmp_path / f"s{i}.json"
            assert main(["scan", "--json", "--shard", f"{i}/3", "--seed", "11", "-p", spec,
                         *targets]) == 0  # fmt: skip
            path.write_text(capsys.readouterr().out)
        files.append(str(path))
    capsys.readouterr()
    assert main(["merge", "--json", *files]) == 0
    merged = _lines(capsys.readouterr().out)
    assert _ports(merged) == _ports(whole)
    opened = {p for (a, _, p), s in _ports(merged).items() if s == "open" and a == "127.0.0.1"}
    assert opened >= set(listeners)
    total = next(d for d in merged if d["type"] == "summary")
    want = next(d for d in whole if d["type"] == "summary")
    assert total["counts"] == want["counts"] and total["hosts"] == 2
    assert total["coverage"]["answered"] == want["coverage"]["answered"]  # type: ignore[index]
    hosts = {d["address"]: d["ports"] for d in merged if d["type"] == "host"}
    assert hosts == {a: _count(listeners, 30) for a in targets}
    assert main(["merge", *files, "-oX", str(tmp_path / "all.xml")]) == 0
    out = capsys.readouterr().out
    assert "shards 1-3 of 3 (seed 11): complete" in out
    assert main(["merge", files[0], files[2]]) == 0
    assert "missing shard(s) 2" in capsys.readouterr().out
    assert main(["merge", "--json", str(tmp_path / "all.xml")]) == 0  # our merged XML reads back
    assert _ports(_lines(capsys.readouterr().out)) == _ports(whole)


def _port_line(port: int, state: str, reason: str) -> str:
    return json.dumps({
        "type": "port", "host": "198.18.0.2", "address": "198.18.0.2", "port": port,
        "proto": "tcp", "state": state, "reason": reason, "errno": None, "rtt_s": None,
        "banner": None,
    })  # fmt: skip


def _host_line(counts: dict[str, int]) -> str:
    return json.dumps({
        "type": "host", "host": "198.18.0.2", "address": "198.18.0.2", "status": "up",
        "ports": sum(counts.values()), "counts": counts, "not_scanned": 0, "retried": 0,
        "timed_out": counts.get("filtered", 0), "srtt_s": 0.001, "rttvar_s": 0.0005,
        "timeout_s": 0.05, "elapsed_s": 0.1,
    })  # fmt: skip


def test_conflicts_are_resolved_and_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(
        "\n".join(
            [
                _port_line(80, "open", "syn-ack"),
                _port_line(443, "filtered", "no-response"),
                _host_line({"open": 1, "filtered": 1, "closed": 8}),
            ]
        )
        + "\n"
    )
    b.write_text(
        "\n".join(
            [
                _port_line(80, "filtered", "no-response"),
                _port_line(443, "filtered", "no-response"),
                _host_line({"filtered": 2, "closed": 8}),
            ]
        )
        + "\n"
    )
    assert main(["merge", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert (
        f"conflict 198.18.0.2 tcp/80: open (syn-ack) in {a}; filtered (no-response) in {b} -> open"
        in out
    )
    assert "2 port(s) listed by more than one source, 1 with different states" in out
    assert main(["merge", "--json", str(a), str(b)]) == 0
    lines = _lines(capsys.readouterr().out)
    assert _ports(lines) == {
        ("198.18.0.2", "tcp", 80): "open",
        ("198.18.0.2", "tcp", 443): "filtered",
    }
    [conflict] = [d for d in lines if d["type"] == "conflict"]
    assert conflict["port"] == 80 and conflict["chosen"] == "open"
    assert [s["state"] for s in conflict["seen"]] == ["open", "filtered"]  # type: ignore[union-attr]
    [host] = [d for d in lines if d["type"] == "host"]
    # the duplicates count once, in the state kept
    assert host["counts"] == {"open": 1, "filtered": 1, "closed": 16}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("", "is empty"),
        ("hello\n", "neither scan --json lines nor nmap XML"),
        ('{"type": "port", "port": 80}\n', "line 1: not a portscope scan --json line"),
        ('{"type": "nope"}\n', "line 1"),
        ("<nmaprun><host>\n", "not an nmap XML report"),
        ("<html></html>", "root <html>"),
    ],
)
def test_bad_files_exit_2_with_one_line(
    content: str | None, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "f"
    if content is not None:
        path.write_text(content)
    assert main(["merge", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap not installed")
def test_nmap_xml_merges_with_our_shards(
    listeners: list[int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _spec(listeners, 5)
    nmap_xml = tmp_path / "nmap.xml"
    subprocess.run(
        ["nmap", "-n", "-Pn", "-sT", "-p", spec, "127.0.0.1", "-oX", str(nmap_xml)],
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    ours = tmp_path / "ours.json"
    assert main(["scan", "--json", "-p", spec, "127.0.0.1"]) == 0
    ours.write_text(capsys.readouterr().out)
    assert main(["merge", "--json", str(nmap_xml), str(ours)]) == 0
    lines = _lines(capsys.readouterr().out)
    assert {p for (_, _, p), s in _ports(lines).items() if s == "open"} >= set(listeners)
    assert not [d for d in lines if d["type"] == "conflict"]
