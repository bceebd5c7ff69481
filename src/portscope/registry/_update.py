"""The registry's sources as the user sees them, and importing the IANA CSV.

``update_registry`` downloads IANA's CSV with a conditional request (RFC 9110 section 13:
``If-None-Match``/``If-Modified-Since`` from the previous response, kept beside the file)
or imports a local copy; either way the file is validated by parsing it, then replaces
the cached copy atomically (``os.replace``), so a failed update never leaves half a file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portscope.errors import InvalidInput, RegistryError
from portscope.registry._build import write_atomic
from portscope.registry._layout import IANA_FILE, IANA_META, SOURCE_ORDER, cache_dir, source_paths
from portscope.registry._sources import parse_iana_text
from portscope.registry._store import STORE

IANA_CSV_URL = (
    "https://www.iana.org/assignments/service-names-port-numbers/service-names-port-numbers.csv"
)
_MAX_BYTES = 64 * 1024 * 1024  # the real file is about 1.2 MB
_MAX_TIMEOUT_S = 86400.0


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """One source of the registry, as loaded now.

    Attributes:
        name: ``curated``, ``iana``, ``system`` (/etc/services) or ``nmap``.
        path: the file read, or ``None`` (curated is built in; a source not found).
        loaded: True when its entries are part of the registry.
        entries: entries read from it (one per port or range and transport).
        mtime: the file's modification time, seconds since the epoch, or ``None``.
        age_s: seconds between ``mtime`` and now, or ``None``.
        detail: what was read or why not, in words (row counts, "not imported ...").
        url: where the IANA copy was downloaded from (or the file it was imported from).
        fetched: when it was downloaded or imported, seconds since the epoch.
        changed: for the result of an update: False when the server answered
            "304 Not Modified", True when the copy was replaced; ``None`` otherwise.
    """

    name: str
    path: str | None
    loaded: bool
    entries: int
    mtime: float | None = None
    age_s: float | None = None
    detail: str | None = None
    url: str | None = None
    fetched: float | None = None
    changed: bool | None = None


def _meta_path() -> Path:
    return cache_dir() / IANA_META


def _read_meta() -> dict[str, Any]:
    import json

    try:
        meta = json.loads(_meta_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def registry_sources() -> list[SourceInfo]:
    """What the registry loaded, from where, how many entries, how old.

    Loads the registry index if this process has not yet (from the compiled cache, or by
    parsing the sources when they changed).

    Returns:
        One ``SourceInfo`` per source, in priority order: curated, iana, system, nmap.
    """
    stats = STORE.index()[2]
    paths = source_paths()
    now = time.time()
    meta = _read_meta()
    out: list[SourceInfo] = []
    for name in SOURCE_ORDER:
        path = paths[name]
        entries, detail = stats.get(name, (0, None))
        mtime: float | None = None
        if path is not None:
            try:
                mtime = path.stat().st_mtime
            except OSError:
                mtime = None
        loaded = name in stats and entries > 0
        if name == "curated":
            detail = detail or "built into portscope"
        elif mtime is None:
            if name == "iana":
                detail = "not imported: run 'portscope registry update' (or --from FILE)"
            elif name == "nmap":
                detail = "not installed (nmap-services not found)"
            else:
                detail = "not found"
        out.append(
            SourceInfo(
                name=name,
                path=str(path) if path is not None else None,
                loaded=loaded,
                entries=entries if loaded else 0,
                mtime=mtime,
                age_s=max(0.0, now - mtime) if mtime is not None else None,
                detail=detail,
                url=meta.get("url") if name == "iana" and mtime is not None else None,
                fetched=meta.get("fetched") if name == "iana" and mtime is not None else None,
            )
        )
    return out


def _validate(data: bytes, origin: str) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise RegistryError(f"{origin}: not UTF-8 text ({err.reason})") from err
    entries, stats = parse_iana_text(text, name=origin)
    if not entries:
        raise RegistryError(
            f"{origin}: no port assignments in it ({stats.rows} rows); "
            "expected IANA's service-names-port-numbers.csv"
        )
    return f"{stats.rows} rows, {stats.entries} assigned"


def _install(data: bytes, meta: dict[str, Any]) -> SourceInfo:
    import json

    directory = cache_dir()
    target = directory / IANA_FILE
    try:
        write_atomic(target, data, durable=True)
        write_atomic(_meta_path(), json.dumps(meta, indent=1).encode(), durable=True)
    except OSError as err:
        raise RegistryError(
            f"cannot write {target}: {err.strerror} (set PORTSCOPE_CACHE_DIR to a "
            "writable directory)",
            errno=err.errno,
        ) from err
    STORE.reset()
    return _iana_info(changed=True)


def _iana_info(changed: bool | None) -> SourceInfo:
    info = next(s for s in registry_sources() if s.name == "iana")
    return SourceInfo(
        info.name,
        info.path,
        info.loaded,
        info.entries,
        info.mtime,
        info.age_s,
        info.detail,
        info.url,
        info.fetched,
        changed,
    )


def _short(text: str) -> str:
    shown = repr(text)
    return shown if len(shown) <= 82 else shown[:80] + "...'"


def check_url(url: str) -> str:
    """Return ``url`` when ``update_registry`` can download from it; checked before any I/O.

    Accepted: ``http://`` or ``https://`` (any case), a host (a name, an address, an IPv6
    address in brackets), an optional port 1-65535 in ASCII digits (``_ports``), no spaces
    or control characters (percent-encode them).

    Raises:
        InvalidInput: what is wrong, naming the URL, in one line.
    """
    from urllib.parse import urlsplit

    from portscope import _ports

    shown = _short(url)
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput(f"URL {shown}: not an http:// or https:// URL")
    if any(c.isspace() or not c.isprintable() for c in url):
        raise InvalidInput(
            f"URL {shown}: spaces or control characters in it (percent-encode them, %20)"
        )
    try:
        parts = urlsplit(url)
    except ValueError as err:
        raise InvalidInput(f"URL {shown}: not a valid URL ({err})") from err
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidInput(f"URL {shown}: not an http:// or https:// URL")
    host = parts.netloc.rpartition("@")[2]
    if host.startswith("["):
        literal, _, after = host[1:].partition("]")
        port = after[1:] if after.startswith(":") else after
        if after and not after.startswith(":"):
            raise InvalidInput(f"URL {shown}: not a valid URL (text after ']')")
    else:
        literal, _, port = host.partition(":")
    if not literal:
        raise InvalidInput(f"URL {shown}: no host (expected http://HOST[:PORT]/PATH)")
    if port:
        try:
            _ports.parse_port(port, names=False)
        except InvalidInput as err:
            raise InvalidInput(f"URL {shown}: {err}") from err
    return url


def _read_until(response: Any, deadline: float, url: str) -> bytes:
    """The body, read a chunk at a time within ``deadline`` (``time.monotonic``) and
    ``_MAX_BYTES + 1`` bytes: a server trickling a byte a second cannot stretch the
    update past its timeout, which bounds the whole download, not each read."""
    chunks: list[bytes] = []
    size = 0
    # the socket under the response, to shorten its timeout to what is left
    sock = getattr(getattr(getattr(response, "fp", None), "raw", None), "_sock", None)
    while size <= _MAX_BYTES:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"over the deadline ({size:,} bytes read)")
        if sock is not None:
            sock.settimeout(left)
        chunk = response.read1(min(1 << 20, _MAX_BYTES + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _download(url: str, timeout_s: float) -> SourceInfo:
    import urllib.error
    import urllib.request

    meta = _read_meta()
    headers = {"User-Agent": "portscope registry update", "Accept": "text/csv"}
    if (cache_dir() / IANA_FILE).exists() and meta.get("url") == url:
        if meta.get("etag"):
            headers["If-None-Match"] = str(meta["etag"])
        if meta.get("last_modified"):
            headers["If-Modified-Since"] = str(meta["last_modified"])
    request = urllib.request.Request(url, headers=headers)
    deadline = time.monotonic() + timeout_s
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            data = _read_until(response, deadline, url)
            etag = response.headers.get("ETag")
            last_modified = response.headers.get("Last-Modified")
    except urllib.error.HTTPError as err:
        if err.code == 304:
            return _iana_info(changed=False)
        raise RegistryError(f"cannot download {url}: HTTP {err.code} {err.reason}") from err
    except urllib.error.URLError as err:
        reason = err.reason
        why = getattr(reason, "strerror", None) or str(reason)
        raise RegistryError(
            f"cannot download {url}: {why} (offline? import a local copy with "
            "'portscope registry update --from FILE')",
            errno=getattr(reason, "errno", None),
        ) from err
    except TimeoutError as err:
        raise RegistryError(
            f"cannot download {url}: not complete within the deadline of {timeout_s:g} s "
            "(--timeout bounds the whole download)",
            errno=err.errno,
        ) from err
    except OSError as err:
        raise RegistryError(
            f"cannot download {url}: {err.strerror or err} (offline? import a local copy "
            "with 'portscope registry update --from FILE')",
            errno=err.errno,
        ) from err
    if len(data) > _MAX_BYTES:
        raise RegistryError(f"cannot download {url}: larger than {_MAX_BYTES} bytes")
    _validate(data, url)
    return _install(
        data,
        {"url": url, "fetched": time.time(), "etag": etag, "last_modified": last_modified},
    )


def update_registry(
    *, from_file: Path | None = None, url: str = IANA_CSV_URL, timeout_s: float = 30.0
) -> SourceInfo:
    """Download IANA's port registry CSV, or import a local copy, into the cache.

    The copy lives in the cache directory (``$PORTSCOPE_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/portscope``, else ``~/.cache/portscope``); the next lookup merges
    it. A download sends ``If-None-Match``/``If-Modified-Since`` from the previous one
    and keeps the copy on "304 Not Modified". The new file is parsed before it replaces
    the old one, atomically.

    Args:
        from_file: import this CSV instead of downloading.
        url: where to download from (``http://`` or ``https://``); IANA's by default.
        timeout_s: the deadline of the whole download in seconds (connecting, the
            headers and the body together).

    Returns:
        The IANA source after the update; ``changed`` tells whether the copy changed.

    Raises:
        RegistryError: the download failed (offline, HTTP error), the file cannot be
            read, is not an IANA CSV, or the cache directory is not writable.
        InvalidInput: ``url`` is not an http(s) URL with a host and a port 1-65535
            (``check_url``; checked before any network I/O), or ``timeout_s`` is not a
            positive number of seconds below a day.
    """
    if from_file is None:
        check_url(url)
        if not 0 < timeout_s < _MAX_TIMEOUT_S:  # also NaN; inf would overflow the socket's
            raise InvalidInput(
                f"timeout {timeout_s!r}: expected a positive number of seconds "
                f"below {_MAX_TIMEOUT_S:.0f}"
            )
        return _download(url, timeout_s)
    from portscope._files import FileTooLarge, read_bounded

    path = Path(from_file)
    try:
        data = read_bounded(path, _MAX_BYTES)  # --from /dev/zero: refused, not read forever
    except OSError as err:
        raise RegistryError(f"cannot read {path}: {err.strerror}", errno=err.errno) from err
    except FileTooLarge as err:
        raise RegistryError(f"cannot import {path}: {err}") from err
    _validate(data, str(path))
    return _install(data, {"url": str(path.resolve()), "fetched": time.time()})
