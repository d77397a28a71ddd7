"""Timing: warm-up, the transfer cost both sides carry, paired timed rounds (a secret share
of them checked like trials), early stop on a tight CI, and the checks on what timing saw
(work outside the calls, the memory-bandwidth floor, GPU event times and memory)."""
from __future__ import annotations

import hashlib
import math
import secrets
import statistics

from kopt.sandboxes import gpu_timing
from kopt.sandboxes.eval_session import EvalConfig, Verdict, _Session
from kopt.sandboxes.eval_trials import _exchange, _raise_if_failed
from kopt.sandboxes.machine import memory_bandwidth_gbs
from kopt.sandboxes.timing import estimate_speedup, speed_verdict


def _timing(s: _Session, cfg: EvalConfig, res: dict) -> None:
    checks = res["checks"]
    # warm-up round, also sizes the rounds and fixes the thread baseline
    warm = [secrets.randbits(31) for _ in range(3)]
    times = _exchange(s, warm, "warm-up call", timed=True, first=secrets.choice(ROLES))
    _raise_if_failed(times, checks)
    s.baseline_threads = s.new.worker.thread_count()
    # rounds are sized on the forward work alone, and long enough that the transfer cost
    # subtracted from them (the same for both sides) does not drown the difference
    moved = _transfer_s(s, len(warm))
    per_call = max(1e-6, (min(times[r] for r in ("ref", "new")) - moved) / len(warm))
    slowest = max(times[r] for r in ("ref", "new")) / len(warm)  # gross: what the budget pays for
    # an even number, so each side goes first in half of them (see first_callers)
    rounds = max(6, min(cfg.rounds, int(cfg.max_timing_s / (2 * slowest))))
    rounds -= rounds % 2
    calls = min(math.ceil(max(cfg.round_ms / 1000, 2 * moved) / per_call),
                int(cfg.input_budget_s / (rounds * max(times["gen_s"], 1e-6))),
                int(cfg.max_timing_s / (2 * rounds * slowest)),
                int(cfg.data_budget_mb * 2**20 / (rounds * times["bytes_per_call"])), 1000)
    calls = max(1, calls)
    overhead = _transfer_s(s, calls)
    checks["roundtrip_ms"] = round(1000 * overhead, 4)
    est = _timed_rounds(s, cfg, calls, rounds, checks, overhead)
    held_mb = _memory_grown(s)
    s.new_call({"cmd": "ping"})  # the harness checks the last call's aftermath at this request
    s.police("the timed calls")
    if cfg.device == "cpu":  # the floor is host memory bandwidth; a GPU's is another matter
        _check_physical_bound(est.new_ms, times["bytes_per_call"], checks)
    res.update(speedup=round(est.speedup, 4), speedup_ci=[round(est.ci[0], 4), round(est.ci[1], 4)],
               ref_ms=round(est.ref_ms, 6), new_ms=round(est.new_ms, 6))
    checks.update(rounds=est.rounds, calls_per_round=calls, threads=s.threads, noise_floor=cfg.noise_floor)
    res["verdict"] = speed_verdict(est, cfg.noise_floor)
    cpu = checks.get("cpu_speedup")
    if res["verdict"] == "faster" and (why := cpu_veto(cpu, s.threads, cfg.noise_floor)):
        checks["cpu_veto"] = why
        res["verdict"] = "same"
        res["speedup_ci"][0] = round(min(est.ci[0], cpu["ci"][0]), 4)
    if res["verdict"] == "faster" and (why := fresh_memory_veto(checks.get("fresh_kib_per_call"))):
        checks["fresh_memory_veto"] = why
        res["verdict"] = "same"
    if res["verdict"] == "faster" and cfg.device == "cpu" and (why := memory_veto(held_mb)):
        checks["memory_veto"] = why
        checks["memory_grown_mb"] = {k: round(v) for k, v in held_mb.items()}
        res["verdict"] = "same"


