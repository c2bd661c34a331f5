"""Timing on a shared machine: calls timed in turn, in rounds, after the previous call's worker
threads have gone idle, and the threads a timed call may use.

A machine that other work shares drifts in speed from second to second, so `time_calls` takes
each call's samples in several rounds that visit every call in turn: each gets several chances
at a quiet stretch, and two calls compared are timed under the same conditions.
"""
from __future__ import annotations

import time

from core.native.kernel import kernel_info
from core.native.parallel import cores

TARGET_SAMPLE_SECONDS = 0.02  # calls are repeated in a loop until one sample takes about this long
SETTLE_SECONDS = 0.15  # after a call, OpenBLAS / OpenMP workers spin about this long, slowing whatever runs next
ROUNDS = 5  # time_calls visits the calls in turn this many times


def settle(seconds: float = SETTLE_SECONDS) -> None:
    """Waits until the worker threads of whatever ran before have gone idle, busy: a core that
    sleeps even 0.1 s here drops its clock, and the next ~0.3 s run up to 1.6x slower (measured
    on the 2-core EPYC: a 3.4 us call took 5.5 us after `time.sleep`)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def time_calls(calls: dict, repeats: int = 5) -> dict[str, list[float]]:
    """Seconds per call of each named no-argument call, `repeats` samples each, taken in up to
    ROUNDS rounds that visit every call in turn: settle(), one warm-up call, then this round's
    share of the samples. A sample loops the call enough times to last about TARGET_SAMPLE_SECONDS."""
    loops = {}
    for name, call in calls.items():
        start = time.perf_counter()
        call()
        first = time.perf_counter() - start
        loops[name] = max(1, min(10_000, int(TARGET_SAMPLE_SECONDS / max(first, 1e-7))))
    repeats, samples = max(1, repeats), {name: [] for name in calls}
    rounds = min(ROUNDS, repeats)
    for round_index in range(rounds):
        share = repeats * (round_index + 1) // rounds - repeats * round_index // rounds
        for name, call in calls.items():
            settle()
            call()
            for _ in range(share):
                start = time.perf_counter()
                for _ in range(loops[name]):
                    call()
                samples[name].append((time.perf_counter() - start) / loops[name])
    return samples


def time_call(call, repeats: int = 5) -> list[float]:
    """time_calls for one call."""
    return time_calls({"call": call}, repeats)["call"]


def kernel_threads() -> int:
    """The threads the C kernel runs a large call on (GLASSBOX_NUM_THREADS, default the cores this
    process may use), or those cores without the kernel: a peer timed beside it gets as many."""
    return kernel_info()["threads"] or cores()
