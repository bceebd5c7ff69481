"""``watch --exec CMD``: a command per event, the event as JSON on its stdin.

At most ``jobs`` commands run at once (a thread pool; each waits in ``subprocess.run``);
events beyond ``queue_max`` waiting are dropped and reported, so a slow or hanging
command can neither stop the watch nor grow memory without bound. A command that fails
(exit status not 0, not found, killed after ``timeout_s``) is reported through
``failures()``; the watch goes on. The command's standard output goes to standard error,
so the watch's own output (NDJSON with ``--json``) stays clean.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["EventCommand"]


class EventCommand:
    """Runs ``argv`` once per event with bounded concurrency.

    Args:
        argv: the command and its arguments (no shell; give ``sh -c '...'`` for one).
        jobs: commands running at once. Default 4.
        timeout_s: a command still running after this is killed. Default 60 s.
        queue_max: events waiting for a free slot before new ones are dropped. Default 1000.
    """

    def __init__(
        self, argv: list[str], *, jobs: int = 4, timeout_s: float = 60.0, queue_max: int = 1000
    ) -> None:
        self.argv = argv
        self.timeout_s = timeout_s
        self.queue_max = queue_max
        self._pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="watch-exec")
        self._lock = threading.Lock()
        self._waiting = 0
        self._failures: list[str] = []
        self.ran = 0
        self.dropped = 0

    def submit(self, payload: bytes, what: str) -> bool:
        """Queue one run with ``payload`` on stdin; ``what`` names the event in reports.

        Returns:
            False when the event was dropped (``queue_max`` runs already waiting).
        """
        with self._lock:
            if self._waiting >= self.queue_max:
                self.dropped += 1
                self._failures.append(
                    f"--exec: {self.queue_max} events already wait; dropped: {what}"
                )
                return False
            self._waiting += 1
        self._pool.submit(self._run, payload, what)
        return True

    def _run(self, payload: bytes, what: str) -> None:
        problem = None
        try:
            done = subprocess.run(
                self.argv,
                input=payload,
                stdout=sys.stderr.fileno() if _has_fileno() else subprocess.DEVNULL,
                timeout=self.timeout_s,
                check=False,
            )
            if done.returncode != 0:
                problem = f"exit status {done.returncode}"
        except subprocess.TimeoutExpired:
            problem = f"killed after {self.timeout_s:g} s"
        except OSError as err:
            problem = err.strerror or str(err)
        with self._lock:
            self._waiting -= 1
            self.ran += 1
            if problem is not None:
                self._failures.append(f"--exec {self.argv[0]!r} failed ({problem}) for: {what}")

    def failures(self) -> list[str]:
        """The failures since the last call (and empties the list)."""
        with self._lock:
            out, self._failures = self._failures, []
        return out

    def close(self, *, wait: bool = True) -> None:
        """Stop taking events; with ``wait``, wait for the running commands (each bounded
        by ``timeout_s``); without it, commands not started are cancelled."""
        self._pool.shutdown(wait=wait, cancel_futures=not wait)


def _has_fileno() -> bool:
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True
