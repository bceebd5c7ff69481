"""Network namespaces without a kernel: cgroup paths, values, mountinfo, labels, JSON, owners."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.unit.test_socket_record import DONE, message

from portscope.errors import InvalidFilter
from portscope.models import Container, Netns, Proto, TcpState as S, to_dict
from portscope.render.sockets import SocketJson, render_ls, render_netns_summary
from portscope.sockets import Row, _netns, row_to_socket, summarize_by_netns
from portscope.sockets._diag_codec import IfNames, decode_chunk, decode_chunk_json
from portscope.sockets._owners import NetnsOwners, OwnerMap, ProcessInfo

ID = "4f1c2a9b8e7d" + "0123456789abcdef" * 3 + "0123"  # 64 hex digits
UID = "5e1d6c2a-1b2c-4d3e-9f00-123456789abc"


@pytest.mark.parametrize(
    ("cgroup", "runtime", "ident", "pod_uid"),
    [
        (f"0::/system.slice/docker-{ID}.scope", "docker", ID, None),
        (f"12:pids:/docker/{ID}\n0::/", "docker", ID, None),
        (f"0::/machine.slice/libpod-{ID}.scope/container", "podman", ID, None),
        (f"0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope",
         "podman", ID, None),
        (f"0::/libpod_parent/libpod-{ID}", "podman", ID, None),
        (f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
         f"{UID.replace('-', '_')}.slice/cri-containerd-{ID}.scope", "containerd", ID, UID),
        (f"0::/kubepods/besteffort/pod{UID}/{ID}", "containerd", ID, UID),
        (f"0::/kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice/crio-{ID}.scope",
         "cri-o", ID, UID),
        ("0::/lxc.payload.web1", "lxc", "web1", None),
        ("0::/machine.slice/machine-deb\\x2dtest.scope/payload", "systemd-nspawn",
         "deb-test", None),
    ],
)  # fmt: skip
def test_container_runtimes_are_told_by_their_cgroup_paths(
    cgroup: str, runtime: str, ident: str, pod_uid: str | None
) -> None:
    c = _netns.container_of(cgroup)
    assert c is not None
    assert (c.runtime, c.id, c.pod_uid) == (runtime, ident, pod_uid)


@pytest.mark.parametrize(
    "cgroup",
    [
        "0::/",
        "0::/system.slice/nginx.service",
        f"0::/machine.slice/libpod-conmon-{ID}.scope",  # the monitor: in the host's namespace
        f"0::/system.slice/crio-conmon-{ID}.scope",
        "0::/user.slice/user-1000.slice/session-2.scope",
    ],
)
def test_host_services_and_runtime_monitors_are_no_container(cgroup: str) -> None:
    assert _netns.container_of(cgroup) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("all", "all"), ("ps9-a", "ps9-a"), ("/run/netns/x", "/run/netns/x"), ("042", "42"),
     (7, "7"), (" web ", "web")],
)  # fmt: skip
def test_netns_values(value: str | int, expected: str) -> None:
    assert _netns.parse_netns(value) == expected


@pytest.mark.parametrize("value", ["", "0", "a/b", ".", "..", "x\0y", "n" * 256])
def test_bad_netns_values(value: str) -> None:
    with pytest.raises(InvalidFilter):
        _netns.parse_netns(value)


def test_nsfs_mounts_are_read_from_mountinfo(tmp_path: Path) -> None:
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "mountinfo").write_text(
        "44 42 0:4 net:[4026532246] /run/netns/blue rw shared:3 - nsfs nsfs rw\n"
        "45 42 0:4 net:[4026532315] /run/docker/netns/1a2b\\040c rw - nsfs nsfs rw\n"
        "46 42 0:4 mnt:[4026532999] /run/x rw - nsfs nsfs rw\n"
        "47 42 0:22 / /proc rw,nosuid - proc proc rw\n"
        "48 42 0:4 net:[4026530001] /old/kernel rw - proc proc rw\n"
    )
    assert _netns.nsfs_mounts(str(tmp_path)) == [
        (4026532246, "/run/netns/blue"),
        (4026532315, "/run/docker/netns/1a2b c"),
        (4026530001, "/old/kernel"),
    ]


def test_labels_for_tables() -> None:
    assert _netns.netns_label(None) == "-"
    assert _netns.netns_label(Netns(1, "host")) == "host"
    assert _netns.netns_label(Netns(5)) == "net:[5]"
    assert _netns.netns_label(Netns(5, None, (Container("docker", ID, "web"),))) == "docker:web"
    assert _netns.netns_label(Netns(5, None, (Container("podman", ID),))) == f"podman:{ID[:12]}"
    pod = Container("containerd", ID, "app", "api-7d9", "prod", UID)
    assert _netns.netns_label(Netns(5, None, (pod, pod))) == "k8s:prod/api-7d9"
    two = (Container("docker", ID, "a"), Container("docker", ID[::-1], "b"))
    assert _netns.netns_label(Netns(5, None, two)) == "docker:a+1"


def test_names_come_from_the_runtime_state_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / ID
    bundle.mkdir()
    (bundle / "config.json").write_text(
        json.dumps(
            {
                "annotations": {
                    "io.kubernetes.cri.container-name": "app",
                    "io.kubernetes.cri.sandbox-name": "api-7d9",
                    "io.kubernetes.cri.sandbox-namespace": "prod",
                    "io.kubernetes.cri.sandbox-uid": UID,
                }
            }
        )
    )
    monkeypatch.setattr(_netns, "_OCI_BUNDLES", (str(tmp_path / "{id}" / "config.json"),))
    monkeypatch.setattr(_netns, "_DOCKER_CONFIG", str(tmp_path / "none" / "{id}"))
    named = _netns.name_container(Container("containerd", ID), {})
    assert named == Container("containerd", ID, "app", "api-7d9", "prod", UID)
    # absent or unreadable state: the container stays unnamed, no error
    assert _netns.name_container(Container("cri-o", "f" * 64), {}) == Container("cri-o", "f" * 64)
    (bundle / "config.json").write_text("{not json")
    assert _netns.name_container(Container("containerd", ID), {}).name is None


NS = Netns(4026532999, 'ns "x"\\', (Container("docker", ID, "w\x1b[31m", None, None, None),))
ROW = Row(Proto.TCP, 4, S.LISTEN, "0.0.0.0", 80, None, None, 0, 128, 0, 77, None, None, 1, NS)


def test_netns_json_is_to_dict_of_the_model_in_both_writers() -> None:
    line = json.loads(SocketJson(None, None).lines([ROW])[0])
    assert line["netns"] == to_dict(NS) == {
        "inode": 4026532999,
        "name": 'ns "x"\\',
        "containers": [{"runtime": "docker", "id": ID, "name": "w\x1b[31m", "pod": None,
                        "pod_namespace": None, "pod_uid": None}],
    }  # fmt: skip
    assert to_dict(row_to_socket(ROW)) == {k: v for k, v in line.items() if k != "service"}
    data = message(4, 10, 80, 0, "0.0.0.0", None, cookie=1, inode=77, wq=128, uid=0) + DONE
    rows: list[Row] = []
    decode_chunk(data, 4, Proto.TCP, rows, set(), IfNames(), NS)
    assert rows == [ROW]
    fused: list[str] = []
    decode_chunk_json(data, 4, Proto.TCP, fused, set(), None, IfNames(), NS)
    assert json.loads(fused[0]) == line


def test_interface_names_come_from_the_namespace_lookup() -> None:
    names = IfNames(lambda index: f"ns-if{index}")
    assert names[3] == "ns-if3" and names[3] == "ns-if3"


def test_owners_are_matched_in_the_rows_namespace_only() -> None:
    a, b = Netns(10, "a"), Netns(20, "b")
    in_a = ROW._replace(netns=a, inode=500)
    in_b = ROW._replace(netns=b, inode=500)  # the same number, another namespace
    info = ProcessInfo("srv", "root", None, None)
    maps = {
        10: OwnerMap.from_holders({500: [(111, 3)]}, {111: info}),
        20: OwnerMap.from_holders({}, {}),
    }
    owners = NetnsOwners(maps)
    assert owners.pids(in_a) == [111] and owners.pids(in_b) == []
    assert [o.pid for o in owners.owners(in_a)] == [111] and owners.owners(in_b) == ()
    assert owners.process(111) == info and owners.complete
    partial = NetnsOwners(maps, denied=2)
    assert partial.complete is False and "2 processes" in (partial.note() or "")
    line = json.loads(SocketJson(owners, None).lines([in_a])[0])
    assert [o["pid"] for o in line["owners"]] == [111]


def test_summary_and_tables_per_namespace() -> None:
    a, b, empty = Netns(10, "host"), Netns(20, None, (Container("docker", ID, "web"),)), Netns(30)
    rows = [
        ROW._replace(netns=a),
        ROW._replace(netns=b, proto=Proto.UDP, state=S.UNCONN),
        ROW._replace(netns=b),
    ]
    summary = summarize_by_netns(rows, [a, b, empty])
    assert [(s["netns"]["inode"], s["total"]) for s in summary] == [(10, 1), (20, 2), (30, 0)]
    assert summary[1]["by_proto"]["udp"]["states"] == {"UNCONN": 1}
    table = render_netns_summary(summary)
    assert [r[0] for r in table.rows] == ["host", "docker:web", "net:[30]"]
    assert [r[4] for r in table.rows] == ["1", "2", "0"]
    ls = render_ls(rows, owners=None, service=None, netns=True)
    assert ls.columns[0].header == "Netns"
    assert [r[0] for r in ls.rows] == ["host", "docker:web", "docker:web"]
    assert render_ls(rows, owners=None, service=None).columns[0].header == "Proto"


def test_one_walk_replies_are_split_by_family() -> None:
    """TCPDIAG_GETSOCK answers IPv4 and IPv6 in one dump, typed 18: split and retyped."""

    def retype(msg: bytes) -> bytes:
        return msg[:4] + (18).to_bytes(2, "little") + msg[6:]

    m4 = message(4, 10, 80, 0, "0.0.0.0", None, cookie=1, inode=5)
    m6 = message(6, 10, 443, 0, "::", None, cookie=2, inode=6, v6only=True)
    m4b = message(4, 1, 22, 4000, "10.0.0.1", "10.0.0.2", cookie=3, inode=7)
    v4, v6 = _netns.split_families(retype(m4) + retype(m6) + retype(m4b) + DONE)
    assert v4 == m4 + m4b + DONE and v6 == m6 + DONE
    rows4: list[Row] = []
    rows6: list[Row] = []
    assert decode_chunk(v4, 4, Proto.TCP, rows4, set()) is True
    assert decode_chunk(v6, 6, Proto.TCP, rows6, set()) is True
    assert [(r.local_port, r.family) for r in rows4 + rows6] == [(80, 4), (22, 4), (443, 6)]
    assert rows6[0].v6only is True
