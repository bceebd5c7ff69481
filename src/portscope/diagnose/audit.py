"""Exposure review of this machine's listeners: what others can reach, and what it risks.

``audit_sockets`` is a pure function over sockets (unit-testable); ``audit`` reads the
live table. Rules, each with a stable id used in JSON output:

- ``exposed``: a listener on all interfaces or a non-loopback address (info).
- ``plaintext``: a protocol that sends credentials in clear text, exposed (high).
- ``datastore-exposed``: a database, cache, queue or admin API on an exposed address.
- ``root-exposed``: an exposed listener whose process runs as root (medium).
- ``unknown-system-port``: a listener in the System range (0-1023) no registry knows.
- ``no-auth`` (with identification): a datastore or broker answered our probe without
  authentication (Redis ``+PONG``, memcached ``version``, Elasticsearch ``GET /``, MQTT
  anonymous CONNACK): high when exposed, low on loopback (any local user or an SSRF
  reaches it).
- ``service-mismatch`` (with identification, info): a datastore's default port speaks
  another protocol (6379 answering HTTP is not Redis); the datastore finding is dropped.

With identification (``audit(identify=True)``, ``portscope audit --identify``), a TCP
listener's kind comes from the protocol that answered (``portscope.identify``, confirmed
matches only) before the process name and the default port.
- ``accept-queue-full``: a TCP listener whose accept queue is full (Recv-Q above the
  backlog, ``sockets.overflow``): its new connections are dropped (medium).
- ``dnat-published``: a port a DNAT rule forwards (a container's published port) that is
  open from outside although no local socket listens (``audit`` with the firewall read).

``audit`` also reads the host firewall (``diagnose.exposure.apply_firewall``): a finding
the firewall blocks from outside drops to low, with the deciding rule as evidence.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from portscope.diagnose._common import (
    holder_text,
    is_listener,
    owners_text,
    reach,
    read_sockets,
    scope_text,
)
from portscope.models import Proto, Socket
from portscope.sockets.overflow import accept_queue_full

if TYPE_CHECKING:
    from portscope.identify import Identity

RULES: tuple[str, ...] = (
    "exposed",
    "plaintext",
    "datastore-exposed",
    "root-exposed",
    "unknown-system-port",
    "no-auth",
    "service-mismatch",
    "accept-queue-full",
    "dnat-published",
)


class Severity(enum.StrEnum):
    """How much a finding matters, lowest first; ``rank`` orders them."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 (info) to 4 (critical)."""
        return _RANKS[self]

    @classmethod
    def parse(cls, text: str) -> Severity:
        """A severity from its name, any case.

        Raises:
            InvalidInput: not one of info, low, medium, high, critical.
        """
        try:
            return cls(text.strip().lower())
        except ValueError:
            from portscope.errors import InvalidInput

            names = ", ".join(s.value for s in cls)
            raise InvalidInput(f"{text!r} is not a severity: use one of {names}") from None


_RANKS = {s: i for i, s in enumerate(Severity)}


@dataclass(frozen=True, slots=True)
class Finding:
    """One audit finding, with its evidence.

    Attributes:
        rule: the rule's stable id (``datastore-exposed`` ...).
        severity: how much it matters.
        title: one line.
        socket: the listening socket (its owners are the process evidence).
        service: what the port is taken to be (``redis``): a ``--hint``, the process name
            (``redis-server``), a datastore's default port, or the registry's name for the
            port; ``None`` when nothing names it.
        scope: the bind scope in the listening view's words (``portscope.sockets.
            bind_scope``: "all interfaces (IPv4)", "loopback only", "192.0.2.2 only" ...).
        why: why it matters.
        fix: what to do.
        process: the holders as ``name[pid]``, or ``None`` when no process is visible.
        registered: the registry's name for the port (``port registered to X``: what the
            port is assigned to, not what runs there), or ``None``.
        exposed: True when other hosts can reach the address (not loopback).
        confirmed_by: with identification, what the service answered (``redis probe:
            +PONG``), escaped; ``None`` when not probed or not identified.
        firewall: the host firewall's verdict for new connections from outside
            (``filtered from outside``, ``open from outside``, ``not read (...)``), or
            ``None`` when not evaluated.
        firewall_rule: the deciding rule or policy (evidence), or ``None``.
    """

    rule: str
    severity: Severity
    title: str
    socket: Socket
    service: str | None
    scope: str
    why: str
    fix: str
    process: str | None = None
    registered: str | None = None
    exposed: bool = True
    confirmed_by: str | None = None
    firewall: str | None = None
    firewall_rule: str | None = None


