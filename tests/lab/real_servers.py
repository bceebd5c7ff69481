"""Real servers on 127.0.0.1 for identification tests and the ``-sV`` benchmark.

Each ``start_*`` function starts one server from its Debian (or PyPI) package in its own
temporary directory, on a port it is given, waits until the port accepts a connection,
and returns a ``Running`` whose ``stop()`` ends it by PID (SIGTERM, then SIGKILL) and
removes the directory. A missing program raises ``Missing`` with the reason, so a test can
skip with it. Traffic: loopback only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["SERVERS", "Missing", "Running", "free_port", "port_if_free"]

START_TIMEOUT_S = 30.0


class Missing(Exception):
    """The server's program is not installed (the message says which and where from)."""


@dataclass
class Running:
    """One started server.

    Attributes:
        name: the fixture's name (``nginx-http``).
        port: the TCP port on 127.0.0.1.
        proc: the process (its PID is what ``stop`` signals).
        tmp: the temporary directory, removed by ``stop``.
        expect: what identification must say: ``service``, ``product``, ``version``
            (``None`` where the protocol does not reveal it), ``tls``.
    """

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    tmp: str
    expect: dict[str, object] = field(default_factory=dict)

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        shutil.rmtree(self.tmp, ignore_errors=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_if_free(*candidates: int) -> int:
    """The first candidate port free on 127.0.0.1, else any free port."""
    for port in candidates:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


def _which(name: str, *extra_dirs: str) -> str:
    path = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), *extra_dirs]))
    if path is None:
        raise Missing(f"{name} is not installed (scripts/install-test-deps installs it)")
    return path


def _wait_port(proc: subprocess.Popen[bytes], port: int, name: str, log: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}: {_tail(log)}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{name} did not listen on 127.0.0.1:{port} in {START_TIMEOUT_S} s")


def _tail(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read()[-600:].decode("utf-8", "replace")
    except OSError:
        return ""


def _spawn(
    name: str, argv: list[str], port: int, tmp: str, expect: dict[str, object], **kw: object
) -> Running:
    log = os.path.join(tmp, "server.log")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            **kw,  # type: ignore[call-overload]
        )
    try:
        _wait_port(proc, port, name, log)
    except BaseException:
        Running(name, port, proc, tmp).stop()
        raise
    return Running(name, port, proc, tmp, expect)


def _tmp(name: str) -> str:
    path = tempfile.mkdtemp(prefix=f"ps17-{name}-")
    os.chmod(path, 0o755)
    return path


def _version(argv: list[str], pattern: str) -> str | None:
    import re

    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    m = re.search(pattern, out.stdout + out.stderr)
    return m.group(1) if m else None


def make_cert(tmp: str, cn: str = "portscope.test") -> tuple[str, str]:
    """A self-signed certificate and key made with openssl (SAN: the name and 127.0.0.1)."""
    openssl = _which("openssl")
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", key, "-out", cert, "-days", "30", "-subj",
         f"/CN={cn}/O=portscope tests", "-addext", f"subjectAltName=DNS:{cn},IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


def start_nginx(port: int, *, tls: bool = False, name: str = "nginx-http") -> Running:
    nginx = _which("nginx", "/usr/sbin")
    tmp = _tmp(name)
    ssl = ""
    if tls:
        cert, key = make_cert(tmp)
        ssl = f" ssl;\n ssl_certificate {cert};\n ssl_certificate_key {key}"
    page = "<html><head><title>portscope identify test</title></head><body>ok</body></html>"
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(
            f"daemon off;\nmaster_process on;\nworker_processes 1;\npid {tmp}/nginx.pid;\n"
            f"error_log {tmp}/error.log;\nevents {{ worker_connections 64; }}\n"
            f"http {{\n access_log off;\n client_body_temp_path {tmp}/body;\n"
            f" proxy_temp_path {tmp}/proxy;\n fastcgi_temp_path {tmp}/fastcgi;\n"
            f" uwsgi_temp_path {tmp}/uwsgi;\n scgi_temp_path {tmp}/scgi;\n"
            f" server {{\n  listen 127.0.0.1:{port}{ssl};\n"
            f"  location / {{ default_type text/html; return 200 '{page}'; }}\n }}\n}}\n"
        )
    version = _version([nginx, "-v"], r"nginx/(\S+)")
    expect = {"service": "http", "product": "nginx", "version": version, "tls": tls}
    return _spawn(name, [nginx, "-p", tmp, "-c", conf], port, tmp, expect)


def start_redis(port: int) -> Running:
    redis = _which("redis-server")
    tmp = _tmp("redis")
    version = _version([redis, "--version"], r"v=(\S+)")
    argv = [redis, "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp, "--save", "",
            "--appendonly", "no", "--daemonize", "no", "--logfile", ""]  # fmt: skip
    expect = {"service": "redis", "product": "Redis", "version": version}
    return _spawn("redis", argv, port, tmp, expect)


def start_memcached(port: int) -> Running:
    memcached = _which("memcached")
    tmp = _tmp("memcached")
    version = _version([memcached, "-V"], r"memcached (\S+)")
    argv = [memcached, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "8"]
    if os.geteuid() == 0:
        argv += ["-u", "nobody"]
    expect = {"service": "memcached", "product": "memcached", "version": version}
    return _spawn("memcached", argv, port, tmp, expect)


