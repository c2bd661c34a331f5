"""What the sessions of one server share: who is running the script (`session_id`), whether a
session is still connected, and the benchmark page's one-at-a-time lock."""
from __future__ import annotations

import threading


def session_id() -> str:
    """The id of the browser session running this script."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    return get_script_run_ctx().session_id


def session_alive(session_id: str) -> bool:
    """Whether the browser session is still connected (always True without a server, e.g. in AppTest)."""
    from streamlit import runtime

    return not runtime.exists() or runtime.get_instance().is_active_session(session_id)


class OneAtATime:
    """A lock that remembers who holds it (one benchmark per server; the page tells its own
    session's still-finishing run from someone else's)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.holder: str | None = None

    def acquire(self, holder: str) -> bool:
        if not self._lock.acquire(blocking=False):
            return False
        self.holder = holder
        return True

    def release(self) -> None:
        self.holder = None
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()


BENCHMARK_LOCK = OneAtATime()  # the benchmark page's grid runs, one per server
