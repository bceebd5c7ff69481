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
    "BackendError": "portscope.errors",
    "BackendUnavailable": "portscope.errors",
    "BindCause": "portscope.diagnose",
    "BindDiagnosis": "portscope.diagnose",
    "BindReason": "portscope.diagnose",
    "Confidence": "portscope.identify",
    "ConnectDiagnosis": "portscope.diagnose",
    "ConnectStep": "portscope.diagnose",
    "ConnectVerdict": "portscope.diagnose",
    "Container": "portscope.models",
    "Coverage": "portscope.scanner",
    "DestinationUsage": "portscope.diagnose",
    "Endpoint": "portscope.models",
    "EphemeralUsage": "portscope.diagnose",
    "Evidence": "portscope.identify",
    "Exposure": "portscope.diagnose.exposure",
    "ExposureReport": "portscope.diagnose.exposure",
    "Finding": "portscope.diagnose",
    "FreePort": "portscope.diagnose",
    "HeldPorts": "portscope.diagnose",
    "HolderRole": "portscope.diagnose",
    "HostSummary": "portscope.scanner",
    "Identity": "portscope.identify",
    "InvalidFilter": "portscope.errors",
    "InvalidInput": "portscope.errors",
    "InvalidPort": "portscope.errors",
    "InvalidPortSpec": "portscope.errors",
    "InvalidTarget": "portscope.errors",
    "KernelPorts": "portscope.registry._ranges",
    "KillOutcome": "portscope.diagnose",
    "KillReport": "portscope.diagnose",
    "KillResult": "portscope.diagnose",
    "Netns": "portscope.models",
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
    "Scan": "portscope.scanner",
    "ScanOptions": "portscope.scanner",
    "ScanReport": "portscope.scanner",
    "Service": "portscope.models",
    "Severity": "portscope.diagnose",
    "Socket": "portscope.models",
    "SocketFilter": "portscope.sockets",
    "SocketTable": "portscope.models",
    "SourceInfo": "portscope.registry",
    "StoreError": "portscope.errors",
    "TcpState": "portscope.models",
    "TlsInfo": "portscope.identify",
    "WhoResult": "portscope.diagnose",
    "audit": "portscope.diagnose",
    "bind_scope": "portscope.sockets",
    "ephemeral_by_netns": "portscope.diagnose",
    "ephemeral_usage": "portscope.diagnose",
    "exposure": "portscope.diagnose.exposure",
    "free_ports": "portscope.diagnose",
    "identify_async": "portscope.identify",
    "identify_many": "portscope.identify",
    "identify_port": "portscope.identify",
    "kernel_ports": "portscope.registry._ranges",
    "kill_holders": "portscope.diagnose",
    "list_netns": "portscope.sockets",
    "kill_targets": "portscope.diagnose",
    "list_sockets": "portscope.sockets",
    "lookup": "portscope.registry",
    "port_facts": "portscope.registry",
    "port_range": "portscope.registry._ranges",
    "probe": "portscope.scanner",
    "probe_async": "portscope.scanner",
    "registry_sources": "portscope.registry",
    "scan": "portscope.scanner",
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

    from portscope.diagnose.audit import (
        Finding as Finding,
        Severity as Severity,
        audit as audit,
    )
    from portscope.diagnose.ephemeral import (
        DestinationUsage as DestinationUsage,
        EphemeralUsage as EphemeralUsage,
        ephemeral_by_netns as ephemeral_by_netns,
        ephemeral_usage as ephemeral_usage,
    )
    from portscope.diagnose.exposure import (
        Exposure as Exposure,
        ExposureReport as ExposureReport,
        exposure as exposure,
    )
    from portscope.diagnose.free import (
        FreePort as FreePort,
        HeldPorts as HeldPorts,
        free_ports as free_ports,
    )
    from portscope.diagnose.who import (
        HolderRole as HolderRole,
        KillOutcome as KillOutcome,
        KillReport as KillReport,
        KillResult as KillResult,
        PortHolder as PortHolder,
        WhoResult as WhoResult,
        kill_holders as kill_holders,
        kill_targets as kill_targets,
        who as who,
    )
    from portscope.diagnose.why_bind import (
        BindCause as BindCause,
        BindDiagnosis as BindDiagnosis,
        BindReason as BindReason,
        why_bind as why_bind,
    )
    from portscope.diagnose.why_connect import (
        ConnectDiagnosis as ConnectDiagnosis,
        ConnectStep as ConnectStep,
        ConnectVerdict as ConnectVerdict,
        why_connect as why_connect,
    )
    from portscope.errors import (
        BackendError as BackendError,
        BackendUnavailable as BackendUnavailable,
        InvalidFilter as InvalidFilter,
        InvalidInput as InvalidInput,
        InvalidPort as InvalidPort,
        InvalidPortSpec as InvalidPortSpec,
        InvalidTarget as InvalidTarget,
        NetworkSafetyError as NetworkSafetyError,
        PermissionDenied as PermissionDenied,
        PortscopeError as PortscopeError,
        RegistryError as RegistryError,
        StoreError as StoreError,
    )
    from portscope.identify import (
        Confidence as Confidence,
        Evidence as Evidence,
        Identity as Identity,
        TlsInfo as TlsInfo,
        identify_async as identify_async,
        identify_many as identify_many,
        identify_port as identify_port,
    )
    from portscope.models import (
        Container as Container,
        Endpoint as Endpoint,
        Netns as Netns,
        Owner as Owner,
        PortRange as PortRange,
        PortState as PortState,
        ProbeResult as ProbeResult,
        Proto as Proto,
        Service as Service,
        Socket as Socket,
        SocketTable as SocketTable,
        TcpState as TcpState,
        to_dict as to_dict,
    )
    from portscope.registry._lookup import (
        lookup as lookup,
        service_name as service_name,
        top_ports as top_ports,
    )
    from portscope.registry._ranges import (
        KernelPorts as KernelPorts,
        PortFacts as PortFacts,
        kernel_ports as kernel_ports,
        port_facts as port_facts,
        port_range as port_range,
    )
    from portscope.registry._update import (
        SourceInfo as SourceInfo,
        registry_sources as registry_sources,
        update_registry as update_registry,
    )
    from portscope.scanner import (
        Scan as Scan,
        scan as scan,
    )
    from portscope.scanner._types import (
        Coverage as Coverage,
        HostSummary as HostSummary,
        ScanOptions as ScanOptions,
        ScanReport as ScanReport,
    )
    from portscope.scanner.probe import (
        probe as probe,
        probe_async as probe_async,
    )
    from portscope.sockets import (
        bind_scope as bind_scope,
        list_netns as list_netns,
        list_sockets as list_sockets,
    )
    from portscope.sockets._filters import (
        SocketFilter as SocketFilter,
    )


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
