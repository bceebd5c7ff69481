"""who / why / audit / free / ephemeral: answers about this machine's ports, with evidence.

Each public function has a pure core over ``Socket`` values (``holders_from_table``,
``diagnose_bind``, ``audit_sockets``, ``ephemeral_from_sockets``) and a live wrapper that
reads the socket table through ``portscope.sockets``.
"""

from __future__ import annotations

from portscope.diagnose.audit import RULES, Finding, Severity, audit, audit_sockets
from portscope.diagnose.ephemeral import (
    DestinationUsage,
    EphemeralUsage,
    ephemeral_by_netns,
    ephemeral_from_sockets,
    ephemeral_usage,
)
from portscope.diagnose.free import FreePort, HeldPorts, free_ports
from portscope.diagnose.who import (
    HolderRole,
    KillOutcome,
    KillReport,
    KillResult,
    PortHolder,
    WhoResult,
    holders_from_table,
    kill_holders,
    kill_targets,
    who,
)
from portscope.diagnose.why_bind import (
    BindCause,
    BindDiagnosis,
    BindReason,
    diagnose_bind,
    why_bind,
)
from portscope.diagnose.why_connect import (
    ConnectDiagnosis,
    ConnectStep,
    ConnectVerdict,
    why_connect,
)

__all__ = [
    "RULES",
    "BindCause",
    "BindDiagnosis",
    "BindReason",
    "ConnectDiagnosis",
    "ConnectStep",
    "ConnectVerdict",
    "DestinationUsage",
    "EphemeralUsage",
    "Finding",
    "FreePort",
    "HeldPorts",
    "HolderRole",
    "KillOutcome",
    "KillReport",
    "KillResult",
    "PortHolder",
    "Severity",
    "WhoResult",
    "audit",
    "audit_sockets",
    "diagnose_bind",
    "ephemeral_by_netns",
    "ephemeral_from_sockets",
    "ephemeral_usage",
    "free_ports",
    "holders_from_table",
    "kill_holders",
    "kill_targets",
    "who",
    "why_bind",
    "why_connect",
]
