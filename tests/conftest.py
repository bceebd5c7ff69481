"""Shared test setup: the root marker and paths to shared reference data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# ../shared beside the checkout holds reference data (the IANA registry CSV).
SHARED_DATA = REPO.parent / "shared" / "data"
IANA_CSV = SHARED_DATA / "service-names-port-numbers.csv"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (network namespaces / raw sockets); CI runs as root")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)
