"""portscope: network ports and sockets, as a typed Python API.

Names are loaded on first use (PEP 562), so ``import portscope`` does no I/O and pulls in
no heavy module (asyncio, sqlite3, rich). ``__all__`` lists the whole public API.
"""

from __future__ import annotations

# `typing.TYPE_CHECKING` without importing typing (mypy treats the name the same way):
# every command line starts by importing this package.
TYPE_CHECKING = False

__version__ = "0.1.0"

# public name -> private module that defines it (keep sorted by name)
_EXPORTS: dict[str, str] = {
    "BackendUnavailable": "portscope.errors",
    "BindCause": "portscope.diagnose",
    "BindDiagnosis": "portscope.diagnose",
    "BindReason": "portscope.diagnose",
    "ConnectDiagnosis": "portscope.diagnose",
    "ConnectStep": "portscope.diagnose",
    "ConnectVerdict": "portscope.diagnose",
    "Coverage": "portscope.scan",
    "DestinationUsage": "portscope.diagnose",
    "Endpoint": "portscope.models",
    "EphemeralUsage": "portscope.diagnose",
    "Finding": "portscope.diagnose",
    "FreePort": "portscope.diagnose",
    "HeldPorts": "portscope.diagnose",
    "HostSummary": "portscope.scan",
    "InvalidFilter": "portscope.errors",
    "InvalidInput": "portscope.errors",
    "InvalidPort": "portscope.errors",
    "InvalidPortSpec": "portscope.errors",
    "InvalidTarget": "portscope.errors",
    "KernelPorts": "portscope.registry._ranges",
    "KillOutcome": "portscope.diagnose",
    "KillReport": "portscope.diagnose",
    "KillResult": "portscope.diagnose",
    "NetworkSafetyError": "portscope.errors",
    "Owner": "portscope.models",
    "PermissionDenied": "portscope.errors",
    "PortHolder": "portscope.diagnose",
    "PortFacts": "portscope.registry",
    "PortRange": "portscope.models",
    "PortState": "portscope.models",
    "PortscopeError": "portscope.errors",
    "ProbeResult": "portscope.models",
    "Proto": "portscope.models",
    "RegistryError": "portscope.errors",
    "Scan": "portscope.scan",
    "ScanOptions": "portscope.scan",
    "ScanReport": "portscope.scan",
    "Service": "portscope.models",
    "Severity": "portscope.diagnose",
    "Socket": "portscope.models",
    "SocketFilter": "portscope.sockets",
    "SocketTable": "portscope.models",
    "SourceInfo": "portscope.registry",
    "TcpState": "portscope.models",
    "WhoResult": "portscope.diagnose",
    "audit": "portscope.diagnose",
    "bind_scope": "portscope.sockets",
    "ephemeral_usage": "portscope.diagnose",
    "free_ports": "portscope.diagnose",
    "kernel_ports": "portscope.registry._ranges",
    "kill_holders": "portscope.diagnose",
    "list_sockets": "portscope.sockets",
    "lookup": "portscope.registry",
    "port_facts": "portscope.registry",
    "port_range": "portscope.registry._ranges",
    "probe": "portscope.scan",
    "probe_async": "portscope.scan",
    "registry_sources": "portscope.registry",
    "scan": "portscope.scan",
    "service_name": "portscope.registry",
    "to_dict": "portscope.models",
    "top_ports": "portscope.registry",
    "update_registry": "portscope.registry",
    "who": "portscope.diagnose",
    "why_bind": "portscope.diagnose",
    "why_connect": "portscope.diagnose",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from typing import Any

    from portscope.diagnose.audit import Finding, Severity, audit
    from portscope.diagnose.ephemeral import DestinationUsage, EphemeralUsage, ephemeral_usage
    from portscope.diagnose.free import FreePort, HeldPorts, free_ports
    from portscope.diagnose.who import (
        KillOutcome,
        KillReport,
        KillResult,
        PortHolder,
        WhoResult,
        kill_holders,
        who,
    )
    from portscope.diagnose.why import (
        BindCause,
        BindDiagnosis,
        BindReason,
        ConnectDiagnosis,
        ConnectStep,
        ConnectVerdict,
        why_bind,
        why_connect,
    )
    from portscope.errors import (
        BackendUnavailable,
        InvalidFilter,
        InvalidInput,
        InvalidPort,
        InvalidPortSpec,
        InvalidTarget,
        NetworkSafetyError,
        PermissionDenied,
        PortscopeError,
        RegistryError,
    )
    from portscope.models import (
        Endpoint,
        Owner,
        PortRange,
        PortState,
        ProbeResult,
        Proto,
        Service,
        Socket,
        TcpState,
        to_dict,
    )
    from portscope.registry import (
        PortFacts,
        SourceInfo,
        lookup,
        port_facts,
        registry_sources,
        service_name,
        top_ports,
        update_registry,
    )
    from portscope.registry._ranges import KernelPorts, kernel_ports, port_range
    from portscope.scan import Coverage, HostSummary, Scan, ScanOptions, ScanReport, scan
    from portscope.scan.probe import probe, probe_async
    from portscope.sockets import SocketFilter, bind_scope, list_sockets


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'portscope' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
