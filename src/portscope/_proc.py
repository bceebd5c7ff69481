"""The one reader of ``/proc`` facts: process start times, sysctls, capabilities.

Sources (Linux): proc(5) for ``/proc/PID/stat`` and ``/proc/stat``; ``/proc/sys`` is the
sysctl tree, documented in ``Documentation/networking/ip-sysctl.rst`` (``net.ipv4.*``,
``net.ipv6.*``); capabilities are ``CapEff`` in ``/proc/PID/status`` (proc(5),
capabilities(7), bit numbers from ``include/uapi/linux/capability.h``).

Every function reads when called (importing this module does no I/O); none raises for a
missing or unreadable file: an absent fact is ``None`` (or the caller's default).

A process is identified by ``(pid, start_ticks)``: ``starttime`` (field 22 of
``/proc/PID/stat``) counts clock ticks since boot and never changes, while the wall-clock
start time adds ``btime`` from ``/proc/stat``, which the kernel derives from the current
clock and which moves when the clock is stepped. Compare ticks, show times.
"""

from __future__ import annotations

import os
from functools import lru_cache

# Plain strings, no pathlib: ``portscope lookup``'s fast path reads the sysctls through here.
StrPath = str | os.PathLike[str]
PROC: StrPath = "/proc"


def _bytes(proc: StrPath, *parts: str) -> bytes:
    with open(os.path.join(proc, *parts), "rb") as f:
        return f.read()


# include/uapi/linux/capability.h
CAP_KILL = 5
CAP_NET_BIND_SERVICE = 10
CAP_NET_ADMIN = 12
CAP_NET_RAW = 13
CAP_SYS_PTRACE = 19


# --- processes ----------------------------------------------------------------------------


def _stat_fields(pid: int, proc: StrPath) -> list[bytes] | None:
    """Fields 3.. of ``/proc/PID/stat`` (after ``comm``, which may hold spaces and ``)``)."""
    try:
        raw = _bytes(proc, str(pid), "stat")
    except OSError:
        return None
    return raw[raw.rfind(b")") + 2 :].split()


def start_ticks(pid: int, proc: StrPath = PROC) -> int | None:
    """When process ``pid`` started, in clock ticks after boot (``starttime``, field 22 of
    ``/proc/PID/stat``, proc(5)).

    Stable for the life of the process: ``(pid, start_ticks)`` tells a reused pid from the
    process seen earlier.

    Returns:
        The ticks, or ``None`` when the process is gone or the file unreadable.
    """
    fields = _stat_fields(pid, proc)
    try:
        return int(fields[19]) if fields is not None else None  # field 22; [0] is field 3
    except (IndexError, ValueError):
        return None


def process_state(pid: int, proc: StrPath = PROC) -> str | None:
    """The state letter of ``pid`` (field 3 of ``/proc/PID/stat``: ``R``, ``S``, ``Z`` ...),
    or ``None`` when it is gone."""
    fields = _stat_fields(pid, proc)
    return fields[0].decode("ascii", "replace") if fields else None


def parent_pid(pid: int, proc: StrPath = PROC) -> int | None:
    """The parent of ``pid`` (``ppid``, field 4 of ``/proc/PID/stat``), or ``None``."""
    fields = _stat_fields(pid, proc)
    try:
        return int(fields[1]) if fields is not None else None
    except (IndexError, ValueError):
        return None


def process_name(pid: int, proc: StrPath = PROC) -> str | None:
    """``/proc/PID/comm`` (readable for every process, proc(5)), or ``None``."""
    try:
        return _bytes(proc, str(pid), "comm").rstrip(b"\n").decode("utf-8", "replace")
    except OSError:
        return None


def cgroup_text(pid: int, proc: StrPath = PROC) -> str | None:
    """The text of ``/proc/PID/cgroup`` (cgroups(7): ``ID:CONTROLLERS:PATH`` lines; undecodable
    bytes as surrogates), or ``None`` when the process is gone or unreadable."""
    try:
        return _bytes(proc, str(pid), "cgroup").decode("utf-8", "surrogateescape")
    except OSError:
        return None


def process_uid(pid: int, proc: StrPath = PROC) -> int | None:
    """The real uid of ``pid`` (the owner of ``/proc/PID``), or ``None`` when it is gone."""
    try:
        return os.stat(os.path.join(proc, str(pid))).st_uid
    except OSError:
        return None


@lru_cache(maxsize=4)
def clock_ticks_per_s() -> int:
    """``sysconf(_SC_CLK_TCK)``: the unit of ``/proc/PID/stat`` times (100 on Linux)."""
    try:
        return os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError):
        return 100


def boot_time(proc: StrPath = PROC) -> float | None:
    """The boot time, seconds since the epoch (``btime`` of ``/proc/stat``, proc(5))."""
    try:
        with open(os.path.join(proc, "stat"), "rb") as f:
            for line in f:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def ticks_to_epoch(ticks: int, boot_s: float) -> float:
    """Start ticks as seconds since the epoch, rounded to 0.01 s (the tick is 10 ms)."""
    return round(boot_s + ticks / clock_ticks_per_s(), 2)


