"""GPU timing (architecture §4): CUDA events around each call, the L2 cache flushed and the
persisting-L2 lines reset before it, every stream of the device synchronised after it.

The worker side (`GpuTimer`) runs in the sandboxed worker; the checks (`cross_check`,
`memory_verdict`) run in kopt's process on numbers the worker reports. Events are precise
but live in the candidate's process, so kopt accepts them only where they agree with
clocks the candidate cannot move: the events of a round cannot add up to more than kopt's
own wall clock for that round, nor leave much more of it unaccounted for than the
reference's do, and the time each call takes to fully drain the device
(all streams) cannot exceed its event time by more than the reference's does -- work left
running on a side stream, outside the events, shows up as that gap. What passes is believed
only as far as kopt's wall clock confirms it (`wall_confirmed_ms`): a round's events cannot
claim less than its wall clock minus the reference's unaccounted time (red team 7).
"""
from __future__ import annotations

import ctypes
import os
import statistics
import time
from dataclasses import dataclass

_perf_counter = time.perf_counter

# The gap between a call's full-drain wall time and its event time may exceed the
# reference's by this much before it counts as work outside the timed stream. The fraction is
# also the most a start event recorded again partway through the call can claim: re-recorded
# after a share p of the work, the gap grows by p and the event shrinks to 1 - p, so the claim
# p / (1 - p) <= GAP_SLACK_FRACTION stays within the noise floor (0.5 let a 1.5x through).
GAP_SLACK_MS = 0.05
GAP_SLACK_FRACTION = 0.1
# kopt's wall clock for a round, minus the events the candidate claims for it, may exceed the
# reference's same figure (flush, drain, outputs sent: the same work on both sides) this many
# times, plus the larger slack, before the events are `rejected`. Generous and not calibrated
# on a GPU: it catches gross forgeries only; what it lets through gains nothing beyond
# WALL_SLACK_FRACTION (wall_confirmed_ms).
UNCLAIMED_FACTOR = 2.0
UNCLAIMED_SLACK_MS = 2.0
UNCLAIMED_SLACK_FRACTION = 0.3
# A candidate's round counts at least its wall clock minus the reference's unaccounted time,
# less this share of it (the noise between two rounds' harness work): forged event times gain
# at most 1 / (1 - 0.05) over what the wall clock shows, within the noise floor (0.1).
WALL_SLACK_FRACTION = 0.05
# Memory still allocated after the evaluation, beyond what setup left, that marks a leak.
LEAK_MB = 64


def _cudart():
    """libcudart, for cudaCtxResetPersistingL2Cache (torch does not expose it); None if absent."""
    names = ["libcudart.so", "libcudart.so.13", "libcudart.so.12"]
    try:
        import torch

        lib = os.path.join(os.path.dirname(torch.__file__), "lib")
        names += [os.path.join(lib, f) for f in os.listdir(lib) if f.startswith("libcudart")]
    except Exception:  # noqa: BLE001 - best effort
        pass
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


