"""A connect scan of the lab's network under bounded CPU load answers like the lab's truth.

The single-process run of ``bench/bench_dask.py`` (4,096 lab addresses x the top 100) once
called 96 ports of the scan's first address filtered at load average 5: that host's RTO came
from answers taken while the machine was idle, and once the kernel answered more slowly,
every try of it expired (see ``Scheduler._lift``; the deterministic reproduction is
``tests/integration/test_scan_engine.py::test_a_host_timed_on_an_idle_start_...``). Here
the real thing, kept short: busy loops on every CPU (bounded in time, stopped by PID), a
/26 of the lab's network x the top 100 ports, every port compared with the truth.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

import lab as labmod

pytestmark = pytest.mark.root

BURN_S = 25  # every busy loop ends by itself after this, whatever happens to the test
_BUSY = "import time\nend = time.monotonic() + float(__import__('sys').argv[1])\n" + (
    "while time.monotonic() < end:\n    pass\n"
)


@pytest.fixture(scope="module")
def network_lab() -> Iterator[labmod.Lab]:
    if os.geteuid() != 0 or labmod.missing_tools():
        pytest.skip("the scan lab needs root and ip/nft (scripts/install-test-deps)")
    with labmod.running(prefix="psacc", network=True) as lb:
        lb.check_no_default_route()
        yield lb


@pytest.fixture
def cpu_load() -> Iterator[int]:
    """Two busy loops pinned to each CPU (the load average of the machine it failed on)."""
    cpus = sorted(os.sched_getaffinity(0))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for cpu in cpus * 2:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", _BUSY, str(BURN_S)],
                    preexec_fn=lambda cpu=cpu: os.sched_setaffinity(0, {cpu}),  # type: ignore[misc]
                )
            )
        yield len(procs)
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait(timeout=10)


def test_network_scan_under_cpu_load_equals_truth(network_lab: labmod.Lab, cpu_load: int) -> None:
    from portscope.registry import top_ports

    lb = network_lab
    ports = sorted(int(p) for p in top_ports(100, "tcp"))
    net = "198.18.16.0/26"
    proc = lb.exec(
        [sys.executable, "-m", "portscope", "scan", "--json", "-p", ",".join(map(str, ports)), net],
        timeout_s=60,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    got = {(d["address"], d["port"]): d["state"] for d in lines if d["type"] == "port"}
    addresses = lb.network_addresses()[:64]
    wrong = [
        (address, port, got.get((address, port), "closed"), lb.network_expected(address, port))
        for address in addresses
        for port in ports
        if got.get((address, port), "closed") != lb.network_expected(address, port)
    ]
    assert wrong == [], f"{len(wrong)} wrong under load {os.getloadavg()[0]:.1f}: {wrong[:5]}"
    [summary] = [d for d in lines if d["type"] == "summary"]
    assert summary["coverage"]["not_scanned"] == 0 and summary["coverage"]["undecided"] == 0