def start_postgresql(port: int) -> Running:
    pg_dirs = sorted(
        (os.path.join("/usr/lib/postgresql", d, "bin") for d in os.listdir("/usr/lib/postgresql")),
        reverse=True,
    ) if os.path.isdir("/usr/lib/postgresql") else []  # fmt: skip
    initdb = _which("initdb", *pg_dirs)
    postgres = _which("postgres", *pg_dirs)
    tmp = _tmp("postgresql")
    data = os.path.join(tmp, "data")
    kw: dict[str, object] = {}
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            raise Missing("no 'postgres' user to run PostgreSQL as (install postgresql)") from None
        os.chown(tmp, user.pw_uid, user.pw_gid)
        kw = {"user": user.pw_uid, "group": user.pw_gid}
    subprocess.run(
        [initdb, "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"],
        check=True, capture_output=True, timeout=120, cwd=tmp, **kw,  # type: ignore[call-overload]
    )  # fmt: skip
    argv = [postgres, "-D", data, "-p", str(port), "-k", tmp, "-c", "listen_addresses=127.0.0.1",
            "-c", "fsync=off", "-c", "shared_buffers=16MB", "-c", "max_connections=20"]  # fmt: skip
    expect = {"service": "postgresql", "product": "PostgreSQL", "version": None}
    return _spawn("postgresql", argv, port, tmp, expect, cwd=tmp, **kw)


def start_mariadb(port: int) -> Running:
    install = _which("mariadb-install-db", "/usr/bin")
    mariadbd = _which("mariadbd", "/usr/sbin")
    tmp = _tmp("mariadb")
    data = os.path.join(tmp, "data")
    user = "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
    subprocess.run(
        [install, "--no-defaults", f"--datadir={data}", f"--user={user}",
         "--auth-root-authentication-method=normal", "--skip-test-db"],
        check=True, capture_output=True, timeout=120, cwd=tmp,
    )  # fmt: skip
    version = _version([mariadbd, "--version"], r"Ver (\d+\.\d+\.\d+)")
    argv = [mariadbd, "--no-defaults", f"--datadir={data}", f"--user={user}",
            "--skip-networking=0", f"--port={port}", "--bind-address=127.0.0.1",
            f"--socket={tmp}/mysqld.sock", f"--pid-file={tmp}/mysqld.pid",
            "--innodb-buffer-pool-size=8M", "--skip-log-bin",
            f"--log-error={tmp}/error.log"]  # fmt: skip
    expect = {"service": "mysql", "product": "MariaDB", "version": version}
    return _spawn("mariadb", argv, port, tmp, expect, cwd=tmp)


def start_sshd(port: int, *, name: str = "sshd") -> Running:
    sshd = _which("sshd", "/usr/sbin")
    keygen = _which("ssh-keygen")
    tmp = _tmp(name)
    key = os.path.join(tmp, "host_ed25519")
    subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", key], check=True, timeout=30)
    os.makedirs("/run/sshd", exist_ok=True) if os.geteuid() == 0 else None
    conf = os.path.join(tmp, "sshd_config")
    with open(conf, "w") as f:
        f.write(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {key}\nPidFile {tmp}/sshd.pid\n"
            "UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PubkeyAuthentication no\nAuthorizedKeysFile none\n"
        )
    version = _version([sshd, "-V"], r"OpenSSH_(\S+?),")
    expect = {"service": "ssh", "product": "OpenSSH", "version_prefix": version}
    return _spawn(name, [sshd, "-D", "-e", "-f", conf], port, tmp, expect)


def start_mosquitto(port: int) -> Running:
    mosquitto = _which("mosquitto", "/usr/sbin")
    tmp = _tmp("mosquitto")
    conf = os.path.join(tmp, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n"
        )
    version = _version([mosquitto, "-h"], r"mosquitto version (\S+)")
    expect = {"service": "mqtt", "product": "mosquitto", "version": version}
    return _spawn("mosquitto", [mosquitto, "-c", conf], port, tmp, expect)


def start_smtp(port: int) -> Running:
    try:
        import aiosmtpd
    except ImportError:
        raise Missing("aiosmtpd is not installed (pip install -e '.[test]')") from None
    tmp = _tmp("smtp")
    argv = [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}"]
    expect = {"service": "smtp", "product": "aiosmtpd", "version": aiosmtpd.__version__}
    return _spawn("smtp", argv, port, tmp, expect)


def start_ftp(port: int) -> Running:
    try:
        import pyftpdlib
    except ImportError:
        raise Missing("pyftpdlib is not installed (pip install -e '.[test]')") from None
    tmp = _tmp("ftp")
    argv = [sys.executable, "-m", "pyftpdlib", "-i", "127.0.0.1", "-p", str(port), "-d", tmp]
    expect = {"service": "ftp", "product": "pyftpdlib", "version": pyftpdlib.__ver__}
    return _spawn("ftp", argv, port, tmp, expect)


def _http_on_redis_port() -> Running:
    run = start_nginx(port_if_free(6379), name="http-on-6379")
    run.expect["not"] = "redis"
    return run


def _ssh_on_https_alt() -> Running:
    run = start_sshd(port_if_free(8443, 4443, 9443), name="ssh-on-https-alt")
    run.expect["not"] = "https-alt"
    return run


# name -> starter on a free port; order is the table order in the benchmark
SERVERS: dict[str, Callable[[], Running]] = {
    "nginx-http": lambda: start_nginx(free_port()),
    "nginx-tls": lambda: start_nginx(free_port(), tls=True, name="nginx-tls"),
    "redis": lambda: start_redis(free_port()),
    "postgresql": lambda: start_postgresql(free_port()),
    "mariadb": lambda: start_mariadb(free_port()),
    "sshd": lambda: start_sshd(free_port()),
    "memcached": lambda: start_memcached(free_port()),
    "mosquitto": lambda: start_mosquitto(free_port()),
    "smtp": lambda: start_smtp(free_port()),
    "ftp": lambda: start_ftp(free_port()),
    "http-on-6379": _http_on_redis_port,
    "ssh-on-https-alt": _ssh_on_https_alt,
}
