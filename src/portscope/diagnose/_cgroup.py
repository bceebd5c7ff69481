"""Where a process runs from: its systemd unit or container, from ``/proc/PID/cgroup``.

The file (cgroups(7)) has lines ``ID:CONTROLLERS:PATH``; cgroup v2 has one line ``0::PATH``.
systemd names the leaf ``NAME.service`` or ``NAME.scope``; container runtimes put the
container id in it: the formats are read by ``sockets._netns.container_of``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from portscope.sockets._netns import container_of

_UNIT = re.compile(r"([^/]+\.(?:service|scope|socket|mount|swap|timer))(?:/|$)")


@dataclass(frozen=True, slots=True)
class CgroupInfo:
    """What a process's cgroup path says about where it runs.

    Attributes:
        path: the cgroup path (v2 line, else the ``name=systemd`` line), or ``None``.
        unit: the innermost systemd unit (``nginx.service``), or ``None``.
        container: ``runtime:id`` (``docker:4f1c2a9b8e7d``, id cut to 12 characters),
            or ``None``.
    """

    path: str | None
    unit: str | None
    container: str | None


def parse_cgroup(text: str) -> CgroupInfo:
    """Parse the text of a ``/proc/PID/cgroup`` file."""
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            paths[parts[1]] = parts[2]
    path = paths.get("")
    if path in (None, "/"):
        path = paths.get("name=systemd", path)
    # the one reader of container paths (``sockets._netns.container_of``, which labels
    # network namespaces too): runtime and id, monitors (conmon) excluded
    found = container_of(text)
    container = None if found is None else f"{found.runtime}:{found.id[:12]}"
    unit = None
    if path and container is None:
        units = _UNIT.findall(path)
        # user@1000.service/app.slice/x.service: the innermost unit names the process.
        unit = units[-1] if units else None
    return CgroupInfo(path=path or None, unit=unit, container=container)


def read_cgroup(pid: int, proc: Path = Path("/proc")) -> CgroupInfo:
    """Read and parse ``/proc/PID/cgroup``; all ``None`` when unreadable."""
    try:
        text = (proc / str(pid) / "cgroup").read_text()
    except OSError:
        return CgroupInfo(None, None, None)
    return parse_cgroup(text)
