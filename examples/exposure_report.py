"""Print this machine's exposure review as Markdown (for a ticket or a CI artifact).

    python examples/exposure_report.py > exposure.md

Written only against portscope's public API.
"""

from __future__ import annotations

import portscope


def report() -> str:
    findings = portscope.audit()
    lines = ["# Exposure review", "", f"{len(findings)} finding(s).", ""]
    for f in findings:
        lines.append(f"## [{f.severity.value}] {f.title}")
        lines.append("")
        lines.append(f"- socket: `{f.socket.proto.value} {f.socket.local}` ({f.scope})")
        lines.append(f"- process: {f.process or 'not visible to this user'}")
        if f.registered:
            lines.append(f"- port registered to: {f.registered} (the registry, not the process)")
        lines.append(f"- why: {f.why}")
        lines.append(f"- fix: {f.fix}")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report())
