"""The scan area's layers: renderers and the scanner never import a face."""

from __future__ import annotations

import ast
from pathlib import Path

import portscope

SRC = Path(portscope.__file__).parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_scanner_and_scan_renderer_do_not_import_the_cli() -> None:
    files = [*sorted((SRC / "scanner").glob("*.py")), SRC / "render" / "scan.py"]
    for path in files:
        faces = {m for m in imported_modules(path) if m.startswith("portscope.cli")}
        assert not faces, f"{path.relative_to(SRC)} imports {sorted(faces)}"


def test_scan_renderers_return_what_to_show() -> None:
    # a TUI or a web page reuses them: they return renderables and lines, they write nothing
    from rich.console import Console

    from portscope.models import PortState, ProbeResult, Proto
    from portscope.render.scan import render_host, render_probe, render_report, scan_line
    from portscope.scanner import Coverage, HostSummary, ScanReport

    r = ProbeResult("h", "198.18.0.2", 22, Proto.TCP, PortState.OPEN, "syn-ack", None, 0.001)
    summary = HostSummary("h", "198.18.0.2", "up", 2, {"open": 1, "closed": 1}, 0, 0, 0,
                          0.001, 0.0005, 0.05, 0.1)  # fmt: skip
    report = ScanReport(1, 1, 2, {"open": 1, "closed": 1}, Coverage(2, 0, 0, 0), 2, 0.1, False)
    import io

    out = io.StringIO()
    con = Console(file=out, width=100, color_system=None)
    for item in [*render_probe([r]), *render_host(summary, [r]), *render_report(report)]:
        con.print(item)
    text = out.getvalue()
    assert "22/tcp" in text and "syn-ack" in text and "1 closed, 0 filtered" in text
    assert "coverage: 2 answered" in text
    assert scan_line(r).startswith('{"type":"port"') and "\n" not in scan_line(r)
