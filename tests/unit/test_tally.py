"""The tally's two counting paths on hand-made inet_diag chunks (``sockets._tally``)."""

from __future__ import annotations

import struct

from portscope.sockets._tally import tally_chunk


def test_strided_count_of_a_synthetic_chunk() -> None:
    """A chunk of equal IPv4 and IPv6 messages (a dump's usual shape) counted in C gives
    what the loop gives, duplicates and the NLMSG_DONE tail included."""

    def message(family: int, state: int, sport: int, dport: int, dst: bytes, cookie: int) -> bytes:
        body = struct.pack("=BBBB", 2 if family == 4 else 10, state, 0, 0)
        body += struct.pack(">HH", sport, dport) + bytes(16) + dst.ljust(16, b"\0")
        body += struct.pack("=IQ", 0, cookie) + bytes(20)
        attrs = struct.pack("=HHB3x", 5, 8, 0)  # INET_DIAG_SHUTDOWN, as the kernel adds
        return struct.pack("=IHHII", 16 + len(body) + len(attrs), 20, 2, 1, 0) + body + attrs

    done = struct.pack("=IHHIIi", 20, 3, 2, 1, 0, 0)
    for family, dst in ((4, bytes([127, 0, 0, 9])), (6, bytes(15) + b"\1")):
        msgs = [
            message(family, st, sport, dport, dst if dport else bytes(16), cookie)
            for cookie, (st, sport, dport) in enumerate(
                [
                    (1, 40000, 80),
                    (1, 40001, 80),
                    (8, 40002, 443),
                    (1, 80, 40000),
                    (7, 40003, 0),
                    (2, 50000, 80),
                    (5, 1000, 80),
                    (4, 60999, 22),
                ],
                start=1,
            )
        ]
        chunk = b"".join(msgs) + done
        results = []
        for uniform in (True, False):
            counts = [0] * 256
            ports: set[int] = set()
            dests: dict = {}  # type: ignore[type-arg]
            seen: set = set()  # type: ignore[type-arg]
            assert tally_chunk(chunk, family, seen, counts, ports, dests, (32768, 60999),
                               uniform=uniform)  # fmt: skip
            # the kernel re-sent two sockets: each counts once
            tally_chunk(b"".join(msgs[:2]), family, seen, counts, ports, dests, (32768, 60999),
                        uniform=uniform)  # fmt: skip
            results.append((counts, ports, list(dests.items())))
        assert results[0] == results[1]
        counts, ports, dests = results[0]
        assert counts[1] == 3 and counts[8] == 1 and counts[7] == 1 and sum(counts) == 8
        assert len(ports) == 5  # 40000, 40001, 40002, 50000, 60999 (not CLOSE's 40003)
        assert [n for _, n in dests] == [3, 1, 1]  # :80 x3, :443, :22
