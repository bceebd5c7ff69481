"""The portscope error tree.

Every error portscope raises on purpose derives from ``PortscopeError``::

    PortscopeError
    ├── InvalidInput               bad value from the caller (CLI: one line, exit 2)
    │   ├── InvalidPort            a port number or port/proto outside 0-65535
    │   ├── InvalidPortSpec        an nmap-style port list (-p 22,80,1000-2000)
    │   ├── InvalidTarget          a host name, address, CIDR block or range
    │   └── InvalidFilter          a socket-table filter (state, address, user ...)
    ├── PermissionDenied           the call needs a privilege this process lacks
    ├── BackendUnavailable         no socket backend works on this platform / process
    │   └── BackendError           a backend's answer cannot be decoded (at an offset)
    ├── RegistryError              a registry source could not be read or fetched
    ├── StoreError                 the history store cannot be opened, read or written
    └── NetworkSafetyError         a probe or scan would send traffic to a refused target

OS errors are translated at the backend boundary with ``raise ... from err``; the
original ``errno`` is kept on the exception (``None`` when there is none).
"""

from __future__ import annotations


class PortscopeError(Exception):
    """Root of every error portscope raises on purpose.

    Attributes:
        errno: the OS errno behind the error, or ``None``.
    """

    def __init__(self, message: str, *, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class InvalidInput(PortscopeError, ValueError):
    """A value given by the caller is not accepted; the message names it and what is."""


class InvalidPort(InvalidInput):
    """A port number outside 0-65535, or a malformed ``port/proto``."""


class InvalidPortSpec(InvalidInput):
    """A malformed nmap-style port specification."""


class InvalidTarget(InvalidInput):
    """A malformed or unresolvable host, address, CIDR block or address range."""


class InvalidFilter(InvalidInput):
    """A malformed socket-table filter (state name, CIDR, user, sort key ...)."""


class PermissionDenied(PortscopeError, PermissionError):
    """The operation needs a privilege (root, CAP_NET_RAW, CAP_NET_ADMIN) this process lacks."""


class BackendUnavailable(PortscopeError):
    """No socket-table backend can run here (or the one asked for cannot)."""


class BackendError(BackendUnavailable):
    """A backend's answer cannot be decoded: a malformed netlink message or /proc line.

    The kernel is the only producer, so this means a kernel or codec bug, or bytes that
    did not come from it; decoders raise it instead of hanging or failing obscurely.

    Attributes:
        offset: the byte offset (netlink chunk) or line number (/proc/net file) of the
            malformed data, or ``None``.
    """

    def __init__(self, message: str, *, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


class RegistryError(PortscopeError):
    """A registry source could not be read, parsed or downloaded."""


class NetworkSafetyError(InvalidInput):
    """A target is refused: broadcast, multicast, or a target set over the allowed size."""


class StoreError(PortscopeError):
    """The history store cannot be opened, read or written: read-only or full disk, a
    newer schema, busy beyond the timeout, not a store (CLI: one line, exit 2)."""