@dataclass(frozen=True, slots=True)
class _Kind:
    label: str
    severity: Severity
    why: str
    fix: str


_DB_FIX = "bind it to 127.0.0.1 (or a private address) and firewall the port"
# Services that must not be open to the network (port -> kind), with their default ports.
DATASTORES: Mapping[str, _Kind] = {
    "mysql": _Kind(
        "MySQL",
        Severity.MEDIUM,
        "database logins are brute-forced from the internet",
        "set bind-address=127.0.0.1 in my.cnf, or firewall 3306",
    ),
    "postgresql": _Kind(
        "PostgreSQL",
        Severity.MEDIUM,
        "database logins are brute-forced from the internet",
        "set listen_addresses='localhost' in postgresql.conf, or firewall 5432",
    ),
    "redis": _Kind(
        "Redis",
        Severity.HIGH,
        "Redis has no authentication by default; anyone reaching it can read data and "
        "write files (a known path to remote code execution)",
        "set 'bind 127.0.0.1 ::1' and 'protected-mode yes' in redis.conf, and requirepass",
    ),
    "mongodb": _Kind(
        "MongoDB",
        Severity.HIGH,
        "older MongoDB deployments without authentication were mass-wiped and ransomed",
        "set net.bindIp: 127.0.0.1 and security.authorization: enabled",
    ),
    "elasticsearch": _Kind(
        "Elasticsearch",
        Severity.HIGH,
        "an open HTTP API to all indexed data, often without authentication",
        "set network.host: 127.0.0.1 and enable xpack security",
    ),
    "memcached": _Kind(
        "memcached",
        Severity.HIGH,
        "no authentication; UDP memcached is abused for huge DDoS amplification",
        "run with -l 127.0.0.1 -U 0",
    ),
    "docker": _Kind(
        "Docker API",
        Severity.CRITICAL,
        "the plaintext Docker API gives root on the host to anyone who reaches it",
        "remove -H tcp://0.0.0.0:2375; use the unix socket or TLS on 2376 with client certificates",
    ),
    "etcd": _Kind(
        "etcd",
        Severity.HIGH,
        "etcd holds cluster secrets; unauthenticated access exposes them all",
        "listen on 127.0.0.1 or require client certificates (--client-cert-auth)",
    ),
    "kubelet": _Kind(
        "kubelet API",
        Severity.HIGH,
        "an anonymous kubelet API allows running commands in pods",
        "set --anonymous-auth=false and --authorization-mode=Webhook; firewall 10250",
    ),
    "couchdb": _Kind(
        "CouchDB",
        Severity.HIGH,
        "an HTTP database API, admin-party mode has no authentication",
        "set bind_address = 127.0.0.1 in local.ini",
    ),
    "cassandra": _Kind(
        "Cassandra",
        Severity.MEDIUM,
        "the CQL port with default credentials gives full data access",
        "set rpc_address to a private address and enable authentication",
    ),
    "rabbitmq": _Kind(
        "RabbitMQ",
        Severity.MEDIUM,
        "message queues with default guest credentials leak data",
        "listen on a private address; remove the guest user",
    ),
    "kafka": _Kind(
        "Kafka",
        Severity.MEDIUM,
        "PLAINTEXT listeners allow anyone to read and write topics",
        "use SASL_SSL listeners or bind to a private address",
    ),
    "zookeeper": _Kind(
        "ZooKeeper",
        Severity.MEDIUM,
        "unauthenticated configuration store",
        "bind clientPortAddress to a private address",
    ),
    "influxdb": _Kind(
        "InfluxDB",
        Severity.MEDIUM,
        "a time-series database HTTP API",
        "set bind-address to 127.0.0.1 and enable auth",
    ),
    "vnc": _Kind(
        "VNC",
        Severity.HIGH,
        "remote desktop with weak or no passwords, often unencrypted",
        "tunnel it over SSH and bind to 127.0.0.1",
    ),
    "x11": _Kind(
        "X11",
        Severity.HIGH,
        "an open X server lets others read keystrokes and the screen",
        "start X with -nolisten tcp",
    ),
    "rdp": _Kind(
        "RDP",
        Severity.MEDIUM,
        "remote desktop is a top brute-force target",
        "allow it only through a VPN",
    ),
    "smb": _Kind(
        "SMB",
        Severity.HIGH,
        "file sharing exposed to the internet is a common worm vector",
        "firewall 139/445 to the local network",
    ),
    "rpcbind": _Kind(
        "rpcbind",
        Severity.MEDIUM,
        "reveals RPC services; used for DDoS amplification",
        "firewall 111 or disable rpcbind",
    ),
    "prometheus": _Kind(
        "Prometheus",
        Severity.LOW,
        "metrics and the query API reveal internal details",
        "bind to 127.0.0.1 or put authentication in front",
    ),
    "jupyter": _Kind(
        "Jupyter",
        Severity.HIGH,
        "a notebook server runs code for whoever reaches it",
        "bind to 127.0.0.1 and keep token authentication",
    ),
}
DATASTORE_PORTS: Mapping[int, str] = {
    3306: "mysql", 33060: "mysql", 5432: "postgresql", 6379: "redis", 6380: "redis",
    27017: "mongodb", 27018: "mongodb", 9200: "elasticsearch", 9300: "elasticsearch",
    11211: "memcached", 2375: "docker", 2379: "etcd", 2380: "etcd", 10250: "kubelet",
    10255: "kubelet", 5984: "couchdb", 9042: "cassandra", 5672: "rabbitmq",
    15672: "rabbitmq", 9092: "kafka", 2181: "zookeeper", 8086: "influxdb", 5900: "vnc",
    5901: "vnc", 6000: "x11", 3389: "rdp", 445: "smb", 139: "smb", 111: "rpcbind",
    9090: "prometheus", 8888: "jupyter",
}  # fmt: skip
# Process names that identify the service whatever port it uses.
DATASTORE_PROCESSES: Mapping[str, str] = {
    "mysqld": "mysql", "mariadbd": "mysql", "postgres": "postgresql",
    "redis-server": "redis", "valkey-server": "redis", "mongod": "mongodb",
    "memcached": "memcached", "dockerd": "docker", "etcd": "etcd", "kubelet": "kubelet",
    "beam.smp": "rabbitmq", "influxd": "influxdb", "Xorg": "x11", "smbd": "smb",
    "rpcbind": "rpcbind", "couchdb": "couchdb",
}  # fmt: skip
# Protocols that carry credentials in clear text (port -> name); TLS variants are fine.
PLAINTEXT: Mapping[int, str] = {
    21: "FTP", 23: "telnet", 110: "POP3", 143: "IMAP", 512: "rexec", 513: "rlogin",
    514: "rsh", 389: "LDAP", 69: "TFTP", 161: "SNMP v1/v2c", 1521: "Oracle TNS",
}  # fmt: skip
_PLAINTEXT_TCP_ONLY = frozenset({21, 23, 110, 143, 512, 513, 514, 389, 1521})


