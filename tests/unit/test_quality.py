"""Code quality gates from STYLE.md: mypy --strict on the package, ruff lint and format."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install -e '.[test]')")
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True, check=False
    )


def test_mypy_strict_on_the_package() -> None:
    out = _run("mypy", "src/portscope")  # strict = true in pyproject.toml
    assert out.returncode == 0, out.stdout


def test_ruff_lint() -> None:
    out = _run("ruff", "check", "src", "tests", "examples", "bench")
    assert out.returncode == 0, out.stdout


def test_ruff_format() -> None:
    out = _run("ruff", "format", "--check", "src", "tests", "examples", "bench")
    assert out.returncode == 0, out.stdout