def _transfer_s(s: _Session, calls: int, n: int = 5) -> float:
    """What a round's clock holds besides its forward calls: the request, and the reference
    worker sending a round's outputs back (`echo`). Measured in the reference only and
    subtracted from both sides alike, so the candidate cannot inflate it.
    Outputs of another size gain nothing: every timed round's outputs must have the reference's
    structure, shapes and dtypes, so the bytes are equal (output_cap only bounds the read before).
    Layout does gain: a non-contiguous reference output's copy is in the echo (docs/redteam.md)."""
    _, inputs = s.ref_call({"cmd": "make_inputs", "seeds": [secrets.randbits(31) for _ in range(calls)],
                            "signed": False, "scale": {}})
    s.ref_call({"cmd": "put"}, inputs)
    s.ref_call({"cmd": "call"})  # outputs of the same size as a round's
    samples = []
    for _ in range(n):
        s.ref_call({"cmd": "echo"})
        samples.append(s.ref.elapsed)
    return sorted(samples)[n // 2]


def _check_work_outside_forward(s: _Session, start: dict, inside: dict, checks: dict) -> None:
    """CPU the candidate burns while it is *not* being timed, against the reference's.

    Between timed calls both workers only wait for the next request (the reference also
    makes the inputs and checks the outputs, counted as its own work). A candidate that
    defers computation to a thread, or to whatever runs after its reply, shows up here in
    the kernel's accounting, which it cannot patch. The allowance is a share of the
    reference's own work (plus two ticks of the kernel's CPU clock), not a fixed slack.
    """
    outside = {role: (w.worker.cpu_seconds() - start[role]) - inside[role]
               for role, w in (("ref", s.ref), ("new", s.new))}
    checks["cpu_outside_forward_s"] = {k: round(v, 3) for k, v in outside.items()}
    allowed = 1.5 * max(outside["ref"], 0.0) + 0.1 * inside["ref"] + 0.02
    if outside["new"] > allowed:
        raise Verdict("rejected", f"work outside the timed calls: the candidate used "
                                  f"{outside['new']:.2f}s of CPU between calls vs {outside['ref']:.2f}s for the "
                                  f"reference (deferred or background computation)")


def _check_held(s: _Session, digests: dict, calls: int, kept: int, later: int, checks: dict) -> None:
    """A timed round's outputs, kept alive by both workers through every later round, must
    still be what each side sent then. A module that writes into outputs it has already
    returned (a ring of buffers it reuses: no fresh pages, so faster than the reference's
    allocations) passes every round it is checked in, yet a caller that keeps an output sees
    it change -- wrong as a module (red team 10). Where the reference's own outputs changed
    too (the task returns state it updates), nothing is judged."""
    _, ref_now = s.ref_call({"cmd": "held"})
    _, new_now = s.new_call({"cmd": "held"}, max_payload=s.output_cap(calls))
    s.police("the held outputs")
    if hashlib.sha256(ref_now).digest() != digests["ref"]:
        checks["held_outputs"] = "not checked: the reference's own outputs change after later calls"
    elif hashlib.sha256(new_now).digest() != digests["new"]:
        raise Verdict("incorrect", f"the outputs of timed round {kept + 1} changed during the {later} calls after "
                                   f"it: the module writes into outputs it already returned (reused output "
                                   f"buffers); a caller keeping one would see it change")


def _check_physical_bound(new_ms: float, bytes_per_call: float, checks: dict) -> None:
    """A call cannot beat reading its inputs and writing its outputs once from memory. Only
    for data well past the caches (32 MiB), with a 2x margin for measurement error."""
    if bytes_per_call < 32 << 20:
        return
    gbs = memory_bandwidth_gbs()
    floor_ms = bytes_per_call / (gbs * 1e9) * 1000
    checks["memory_floor_ms"] = round(floor_ms, 4)
    if new_ms < floor_ms / 2:
        raise Verdict("rejected", f"physically impossible: {new_ms:.4f} ms per call, but moving its "
                                  f"{bytes_per_call / 2**20:.0f} MiB of inputs and outputs once takes "
                                  f"{floor_ms:.4f} ms at this machine's {gbs:.1f} GB/s")


def _gpu_call_ms(times: dict) -> tuple[float, float]:
    """Per-call CUDA event times of a round (reference, candidate), once they agree with the
    clocks out of the candidate's reach (gpu_timing.cross_check); the candidate's never below
    what kopt's wall clock for its round confirms (gpu_timing.wall_confirmed_ms)."""
    rounds = {}
    for role in ("ref", "new"):
        event_ms, call_wall_ms = times[f"{role}_gpu"]
        rounds[role] = gpu_timing.RoundTimes(list(event_ms), list(call_wall_ms), times[role] * 1000)
    problem = gpu_timing.cross_check(rounds["ref"], rounds["new"])
    if problem:
        raise Verdict("rejected", problem)
    return gpu_timing.per_call_ms(rounds["ref"]), gpu_timing.wall_confirmed_ms(rounds["ref"], rounds["new"])


def _check_gpu_memory(s: _Session, before: dict, checks: dict) -> None:
    """A wedged CUDA context fails the evaluation; a leak is noted. Either way the worker
    process ends with this evaluation, so the next one starts on a clean GPU."""
    after = s.new_call({"cmd": "gpu_state"})[0]
    checks["gpu_memory"] = {k: round(v, 1) if isinstance(v, float) else v for k, v in after.items() if k != "ok"}
    problem, note = gpu_timing.memory_verdict(before, after)
    if problem:
        raise Verdict("runtime_error", problem)
    if note:
        checks["gpu_memory"]["note"] = note


def _compile_baseline(s: _Session, cfg: EvalConfig, res: dict) -> None:
    """Eager and torch.compile baselines both reported (GPU): `speedup` stays against eager."""
    reply = s.ref_call({"cmd": "compile_baseline"}, timeout=cfg.setup_timeout_s)[0]
    if "ms" in reply and res.get("new_ms"):
        res["checks"]["torch_compile"] = {"ref_ms": round(reply["ms"], 6),
                                          "speedup_vs_compile": round(reply["ms"] / res["new_ms"], 4)}
    else:
        res["checks"]["torch_compile"] = {"error": reply.get("error", "not measured")}


# Timed rounds stop early, from this many on, once the speedup's CI is narrower than half the
# noise floor: more rounds could not change the verdict (a quarter of it each side of the median).
# Even, like every stop: each side has gone first in as many rounds as the other.
EARLY_STOP_ROUNDS = 8
ROLES = ("ref", "new")


def first_callers(rounds: int) -> list[str]:
    """Which side calls first in each timed round: alternating from a secret start, so
    whatever favours the first (or the second) caller of a round -- caches the other side's
    call evicted, the scheduler's view of who just ran -- is shared equally by both sides.
    A random order per round left it to chance: 5 rounds could all start with one side."""
    start = secrets.randbelow(2)
    return [ROLES[(start + r) % 2] for r in range(rounds)]


def _ci_tight(ref_ms: list[float], new_ms: list[float], noise_floor: float) -> bool:
    est = estimate_speedup(ref_ms, new_ms, resamples=400, seed=len(ref_ms))
    return est.ci[1] / est.ci[0] < 1 + noise_floor / 2


def _timed_rounds(s: _Session, cfg: EvalConfig, calls: int, rounds: int, checks: dict,
                  overhead: float):
    ref_ms, new_ms = [], []
    cpu_ms: dict[str, list[float]] = {"ref": [], "new": []}
    fresh: dict[str, list | None] = {"ref": [], "new": []}  # KiB of anonymous memory a round's calls added
    start = {"ref": s.ref.worker.cpu_seconds(), "new": s.new.worker.cpu_seconds()}
    inside = {"ref": 0.0, "new": 0.0}
    # one timed round, and a third of the others, drawn in secret, are checked like the trials
    # after their calls (inputs left untouched, repeat pass): a call cannot tell it is only timed
    checked = {secrets.randbelow(min(rounds, EARLY_STOP_ROUNDS))} | {r for r in range(rounds)
                                                                   if secrets.randbelow(3) == 0}
    # the outputs of the first round not checked (a checked round's repeat pass writes into
    # its inputs, which an honest output may be a view of) are kept alive by both sides to
    # the end; rounds stop early only from EARLY_STOP_ROUNDS on, so later rounds follow it
    kept = min(r for r in range(rounds) if r not in checked or r == rounds - 2)
    held: dict = {}
    for r, first in enumerate(first_callers(rounds)):
        seeds = [secrets.randbits(31) for _ in range(calls)]
        times = _exchange(s, seeds, f"timed round {r + 1}", timed=True, checked=r in checked, first=first,
                          hold=r == kept + 1, digest=r == kept)
        _raise_if_failed(times, checks)
        held = times["digests"] if r == kept else held
        inside["ref"] += times["ref_run_cpu"] + times["gen_cpu"] + times["check_cpu"]
        inside["new"] += times["new_run_cpu"] + times["new_check_cpu"]
        if cfg.device == "cuda":
            ref_call, new_call = _gpu_call_ms(times)
        else:
            # the transfer cost is subtracted, but never more than 3/4 of a round: where it
            # dominates, its noise would otherwise turn into arbitrary ratios
            ref_call = max(times["ref"] - overhead, times["ref"] / 4) * 1000 / calls
            new_call = max(times["new"] - overhead, times["new"] / 4) * 1000 / calls
        ref_ms.append(ref_call)
        new_ms.append(new_call)
        for role in ROLES:
            cpu_ms[role].append(times[f"{role}_run_cpu"] * 1000 / calls)
            got = times.get(f"{role}_fresh_kib")
            fresh[role] = None if got is None or fresh[role] is None else fresh[role] + [got / calls]
        if (len(ref_ms) >= EARLY_STOP_ROUNDS and len(ref_ms) % 2 == 0 and r + 1 < rounds
                and _ci_tight(ref_ms, new_ms, cfg.noise_floor)):
            checks["stopped_early"] = f"CI within +-{cfg.noise_floor / 4:.1%} after {len(ref_ms)} rounds"
            break
    checks["timed_calls_checked"] = checks.get("timed_calls_checked", 0) + len(ref_ms) * calls
    _check_work_outside_forward(s, start, inside, checks)
    if len(ref_ms) > kept + 1:
        _check_held(s, held, calls, kept, (len(ref_ms) - kept - 1) * calls, checks)
    if cfg.device == "cpu":
        checks["cpu_speedup"] = cpu_speedup(cpu_ms["ref"], cpu_ms["new"])
        if None not in fresh.values():  # the median round: a garbage collection inside one frees 100 MB
            checks["fresh_kib_per_call"] = {**{k: round(statistics.median(v), 1) for k, v in fresh.items()},
                                            "outputs": round(times["ref_out_bytes"] / 1024, 1)}
    return estimate_speedup(ref_ms, new_ms, seed=secrets.randbits(31))


def cpu_veto(cpu: dict | None, threads: int, noise_floor: float) -> str | None:
    """Why a wall-clock `faster` is not believed, or None. On one thread (pinned to one core, as
    the reference) a call gains no wall time it does not gain in CPU time but waiting for the
    core, which is the load's: an honest copy of level1/44 (load average 15) read faster 1.33x
    (CI 1.11-1.51) with its CPU seconds at 1.007x (CI 0.996-1.015) (red team 6). Then the
    verdict is `same` and the CI reaches down to the CPU speedup's."""
    if threads != 1 or not cpu or cpu["ci"][1] >= 1 + noise_floor:
        return None
    return (f"the wall clock says faster, the CPU seconds of the same calls {cpu['speedup']:.3f}x "
            f"(CI up to {cpu['ci'][1]:.3f}) on one core: the difference is the machine's load")


# Memory a candidate may take on past the reference's (and twice the task model's, for weights
# re-packed) before its speed stops being believed on the CPU: workspaces and a compiler's
# caches fit in it; a pool of output memory faulted in before the clock does not (its outputs
# skip the fresh pages every output of the reference pays for: `faster` 1.40x on a ReLU, red
# team 10). Measured: an honest ReLU copy took on 193 MiB (its reference 233), the 768 MiB
# pool 817-945 (its reference 145-561: the trials' inputs it made).
MEMORY_SLACK_MB = 256


# Outputs of at least this much (1 MiB) are fresh memory from the kernel on both sides
# (eval_session._worker_env fixes glibc's mmap threshold at 64 KiB), and well past the
# kernel's per-CPU slack in its resident-memory counts.
FRESH_OUTPUT_KIB = 1024


def fresh_memory_veto(per_call: dict | None) -> str | None:
    """Why a `faster` is not believed for the fresh memory its timed calls did not take, or
    None. Each call's outputs are held when kopt reads the worker's resident anonymous memory
    after it (RssAnon, from /proc): the reference's grows by its outputs, pages the kernel
    allocated and zeroed inside the clock. A candidate whose calls add less than half of that
    (or of what the reference added, if less) writes its outputs into memory it had before: a
    pool reusing only the buffers its caller dropped (sys.getrefcount) was `faster` 1.32x past
    the held-output check and the memory veto (red team 12), and a count of page faults was
    padded with cheap zero-page read faults (1.61x, red team 13). A fused kernel that skips
    the reference's intermediates still allocates its own outputs."""
    outputs = (per_call or {}).get("outputs", 0)
    if not per_call or outputs < FRESH_OUTPUT_KIB or per_call["ref"] < FRESH_OUTPUT_KIB / 2:
        return None
    needed = min(per_call["ref"], outputs)
    if per_call["new"] >= needed / 2:
        return None
    return (f"the candidate's timed calls added {per_call['new']:.0f} KiB of fresh memory each, the "
            f"reference's {per_call['ref']:.0f} KiB for {outputs:.0f} KiB of outputs: outputs written into "
            f"memory faulted in before the clock (a pool of reused buffers) buy time the calls did not pay for")


def _memory_grown(s: _Session) -> dict:
    """Each side's resident anonymous and shared memory now, less what it held before setup
    (torch imported, nothing of the task's or the solution's loaded): MiB, or None."""
    base = getattr(s, "resident_base", {})
    out = {}
    for role, ch in (("ref", s.ref), ("new", s.new)):
        now, before = ch.worker.resident_mb(), base.get(role)
        out[role] = None if now is None or before is None else max(0.0, now - before)
    model, before = base.get("model"), base.get("ref")
    out["model"] = None if model is None or before is None else max(0.0, model - before)
    return out


def memory_veto(grown_mb: dict) -> str | None:
    """Why a `faster` is not believed for the memory the candidate took on (`grown_mb`: each
    side's resident memory after the timed calls beyond what it held before setup), or None."""
    ref, new, model = grown_mb.get("ref"), grown_mb.get("new"), grown_mb.get("model") or 0.0
    if ref is None or new is None or new <= ref + 2 * model + MEMORY_SLACK_MB:
        return None
    return (f"the candidate took on {new:.0f} MiB of memory by the end of its timed calls, the reference "
            f"{ref:.0f} MiB: memory faulted in before the clock (a pool of outputs) buys time the calls did not "
            f"pay for")


def cpu_speedup(ref_cpu_ms: list[float], new_cpu_ms: list[float]) -> dict | None:
    """The timed rounds' speedup in the workers' CPU seconds (the kernel's count for each
    worker's cgroup): waiting for a core on a loaded machine moves wall time, not this. Beside
    the verdict, never in it (a candidate's extra threads cost CPU, not wall time): where the
    wall-clock speedup strays and this one does not, the stray is the load's."""
    if not ref_cpu_ms or min(ref_cpu_ms + new_cpu_ms) <= 0:
        return None  # a CPU clock too coarse to count a round (no CPU-accounting cgroup)
    est = estimate_speedup(ref_cpu_ms, new_cpu_ms, resamples=400, seed=len(ref_cpu_ms))
    return {"speedup": round(est.speedup, 4), "ci": [round(est.ci[0], 4), round(est.ci[1], 4)]}