def _service_kind(sock: Socket, hints: Mapping[int, str]) -> tuple[str | None, bool]:
    """(datastore kind, identified): identified by a hint or the process name, or only
    guessed from a default port."""
    port = sock.local.port
    if port in hints:
        return hints[port], True
    for owner in sock.owners or ():
        if owner.name in DATASTORE_PROCESSES:
            return DATASTORE_PROCESSES[owner.name], True
    return DATASTORE_PORTS.get(port), False


# Identified services (portscope.identify) -> datastore kind; an identified service not
# here is no datastore (a port 6379 that speaks HTTP is not Redis).
IDENTIFIED_KINDS: Mapping[str, str] = {
    "redis": "redis", "mysql": "mysql", "postgresql": "postgresql", "mongodb": "mongodb",
    "memcached": "memcached", "elasticsearch": "elasticsearch", "opensearch": "elasticsearch",
    "amqp": "rabbitmq", "kafka": "kafka", "vnc": "vnc", "rdp": "rdp", "smb": "smb",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Maker:
    """The findings of one socket share its evidence (socket, scope, process, registry)."""

    sock: Socket
    scope: str
    process: str | None
    registered: str | None
    exposed: bool
    confirmed_by: str | None = None

    def __call__(
        self, rule: str, severity: Severity, title: str, service: str | None, why: str, fix: str
    ) -> Finding:
        return Finding(
            rule, severity, title, self.sock, service, self.scope, why, fix,
            self.process, self.registered, self.exposed, self.confirmed_by,
        )  # fmt: skip


def _no_auth(ident: Identity) -> tuple[str, str, str] | None:
    """(what answered, why it matters, fix) when the identity shows no authentication."""
    service = ident.service
    if service == "redis" and ident.facts.get("auth", "").startswith("none"):
        return (
            "Redis answered PING without authentication",
            "anyone who reaches it reads and writes every key, and CONFIG SET can write "
            "files on the host (a known path to code execution)",
            "set requirepass or ACL users (redis.conf), and bind 127.0.0.1 ::1",
        )
    if service == "memcached":
        return (
            "memcached answered 'version' without authentication",
            "anyone who reaches it reads and overwrites every cached item",
            "enable SASL (-S) or bind with -l 127.0.0.1; -U 0 disables UDP",
        )
    if service in ("elasticsearch", "opensearch") and ident.facts.get("status", "")[:3] == "200":
        return (
            f"{ident.product or service} answered GET / without authentication",
            "the HTTP API reads and deletes every index",
            "enable security (xpack.security.enabled / the security plugin)",
        )
    if service == "mqtt" and ident.facts.get("connack") == "accepted":
        return (
            "the MQTT broker accepted an anonymous CONNECT",
            "anyone who reaches it reads and publishes messages on every topic",
            "set allow_anonymous false and require passwords or client certificates",
        )
    return None


def _evidence_line(ident: Identity) -> str | None:
    if not ident.evidence:
        return None
    from portscope.render import safe

    first = ident.evidence[0]
    text = first.data[:80].decode("utf-8", "backslashreplace").rstrip("\r\n")
    return safe(f"{first.probe} probe: {text}")


def _registered(name: str | None) -> str:
    return f" (port registered to {name})" if name else ""


def _is_root(sock: Socket) -> bool:
    if sock.owners:
        return any(o.user == "root" or o.user == "0" for o in sock.owners)
    return sock.uid == 0


def audit_sockets(
    sockets: Iterable[Socket],
    *,
    service_hints: Mapping[int, str] | None = None,
    service_name: Callable[[int, str], str | None] | None = None,
    rules: Sequence[str] | None = None,
    identities: Mapping[int, Identity] | None = None,
) -> list[Finding]:
    """Review listeners (pure): exposure, plaintext protocols, datastores, root, unknown,
    and with ``identities`` what the services answered.

    Args:
        sockets: sockets of one machine; only listeners (TCP LISTEN, unconnected UDP)
            are reviewed.
        service_hints: port -> kind (a key of ``DATASTORES``, e.g. ``{16379: "redis"}``)
            for services on non-default ports.
        service_name: (port, proto) -> registry name, for the unknown-System-port rule
            (default: ``portscope.registry.service_name``).
        rules: the rule ids to run (default: all).
        identities: TCP port -> what answered there (``portscope.identify``); only
            ``confirmed`` identities change a finding.

    Returns:
        Findings, most severe first, then by port.
    """
    hints = dict(service_hints or {})
    unknown = set(hints.values()) - set(DATASTORES)
    if unknown:
        from portscope.errors import InvalidInput

        raise InvalidInput(
            f"unknown service kind(s) {sorted(unknown)}: use one of {', '.join(DATASTORES)}"
        )
    if service_name is None:
        from portscope.registry import service_name as registry_name

        service_name = registry_name
    wanted = set(rules) if rules is not None else None
    if wanted is not None and not wanted <= set(RULES):
        from portscope.errors import InvalidInput

        raise InvalidInput(
            f"unknown rule(s) {sorted(wanted - set(RULES))}: use one of {', '.join(RULES)}"
        )

    def on(rule: str) -> bool:
        return wanted is None or rule in wanted

    findings: list[Finding] = []
    seen: set[tuple[Proto, int, str, int, int]] = set()
    for sock in sockets:
        if not is_listener(sock):
            continue
        key = (sock.proto, sock.family, sock.local.address, sock.local.port, _netns_key(sock))
        if key in seen:  # SO_REUSEPORT groups: one finding per address
            continue
        seen.add(key)
        exposed = reach(sock) != "loopback"
        scope = scope_text(sock)
        port = sock.local.port
        kind, identified = _service_kind(sock, hints)
        registered = service_name(port, sock.proto.value)
        name = kind or registered
        process = owners_text(sock) if sock.owners else None
        who = holder_text(sock)
        where = f"{sock.proto.value} {sock.local} ({scope}){_in_netns(sock)}"
        reg = _registered(registered)
        ident = (identities or {}).get(port) if sock.proto is Proto.TCP else None
        if ident is not None and ident.confidence.value != "confirmed":
            ident = None
        finding = _Maker(sock, scope, process, registered, exposed,
                         _evidence_line(ident) if ident else None)  # fmt: skip
        if ident is not None and ident.service is not None:
            answered = IDENTIFIED_KINDS.get(ident.service)
            if kind is not None and answered != kind and on("service-mismatch"):
                label = DATASTORES[kind].label
                what = ident.label + (f" ({ident.product_version})" if ident.product else "")
                findings.append(
                    finding(
                        "service-mismatch",
                        Severity.INFO,
                        f"{who} on {where}: the {label} port speaks {what}, not {label}",
                        ident.label,
                        "the service was identified by its handshake; the port number misleads",
                        "nothing to fix; name the port by what runs there",
                    )
                )
            kind, identified, name = answered, True, ident.label
            no_auth = _no_auth(ident)
            if no_auth is not None and on("no-auth"):
                title, why, fix = no_auth
                findings.append(
                    finding(
                        "no-auth",
                        Severity.HIGH if exposed else Severity.LOW,
                        f"{title} on {where} ({who})",
                        ident.service,
                        why + ("" if exposed else "; loopback only: any local user or a "
                               "server-side request forgery reaches it"),
                        fix,
                    )
                )  # fmt: skip

        if exposed and on("exposed"):
            findings.append(
                finding(
                    "exposed",
                    Severity.INFO,
                    f"{who} listens on {where}{reg}",
                    name,
                    "other hosts can reach it, subject to the firewall",
                    "if only local programs use it, bind it to 127.0.0.1 / ::1",
                )
            )
        plain = PLAINTEXT.get(port)
        udp_kind = (sock.proto is Proto.UDP) == (port not in _PLAINTEXT_TCP_ONLY)
        if plain and udp_kind and exposed and on("plaintext"):
            findings.append(
                finding(
                    "plaintext",
                    Severity.HIGH,
                    f"{who} on {where}: port {port} is {plain}'s (plaintext credentials)",
                    name or plain.lower(),
                    f"{plain} sends user names and passwords unencrypted: anyone on "
                    "the path can read them",
                    "replace it with its TLS/SSH counterpart (SSH, SFTP, IMAPS 993, "
                    "POP3S 995, LDAPS 636, SNMPv3), or bind it to 127.0.0.1",
                )
            )
        if kind and exposed and on("datastore-exposed"):
            info = DATASTORES[kind]
            title = (
                f"{info.label} ({who}) reachable on {where}"
                if identified
                else f"{who} on {where}, the default {info.label} port, is reachable"
            )
            findings.append(
                finding(
                    "datastore-exposed",
                    info.severity,
                    title,
                    kind,
                    info.why,
                    info.fix or _DB_FIX,
                )
            )
        if exposed and _is_root(sock) and on("root-exposed"):
            findings.append(
                finding(
                    "root-exposed",
                    Severity.MEDIUM if port >= 1024 else Severity.LOW,
                    f"{who} runs as root on {where}{reg}",
                    name,
                    "a flaw in a network-facing root process gives an attacker the whole machine",
                    "run it as an unprivileged user (systemd User=, DynamicUser=yes; "
                    "AmbientCapabilities=CAP_NET_BIND_SERVICE for ports below 1024)",
                )
            )
        if port < 1024 and name is None and on("unknown-system-port"):
            findings.append(
                finding(
                    "unknown-system-port",
                    Severity.MEDIUM if exposed else Severity.LOW,
                    f"{who} on {where}: System port {port} is registered to no known service",
                    None,
                    "System ports (0-1023, RFC 6335) are assigned to known services; an "
                    "unknown one there is unusual and may be unwanted",
                    f"identify it: portscope who {port}; stop it if nobody needs it",
                )
            )
        if on("accept-queue-full") and accept_queue_full(sock):
            findings.append(
                finding(
                    "accept-queue-full",
                    Severity.MEDIUM,
                    f"{who} on {where}: the accept queue is full ({sock.recv_q} connections "
                    f"wait for accept(), backlog {sock.send_q})",
                    name,
                    "the application is not calling accept() fast enough: the kernel drops "
                    "new connections, which clients see as timeouts, like a firewall drop "
                    "(TcpExt ListenOverflows grows)",
                    "find why the process does not accept (busy, blocked or hung: "
                    "py-spy dump / gdb / strace -p PID); raise the backlog (listen() "
                    "argument, net.core.somaxconn) only for bursts",
                )
            )
    findings.sort(key=lambda f: (-f.severity.rank, f.socket.local.port, f.rule))
    return findings


def _netns_key(sock: Socket) -> int:
    return 0 if sock.netns is None else sock.netns.inode


def _in_netns(sock: Socket) -> str:
    if sock.netns is None:
        return ""
    from portscope.sockets._netns import netns_label

    return f" in netns {netns_label(sock.netns)}"


def audit(
    *,
    service_hints: Mapping[int, str] | None = None,
    rules: Sequence[str] | None = None,
    identify: bool = False,
    identify_timeout_s: float = 5.0,
    netns: str | int | None = None,
    firewall: bool = True,
    notes: list[str] | None = None,
) -> list[Finding]:
    """Review this machine's listeners for exposure (see the module docstring for rules).

    Args:
        service_hints: port -> service kind for services on non-default ports
            (``{16379: "redis"}``); kinds are the keys of ``DATASTORES``.
        rules: the rule ids to run (default: all).
        identify: connect to each TCP listener (wildcard listeners on loopback) and
            identify what answers (``portscope.identify``), for the ``no-auth`` and
            ``service-mismatch`` rules and confirmed datastore kinds.
        identify_timeout_s: budget per listener for ``identify``. Default 5 s.
        netns: review the listeners of these network namespaces (``list_sockets``:
            ``all``, a name, a pid, an nsfs path); ``None``: this one. A finding's text
            names the namespace.
        firewall: read the host firewall and weigh findings by what it lets in from
            outside (needs CAP_NET_ADMIN; unreadable: findings say so, unchanged); this
            namespace's firewall only, so not with ``netns``.
        notes: when given, the socket table's notes are appended to it (process owners
            partial without privilege, a backend fallback), as ``ls`` shows them.

    Returns:
        Findings, most severe first.

    Raises:
        InvalidInput: an unknown service kind in ``service_hints``.
        BackendUnavailable: no socket-table backend works here.

    Privilege: as non-root, other users' processes are not named (no ``root-exposed``
    finding for them unless the socket's uid is 0).
    """
    if identify and netns is not None:
        from portscope.errors import InvalidInput

        raise InvalidInput(
            "--identify connects from this network namespace only: leave out -N/--netns"
        )
    table = read_sockets([Proto.TCP, Proto.UDP], owners=True, listening=True, netns=netns)
    if notes is not None:
        notes.extend(n for n in table.notes if n not in notes)
    identities: dict[int, Identity] | None = None
    if identify:
        import asyncio

        from portscope.identify import identify_many, listener_endpoints

        endpoints = listener_endpoints(table.sockets)
        found = asyncio.run(identify_many(endpoints, timeout_s=identify_timeout_s))
        identities = {}
        for ident in found:  # the first (IPv4 loopback first) or a confirmed one wins
            old = identities.get(ident.port)
            if old is None or ident.confidence.rank > old.confidence.rank:
                identities[ident.port] = ident
    findings = audit_sockets(
        table.sockets, service_hints=service_hints, rules=rules, identities=identities
    )
    if not firewall or netns is not None:
        return findings
    from portscope.diagnose.exposure import apply_firewall

    weighed = apply_firewall(findings, table.sockets)
    return [f for f in weighed if rules is None or f.rule in rules]
