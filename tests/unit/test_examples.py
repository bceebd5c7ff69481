"""The examples are written only against the public API: they type-check and run."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_examples_type_check_strictly_against_the_facade() -> None:
    if shutil.which("mypy") is None and not _has_module("mypy"):
        pytest.skip("mypy is not installed (pip install -e '.[test]')")
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(EXAMPLES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_wait_for_listener_finds_a_real_listener_and_times_out() -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        found = subprocess.run(
            [sys.executable, str(EXAMPLES / "wait_for_listener.py"), str(port), "--timeout", "5"],
            capture_output=True,
            text=True,
            check=False,
        )
    assert found.returncode == 0, found.stderr
    assert f"127.0.0.1:{port} (loopback only)" in found.stdout
    missing = subprocess.run(
        [sys.executable, str(EXAMPLES / "wait_for_listener.py"), str(port), "--timeout", "0.2"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 1 and "nothing listens" in missing.stderr


def test_exposure_report_renders_markdown() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "exposure_report.py")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.startswith("# Exposure review\n")


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def test_held_port_fixture_example_passes() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         str(EXAMPLES / "free_port_fixture.py")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout
    assert "1 passed" in out.stdout
