"""Events from two listings or two scans: the pure core of ``diff`` and ``watch``.

Identity is (network namespace, transport, local address, port) for listeners and
(address, transport, port) for scanned ports; PIDs, queue counters, inodes and the number
of sockets behind an identity never make an event. What does:

* ``added`` / ``removed``: an identity only in the second / the first listing;
* ``scope-widened`` / ``scope-narrowed``: on the same (netns, transport, port), one identity
  went and one came with a wider / narrower bind scope (``scope_rank``: loopback < one
  address < all addresses of a family < dual-stack ``::``). Pairs are made within a
  family first (127.0.0.1 -> 0.0.0.0, ::1 -> ::), then across (127.0.0.1 -> ::);
* ``owner-changed``: the same identity held by another set of (process name, command line),
  both sides known and non-empty (a restart with a new PID is no change);
* ``state-changed`` (scans): the same port in another state. A port listed in one scan only
  takes, in the other, that host's unlisted state (``extraports``, ``closed`` for our scans)
  when the host was scanned there too, as ``ndiff`` reads two reports.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from portscope.history._model import (
    Action,
    Event,
    Listener,
    ListenerKey,
    ScanHost,
    ScanKey,
    ScanPort,
    owner_identity,
    scope_rank,
)

__all__ = ["diff_listeners", "diff_scans", "index_listeners", "pair_scopes"]


def index_listeners(listeners: Iterable[Listener]) -> dict[ListenerKey, Listener]:
    """Listeners by identity (the last one wins; a store already folds duplicates)."""
    return {item.key: item for item in listeners}


def diff_listeners(
    before: Mapping[ListenerKey, Listener],
    after: Mapping[ListenerKey, Listener],
    *,
    at: float | None = None,
) -> list[Event]:
    """The events that turn listing ``before`` into listing ``after``.

    Args:
        before: listeners by identity (``index_listeners``, or a store's
            ``ListenerTable``, whose unchanged listeners are never built).
        after: likewise.
        at: the time to stamp on the events (``None`` in a diff).

    Returns:
        Events sorted by port, transport and address.
    """
    gone = [before[key] for key in before.keys() - after.keys()]
    came = [after[key] for key in after.keys() - before.keys()]
    events = pair_scopes(gone, came, at=at)
    tokens_a = getattr(before, "owner_tokens", None)
    tokens_b = getattr(after, "owner_tokens", None)
    for key in after.keys() & before.keys():
        if tokens_a is not None and tokens_b is not None and tokens_a[key] == tokens_b[key]:
            continue  # the same owners, as stored: nothing to build
        old, new = before[key], after[key]
        if owners_differ(old, new):
            events.append(Event(Action.OWNER_CHANGED, old, new, at))
    events.sort(key=_event_order)
    return events


def owners_differ(old: Listener, new: Listener) -> bool:
    """Whether another program holds the identity (both sides known and non-empty)."""
    if not old.owners or not new.owners:
        return False
    return owner_identity(old.owners) != owner_identity(new.owners)


def pair_scopes(gone: list[Listener], came: list[Listener], *, at: float | None) -> list[Event]:
    """``removed`` and ``added`` events, with the pairs on one port that changed scope
    turned into one ``scope-widened``/``scope-narrowed`` event each."""
    events: list[Event] = []
    by_port: dict[tuple[int | None, str, int], tuple[list[Listener], list[Listener]]]
    by_port = defaultdict(lambda: ([], []))
    for item in gone:
        by_port[(item.netns, item.proto.value, item.port)][0].append(item)
    for item in came:
        by_port[(item.netns, item.proto.value, item.port)][1].append(item)
    for olds, news in by_port.values():
        if olds and news:
            for same_family in (True, False):
                for old in list(olds):
                    match = _scope_match(old, news, same_family)
                    if match is not None:
                        olds.remove(old)
                        news.remove(match)
                        wider = scope_rank(match) > scope_rank(old)
                        action = Action.SCOPE_WIDENED if wider else Action.SCOPE_NARROWED
                        events.append(Event(action, old, match, at))
        events += [Event(Action.REMOVED, old, None, at) for old in olds]
        events += [Event(Action.ADDED, None, new, at) for new in news]
    return events


def _scope_match(old: Listener, news: list[Listener], same_family: bool) -> Listener | None:
    rank = scope_rank(old)
    for new in news:
        if (new.family == old.family) == same_family and scope_rank(new) != rank:
            return new
    return None


def _event_order(event: Event) -> tuple[int, str, str, str]:
    subject = event.subject
    return (subject.port, subject.proto.value, _address_of(subject), event.action.value)


def _address_of(subject: Listener | ScanPort) -> str:
    return subject.address


def diff_scans(
    before_hosts: Iterable[ScanHost],
    before_ports: Iterable[ScanPort],
    after_hosts: Iterable[ScanHost],
    after_ports: Iterable[ScanPort],
) -> list[Event]:
    """The events between two scans (a portscope scan or an nmap report each).

    A port in both with another state is ``state-changed``. A port listed on one side only
    is compared with the other side's unlisted state for that host (``ScanHost.
    extra_state``) when the host is there: ``state-changed`` if it differs. Ports of a host
    scanned on one side only are ``added``/``removed``.

    Returns:
        Events sorted by port, transport and address.
    """
    hosts_a = {h.address: h for h in before_hosts}
    hosts_b = {h.address: h for h in after_hosts}
    ports_a: dict[ScanKey, ScanPort] = {p.key: p for p in before_ports}
    ports_b: dict[ScanKey, ScanPort] = {p.key: p for p in after_ports}
    events: list[Event] = []
    for key in ports_a.keys() | ports_b.keys():
        old, new = ports_a.get(key), ports_b.get(key)
        address = key[0]
        if old is not None and new is not None:
            if old.state != new.state:
                events.append(Event(Action.STATE_CHANGED, old, new))
            continue
        if old is not None:
            host = hosts_b.get(address)
            if host is None:
                events.append(Event(Action.REMOVED, old, None))
            elif host.extra_state is not None and host.extra_state != old.state:
                implied = ScanPort(old.host, address, old.proto, old.port, host.extra_state)
                events.append(Event(Action.STATE_CHANGED, old, implied))
        elif new is not None:
            host = hosts_a.get(address)
            if host is None:
                events.append(Event(Action.ADDED, None, new))
            elif host.extra_state is not None and host.extra_state != new.state:
                implied = ScanPort(new.host, address, new.proto, new.port, host.extra_state)
                events.append(Event(Action.STATE_CHANGED, implied, new))
    events.sort(key=_event_order)
    return events
