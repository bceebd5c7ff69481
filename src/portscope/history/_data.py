"""Listeners as JSON data and back: the one shape of a listener in ``diff --json``,
``watch --json`` and the store's ``events`` table (``before_json``/``after_json``)."""

from __future__ import annotations

from typing import Any

from portscope.history._model import Listener
from portscope.models import Owner, Proto, TcpState

__all__ = ["listener_from_json", "listener_json"]


def listener_json(item: Listener) -> dict[str, Any]:
    """A listener as JSON data (exact strings)."""
    return {
        "netns": item.netns,
        "netns_name": item.netns_name,
        "proto": item.proto.value,
        "family": item.family,
        "state": item.state.value,
        "local": {"address": item.address, "port": item.port},
        "v6only": item.v6only,
        "interface": item.interface,
        "sockets": item.sockets,
        "owners": None
        if item.owners is None
        else [
            {
                "pid": o.pid,
                "name": o.name,
                "user": o.user,
                "cmdline": None if o.cmdline is None else list(o.cmdline),
                "start_time": o.start_time,
                "fd": o.fd,
            }
            for o in item.owners
        ],
    }


def listener_from_json(data: dict[str, Any]) -> Listener:
    """The listener written by ``listener_json``."""
    owners = data.get("owners")
    return Listener(
        data.get("netns"),
        Proto(data["proto"]),
        int(data["family"]),
        data["local"]["address"],
        int(data["local"]["port"]),
        TcpState(data["state"]),
        data.get("v6only"),
        data.get("interface"),
        int(data.get("sockets", 1)),
        None
        if owners is None
        else tuple(
            Owner(
                o["pid"],
                o["name"],
                o.get("user"),
                None if o.get("cmdline") is None else tuple(o["cmdline"]),
                o.get("start_time"),
                o.get("fd", 0),
            )
            for o in owners
        ),
        data.get("netns_name"),
    )
