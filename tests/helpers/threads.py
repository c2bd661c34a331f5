"""Running one function on several Python threads at once, for the thread-safety tests."""
from __future__ import annotations

import threading


def run_in_threads(function, count: int, timeout: float = 60.0) -> None:
    """Calls `function(index)` for every index below `count`, each on a thread of its own, all at
    once, and waits for them (at most `timeout` seconds each)."""
    threads = [threading.Thread(target=function, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