def start_time(pid: int, proc: StrPath = PROC) -> float | None:
    """When process ``pid`` started, seconds since the epoch: ``btime`` + ``starttime`` /
    ``CLK_TCK`` (proc(5)), rounded to 0.01 s. For display; compare ``start_ticks``.

    Returns:
        The time, or ``None`` when the process is gone or unreadable.
    """
    ticks = start_ticks(pid, proc)
    boot = boot_time(proc)
    if ticks is None or boot is None:
        return None
    return ticks_to_epoch(ticks, boot)


# --- sysctls ------------------------------------------------------------------------------


def sysctl_text(name: str, proc: StrPath = PROC) -> str | None:
    """The value of a sysctl as text (``net.ipv4.ip_local_port_range`` or
    ``net/ipv4/ip_local_port_range``), from ``/proc/sys`` (ip-sysctl.rst).

    Returns:
        The stripped text, or ``None`` when unreadable (no such sysctl, not Linux).
    """
    relative = name.replace(".", "/") if "/" not in name else name
    try:
        return _bytes(proc, "sys", relative).decode().strip()
    except (OSError, UnicodeDecodeError):
        return None


def sysctl_ints(name: str, proc: StrPath = PROC) -> tuple[int, ...] | None:
    """A sysctl of whitespace-separated integers (``ip_local_port_range``: two).

    Returns:
        The integers, or ``None`` when unreadable or not integers.
    """
    text = sysctl_text(name, proc)
    if text is None:
        return None
    try:
        return tuple(int(word) for word in text.split())
    except ValueError:
        return None


def sysctl_int(name: str, default: int, proc: StrPath = PROC) -> int:
    """An integer sysctl (``net.ipv6.bindv6only``, ``net.ipv4.tcp_tw_reuse``), or
    ``default`` when unreadable."""
    values = sysctl_ints(name, proc)
    return values[0] if values else default


def ip_local_port_range(proc: StrPath = PROC) -> tuple[int, int] | None:
    """``net.ipv4.ip_local_port_range``: the ephemeral ports (low, high), ip-sysctl.rst."""
    values = sysctl_ints("net.ipv4.ip_local_port_range", proc)
    return (values[0], values[1]) if values is not None and len(values) == 2 else None


def ip_unprivileged_port_start(proc: StrPath = PROC) -> int | None:
    """``net.ipv4.ip_unprivileged_port_start``: the first port binding needs no
    CAP_NET_BIND_SERVICE for (Linux 4.11+; 1024 by default), ip-sysctl.rst."""
    values = sysctl_ints("net.ipv4.ip_unprivileged_port_start", proc)
    return values[0] if values else None


def ip_local_reserved_ports(proc: StrPath = PROC) -> str | None:
    """``net.ipv4.ip_local_reserved_ports`` as written (``8080,9000-9100``), ip-sysctl.rst."""
    return sysctl_text("net.ipv4.ip_local_reserved_ports", proc)


# --- capabilities -------------------------------------------------------------------------


def cap_effective(pid: int | str = "self", proc: StrPath = PROC) -> int | None:
    """The effective capability mask (``CapEff`` of ``/proc/PID/status``, proc(5)).

    Returns:
        The mask, or ``None`` when it cannot be read (not Linux, process gone).
    """
    try:
        for line in _bytes(proc, str(pid), "status").decode().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        return None
    return None


def has_capability(bit: int, proc: StrPath = PROC) -> bool:
    """True when this process holds capability ``bit`` (``CAP_NET_BIND_SERVICE`` ...,
    capabilities(7)), or is euid 0 where capabilities cannot be read."""
    mask = cap_effective("self", proc)
    if mask is None:
        return os.geteuid() == 0
    return bool(mask >> bit & 1)


def tcp_ext_counters(names: tuple[str, ...], proc: StrPath = PROC) -> dict[str, int] | None:
    """Counters of the ``TcpExt`` line pair of ``/proc/net/netstat`` (what ``nstat``
    shows as ``TcpExtNAME``; ``include/uapi/linux/snmp.h``), e.g. ``ListenOverflows``,
    ``ListenDrops``: cumulative since boot, for this network namespace.

    Returns:
        name -> value for the ``names`` found; ``None`` when the file is unreadable.
    """
    try:
        lines = _bytes(proc, "net", "netstat").decode("ascii", "replace").splitlines()
    except OSError:
        return None
    from itertools import pairwise

    for head, values in pairwise(lines):
        if head.startswith("TcpExt:") and values.startswith("TcpExt:"):
            row = dict(zip(head.split()[1:], values.split()[1:], strict=False))
            return {n: int(row[n]) for n in names if n in row and row[n].isdigit()}
    return None
