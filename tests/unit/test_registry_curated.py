"""The curated table: size, the de-facto ports people meet, security notes, shape."""

from __future__ import annotations

import pytest

from portscope.registry._curated import curated_entries
from portscope.registry._layout import PROTOS

ENTRIES = curated_entries()
BY_PORT = {(e.port, e.proto): e for e in ENTRIES}


def test_at_least_200_services() -> None:
    assert len({(e.port, e.name) for e in ENTRIES}) >= 200


def test_shape() -> None:
    seen = set()
    for port, end, proto, name, aliases, description, source, _notes, freq in ENTRIES:
        assert 0 <= port <= 65535 and (end is None or port < end <= 65535)
        assert proto in PROTOS
        assert name and name == name.strip() and " " not in name
        assert all(a and " " not in a for a in aliases)
        assert description and "\n" not in description
        assert source == "curated" and freq is None
        key = (port, proto)
        assert key not in seen, f"{key} listed twice"
        seen.add(key)


@pytest.mark.parametrize(
    ("port", "name"),
    [
        (3000, "dev-http"),
        (5000, "dev-http"),
        (8000, "http-alt"),
        (8080, "http-alt"),
        (8443, "https-alt"),
        (9090, "prometheus"),
        (9200, "elasticsearch"),
        (2375, "docker"),
        (2376, "docker-s"),
        (6443, "kube-apiserver"),
        (10250, "kubelet"),
        (2379, "etcd-client"),
        (2380, "etcd-server"),
        (9092, "kafka"),
        (11211, "memcache"),
        (25565, "minecraft"),
        (5900, "vnc"),
        (5432, "postgresql"),
        (22, "ssh"),
    ],
)
def test_de_facto_ports(port: int, name: str) -> None:
    assert BY_PORT[(port, "tcp")][3] == name


@pytest.mark.parametrize("port", [21, 23, 110, 143, 512, 513, 514, 80])
def test_plaintext_protocols_are_flagged(port: int) -> None:
    notes = BY_PORT[(port, "tcp")][7]
    assert notes is not None and ("Plaintext" in notes or "plaintext" in notes), port


@pytest.mark.parametrize("port", [2375, 3306, 5432, 6379, 9200, 11211, 27017, 2379, 10250])
def test_exposure_notes_for_databases_caches_and_apis(port: int) -> None:
    notes = BY_PORT[(port, "tcp")][7]
    assert notes, port


def test_transports() -> None:
    assert (53, "udp") in BY_PORT and (53, "tcp") in BY_PORT
    assert (51820, "udp") in BY_PORT and (51820, "tcp") not in BY_PORT
    assert (443, "udp") in BY_PORT  # HTTP/3