class GpuTimer:
    """Times one forward call at a time, each on a cold L2 and a drained device."""

    def __init__(self, torch, device: str = "cuda"):
        self.torch = torch
        props = torch.cuda.get_device_properties(torch.device(device))
        l2 = int(getattr(props, "L2_cache_size", 0) or 64 << 20)
        # writing twice the L2's size evicts whatever the last call left there
        self.flush_buf = torch.empty(2 * l2 // 4, dtype=torch.float32, device=device)
        self.lib = _cudart()
        self.persist_reset = self.lib is not None and hasattr(self.lib, "cudaCtxResetPersistingL2Cache")
        self.Event = torch.cuda.Event

    def _cold(self) -> None:
        self.flush_buf.zero_()
        if self.persist_reset:
            self.lib.cudaCtxResetPersistingL2Cache()
        self.torch.cuda.synchronize()

    def run(self, model, inputs: list) -> tuple[list, list[float], list[float]]:
        """Outputs, event milliseconds and full-drain wall milliseconds, one per input set.
        Kept in tuples until returned: forward can reach this frame, but not edit the times of
        the calls before it (lists there were shrunk in place)."""
        torch = self.torch
        outs, event_ms, wall_ms = (), (), ()
        with torch.no_grad():
            for x in inputs:
                self._cold()
                start, end = self.Event(enable_timing=True), self.Event(enable_timing=True)
                t0 = _perf_counter()
                start.record()
                y = model(*x)
                end.record()
                torch.cuda.synchronize()  # the whole device: every stream the call used
                wall_ms += ((_perf_counter() - t0) * 1000,)
                event_ms += (start.elapsed_time(end),)
                outs += (y,)
        return list(outs), list(event_ms), list(wall_ms)


def memory_state(torch) -> dict:
    """Allocated/reserved memory after a synchronize; a failing synchronize means the
    context is wedged (a sticky CUDA error) and the worker must be retired."""
    try:
        torch.cuda.synchronize()
    except Exception as e:  # noqa: BLE001 - a CUDA error is what this looks for
        return {"wedged": True, "error": str(e).splitlines()[0][:300] if str(e) else type(e).__name__}
    return {"wedged": False, "allocated_mb": torch.cuda.memory_allocated() / 2**20,
            "reserved_mb": torch.cuda.memory_reserved() / 2**20}


def memory_verdict(after_setup: dict, after_eval: dict) -> tuple[str | None, str | None]:
    """(verdict-reason, note): a wedged context fails the evaluation; memory that grew by
    more than LEAK_MB over the evaluation is a note (the worker is retired regardless)."""
    if after_eval.get("wedged"):
        return f"the CUDA context is unusable after the evaluation: {after_eval.get('error', '')}", None
    grown = after_eval.get("allocated_mb", 0.0) - after_setup.get("allocated_mb", 0.0)
    if grown > LEAK_MB:
        return None, f"GPU memory grew by {grown:.0f} MiB over the evaluation (a leak?); the worker was retired"
    return None, None


@dataclass
class RoundTimes:
    """One timed round of one side, as the worker and kopt saw it."""

    event_ms: list[float]
    call_wall_ms: list[float]
    kopt_wall_ms: float  # kopt's own clock around the whole round: out of the candidate's reach


def cross_check(ref: RoundTimes, new: RoundTimes) -> str | None:
    """Why the candidate's event times cannot be trusted, or None."""
    total = sum(new.event_ms)
    if total > new.kopt_wall_ms * 1.05 + 0.05:
        return (f"CUDA event times ({total:.3f} ms) exceed kopt's wall clock for the same calls "
                f"({new.kopt_wall_ms:.3f} ms): the events were not measured honestly")
    if any(e <= 0 for e in new.event_ms) and any(e > 0 for e in ref.event_ms):
        return "a CUDA event time of zero or less: the events did not bracket the call"
    gap_new = statistics.median(w - e for w, e in zip(new.call_wall_ms, new.event_ms))
    gap_ref = statistics.median(w - e for w, e in zip(ref.call_wall_ms, ref.event_ms))
    allowed = gap_ref + max(GAP_SLACK_MS, GAP_SLACK_FRACTION * statistics.median(new.event_ms))
    if gap_new > allowed:
        return (f"work outside the timed stream: each call's full-drain time exceeds its events by {gap_new:.3f} ms "
                f"(the reference: {gap_ref:.3f} ms): work on a side stream after the end event, or a start event "
                f"recorded late -- synchronise side streams before returning")
    return _under_reported(ref, new)


def _under_reported(ref: RoundTimes, new: RoundTimes) -> str | None:
    """The lower bound: events shrunk after they were measured (forward reaches the timer's
    frame and edits the lists it fills) leave kopt's wall clock for the round far above them.
    What the events do not cover is the same harness work on both sides, so the candidate's
    may exceed the reference's only by a generous factor and slack."""
    unclaimed_new = new.kopt_wall_ms - sum(new.event_ms)
    unclaimed_ref = max(ref.kopt_wall_ms - sum(ref.event_ms), 0.0)
    allowed = UNCLAIMED_FACTOR * unclaimed_ref + max(UNCLAIMED_SLACK_MS, UNCLAIMED_SLACK_FRACTION * ref.kopt_wall_ms)
    if unclaimed_new > allowed:
        return (f"CUDA event times ({sum(new.event_ms):.3f} ms) leave {unclaimed_new:.3f} ms of kopt's wall clock "
                f"for the same calls unaccounted for (the reference: {unclaimed_ref:.3f} ms): the events "
                f"under-report the calls")
    return None


def per_call_ms(times: RoundTimes) -> float:
    return sum(times.event_ms) / max(1, len(times.event_ms))


def wall_confirmed_ms(ref: RoundTimes, new: RoundTimes) -> float:
    """The candidate's per-call time, its events believed only as far as kopt's wall clock
    confirms them. Its events live in its own process (native code can rewrite them); its
    round's wall clock cannot be moved, and what that clock holds besides the calls (flush,
    drain, inputs placed, outputs sent) is the reference's unaccounted time, the same harness
    work on both sides. So the round counts at least its wall clock minus that, less a slack
    for the noise between two rounds -- raised at most to the reference's own events, so the
    noise never makes an honest copy's round slower than the reference's. The reference's
    events come from a process the candidate never ran in and stand as they are."""
    events_ref, events_new = sum(ref.event_ms), sum(new.event_ms)
    unclaimed_ref = max(ref.kopt_wall_ms - events_ref, 0.0)
    floor = (new.kopt_wall_ms - unclaimed_ref) * (1 - WALL_SLACK_FRACTION)
    return max(events_new, min(events_ref, floor)) / max(1, len(new.event_ms))


def parse_gpus(text: str | None) -> list[int]:
    """`--gpus 0,1` -> [0, 1]; raises ValueError with a message for anything else."""
    if not text:
        return []
    try:
        ids = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise ValueError(f"--gpus takes GPU indices separated by commas (e.g. 0,1), not {text!r}") from None
    if not ids or any(i < 0 for i in ids) or len(set(ids)) != len(ids):
        raise ValueError(f"--gpus takes distinct non-negative GPU indices (e.g. 0,1), not {text!r}")
    return ids


class GpuLeases:
    """One evaluation per GPU at a time: wraps an evaluator so each call borrows a GPU
    index from the pool (CUDA_VISIBLE_DEVICES of its workers) and returns it after."""

    def __init__(self, evaluator, gpus: list[int]):
        import queue

        self.evaluator, self.gpus = evaluator, list(gpus)
        self._free: queue.Queue[int] = queue.Queue()
        for g in self.gpus:
            self._free.put(g)

    def __call__(self, task, solution, cfg):
        gpu = self._free.get()
        try:
            result = self.evaluator(task, solution, cfg.model_copy(update={"gpu": gpu}))
            result.setdefault("checks", {})["gpu_index"] = gpu
            return result
        finally:
            self._free.put(gpu)
