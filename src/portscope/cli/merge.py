"""``portscope merge FILE...``: shards or scans (``scan --json``, ``-oX``) into one report."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from portscope.cli._base import Env, ExitStatus, Parser
from portscope.errors import InvalidInput

if TYPE_CHECKING:
    from portscope.models import ProbeResult
    from portscope.scanner._merge import Conflict, MergedScan
    from portscope.scanner.targets import PortSpec

HELP = (
    "merge scans into one report: the shards of 'scan --shard I/N', or any scans, from "
    "'scan --json' lines and nmap XML (-oX); conflicting states are reported"
)
MAX_FILES = 65_536


def configure(parser: Parser) -> None:
    parser.epilog = (
        "Each FILE holds 'portscope scan --json' lines or an nmap XML report (portscope scan "
        "-oX, nmap -oX). A port listed with different states is a conflict: it is shown, and "
        "the merge keeps the answer over silence (open > closed > filtered > open|filtered)."
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="scan --json or -oX files")
    parser.add_argument("-oX", dest="xml", metavar="FILE", help="also write nmap XML to FILE")
    parser.add_argument(
        "--reason", action="store_true", help="add the reply's TTL to each reason, as nmap"
    )


def run(args: argparse.Namespace, env: Env) -> int:
    from portscope.scanner._merge import Merger, read_scan_file

    if len(args.files) > MAX_FILES:
        raise InvalidInput(f"{len(args.files):,} files: at most {MAX_FILES:,} are merged")
    merger = Merger()
    for path in args.files:  # every file is read and checked before anything is written
        merger.add_all(path, read_scan_file(path))
    merged = merger.result()
    if args.xml:
        write_xml(merged, args.xml, "portscope merge " + " ".join(args.files))
    show(merged, args, env)
    return ExitStatus.OK


def write_xml(merged: MergedScan, path: str, command: str) -> None:
    """The merged report as nmap XML, written whole or not at all (exit 2 on failure)."""
    from portscope._files import OutputFile
    from portscope.render.scan import NmapXmlWriter

    try:
        out = OutputFile(path)
    except OSError as err:
        raise InvalidInput(f"cannot write -oX file {path!r}: {err.strerror}") from err
    try:
        writer = NmapXmlWriter(
            out.stream, _port_spec(merged), command, technique=merged.report.options.technique,
            sharded=True,
        )  # fmt: skip
        by_address = _by_address(merged)
        for summary in merged.summaries:
            writer.host(summary, by_address.get(summary.address, []))
        writer.close(merged.report)
        out.commit()
    except OSError as err:
        raise InvalidInput(f"cannot write -oX file {path!r}: {err.strerror or err}") from err
    finally:
        out.discard()


def _port_spec(merged: MergedScan) -> PortSpec:
    """A port spec of the listed ports (nmap's ``scaninfo``): the merge knows no other."""
    from portscope.models import Proto
    from portscope.scanner.targets import PortSpec

    def ranges(proto: Proto) -> tuple[tuple[int, int], ...]:
        out: list[tuple[int, int]] = []
        for port in sorted({r.port for r in merged.results if r.proto is proto}):
            if out and port == out[-1][1] + 1:
                out[-1] = (out[-1][0], port)
            else:
                out.append((port, port))
        return tuple(out)

    return PortSpec(tcp=ranges(Proto.TCP), udp=ranges(Proto.UDP))


def _by_address(merged: MergedScan) -> dict[str, list[ProbeResult]]:
    out: dict[str, list[ProbeResult]] = {}
    for r in merged.results:
        out.setdefault(r.address, []).append(r)
    return out


def conflict_text(c: Conflict) -> str:
    from portscope.render import safe

    seen = "; ".join(
        f"{c_state.value} ({reason}) in {safe(src)}" for src, c_state, reason in c.seen
    )
    return f"conflict {c.address} {c.proto.value}/{c.port}: {seen} -> {c.chosen.value}"


def merge_lines(merged: MergedScan) -> list[str]:
    """The human lines after the report: sources, shards, duplicates, conflicts."""
    from portscope.render import count

    lines = [f"merged {count(len(merged.sources), 'source')}"]
    if (sh := merged.shards) is not None:
        have = f"shards {_ranges(sh.present)} of {sh.count} (seed {sh.seed})"
        cover = f"{sh.pairs:,} of {sh.total_pairs:,} (address, port) pairs"
        if sh.missing:
            lines.append(f"{have}: {cover}; missing shard(s) {_ranges(sh.missing)}")
        else:
            lines.append(f"{have}: complete, {cover}")
    elif merged.shard_mismatch:
        lines.append(f"not one sharded scan: {merged.shard_mismatch}")
    if merged.duplicates:
        lines.append(
            f"{merged.duplicates:,} port(s) listed by more than one source, "
            f"{len(merged.conflicts):,} with different states"
        )
    lines += [conflict_text(c) for c in merged.conflicts[:100]]
    if len(merged.conflicts) > 100:
        lines.append(f"... and {len(merged.conflicts) - 100:,} more conflicts (--json lists all)")
    return lines


def _ranges(values: tuple[int, ...]) -> str:
    out: list[list[int]] = []
    for v in values:
        if out and v == out[-1][1] + 1:
            out[-1][1] = v
        else:
            out.append([v, v])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in out)


def show(merged: MergedScan, args: argparse.Namespace, env: Env) -> None:
    """The merged report: per-host tables, totals, coverage and conflicts; or JSON lines."""
    from portscope.models import to_dict
    from portscope.render.scan import render_host, render_report, scan_line

    by_address = _by_address(merged)
    if args.json:
        import json

        for summary in merged.summaries:
            for r in by_address.get(summary.address, []):
                env.show(scan_line(r))
            env.show(scan_line(summary))
        for c in merged.conflicts:
            data = {"type": "conflict", **to_dict(c)}
            data["seen"] = [
                {"source": src, "state": st.value, "reason": reason} for src, st, reason in c.seen
            ]
            env.show(json.dumps(data, ensure_ascii=False, separators=(",", ":")))
        env.show(scan_line(merged.report))
        return
    for summary in merged.summaries:
        results = by_address.get(summary.address, [])
        env.show(*render_host(summary, results, None, ttl=args.reason), no_color=args.no_color)
    env.show(*render_report(merged.report), *merge_lines(merged), no_color=args.no_color)
