"""Correctness: rounds of the same fresh inputs to both sides, the candidate's outputs
checked in the reference's worker; the trial plan (signed, distributions, scaled and
stress shapes, re-initialised weights)."""
from __future__ import annotations

import hashlib
import secrets

from kopt.sandboxes.eval_channel import WorkerFailed, _check_outputs_blob
from kopt.sandboxes.eval_session import EvalConfig, SkipTrial, Verdict, _Session
from kopt.sandboxes.reference_error import answer_cost


def _exchange(s: _Session, seeds: list[int], label: str, signed: bool = False, scale: dict | None = None,
              checked: bool = False, timed: bool = False, base: bool = False, dist: str = "",
              first: str = "ref", hold: bool = False, digest: bool = False) -> dict:
    """One round: the same fresh inputs to both sides as the same `call` (inputs in, outputs
    back, timed from the request to the reply's last byte), then the candidate's outputs go
    to the reference worker to be checked there (a process the candidate never ran in).

    On a checked trial the reference runs first: inputs it cannot make or run, or where it is
    not finite while the task's own are, raise SkipTrial before the candidate sees them
    (the base trial's raise UserInputError: the task is broken). After a checked call the
    candidate is asked, separately, for its inputs as it left them and for a repeat pass.
    A timed round says which side calls `first` (the timing alternates it); with `hold`, both
    sides keep the previous round's outputs alive, and with `digest` the outputs' digests
    are in `digests` (see eval_timing._check_held)."""
    skippable = checked and not base and not timed
    ref = s.ref_try if skippable else s.ref_call
    cpu0 = s.ref.worker.cpu_seconds()
    gen, inputs = ref({"cmd": "make_inputs", "seeds": seeds, "signed": signed, "scale": scale or {},
                       "dists": [dist] * len(seeds) if dist else None})
    n = len(seeds)
    # both sides seed each forward from this (a stochastic forward draws the same numbers);
    # drawn apart from the input seeds, so it tells the candidate nothing about its inputs
    call, call_seed = {"cmd": "call"}, secrets.randbits(31)
    times = {"gen_cpu": s.ref.worker.cpu_seconds() - cpu0, "gen_s": gen.get("gen_s", 0.0),
             "shapes": gen.get("shapes", []), "dist": dist, "label": label}
    workers = {"new": s.new.worker, "ref": s.ref.worker}
    order = ["new", "ref"] if timed and first == "new" else ["ref", "new"]
    for role in order:
        # inputs are put in place first, out of the clock; the timed `call` then carries no
        # payload: forward on them, outputs serialised and received
        put = {"cmd": "put", "seed": call_seed, **({"hold": True} if hold else {})}
        if role == "ref":
            ref(put, inputs)
        else:
            s.new_call(put, inputs)
        c0, a0 = workers[role].cpu_seconds(), workers[role].anonymous_kib() if timed else None
        if role == "ref":
            reply, ref_out = ref(dict(call))
        else:
            reply, new_out = s.new_call(dict(call), max_payload=s.output_cap(n))
        times[role] = (s.ref if role == "ref" else s.new).elapsed
        times[f"{role}_run_cpu"] = workers[role].cpu_seconds() - c0
        a1 = workers[role].anonymous_kib() if a0 is not None else None
        times[f"{role}_fresh_kib"] = None if a1 is None else a1 - a0  # the call's outputs are still held
        if s.cfg.device == "cuda":
            gpu = (reply.get("event_ms"), reply.get("call_wall_ms"))
            if not all(isinstance(v, list) and len(v) == n for v in gpu):
                raise Verdict("rejected", f"{label}: the {role} worker's GPU times do not match its {n} call(s)")
            times[f"{role}_gpu"] = gpu
        if digest:  # now, before the channel reuses the buffer
            times.setdefault("digests", {})[role] = hashlib.sha256(ref_out if role == "ref" else new_out).digest()
        if role == "ref":
            s.out_per_call = max(s.out_per_call, len(ref_out) // n)
            times["ref_out_bytes"] = len(ref_out) // n
            # asked after the clock, and only where a trial may be skipped for it (never in a timed
            # round: no reference-only work between the two sides' calls of a round)
            if checked and not timed:
                times["ref_nonfinite"] = bool(ref({"cmd": "nonfinite"})[0].get("nonfinite"))
            if skippable and times["ref_nonfinite"] and not s.base_nonfinite:
                raise SkipTrial("the reference is not finite there")
        else:
            s.police("forward")
    new_bytes = _outputs_bytes(new_out, n, "call")
    parts = [new_out]
    c0 = s.new.worker.cpu_seconds()
    if checked:
        _, after = s.new_call({"cmd": "inputs_after"}, max_payload=4 * len(inputs) + (1 << 20))
        _outputs_bytes(after, n, "inputs_after")
        rep, again = s.new_call({"cmd": "repeat", "trace": base}, max_payload=s.output_cap(n))
        _outputs_bytes(again, n, "repeat")
        times["new_native_calls"] = rep.get("native_calls", 0)
        parts += [after, again]
        s.police("repeat")
    times["new_check_cpu"] = s.new.worker.cpu_seconds() - c0
    times["bytes_per_call"] = (len(inputs) + len(new_out)) / n
    times["new_tensor_bytes"] = new_bytes
    cfg = s.cfg
    c0 = s.ref.worker.cpu_seconds()
    # a second opinion in float64 (reference_error), its answers given half the compare's time
    # limit, where one of them fits in it (the other half: one started before the budget ran out)
    budget = max(0.0, min(cfg.call_timeout_s / 2, s.float64_left)) \
        if answer_cost(times["ref"] / n) < cfg.call_timeout_s / 2 else 0
    times["check"] = s.compare({"label": label, "atol": cfg.atol, "rtol": cfg.rtol, "float64_s": budget}, parts)
    spent = times["check"].get("float64_spent")
    times["float64_s"] = float(spent) if isinstance(spent, (int, float)) and spent > 0 else 0.0
    s.float64_left -= times["float64_s"]
    times["check_cpu"] = s.ref.worker.cpu_seconds() - c0
    return times


def _outputs_bytes(data, n_calls: int, cmd: str) -> int:
    try:
        return _check_outputs_blob(data, n_calls, cmd)
    except WorkerFailed as e:
        raise Verdict("rejected", e.message) from None


def _raise_if_failed(times: dict, checks: dict) -> None:
    check = times["check"]
    if check.get("float64_calls"):
        checks["float64_reference"] = checks.get("float64_reference", 0) + int(check["float64_calls"])
    if times.get("float64_s"):
        checks["float64_s"] = round(checks.get("float64_s", 0.0) + times["float64_s"], 3)
    err = check.get("max_abs_err")
    checks["max_abs_err"] = max(checks.get("max_abs_err", 0.0), err if isinstance(err, (int, float)) else 0.0)
    if check.get("verdict"):
        if check.get("mismatch"):
            checks["mismatch"] = {"trial": times["label"], "shapes": times["shapes"], "dist": times["dist"],
                                  **check["mismatch"]}
        raise Verdict(check["verdict"], check["reason"], checked=False)


# The odd stress size leaves the largest remainder a vector width up to this divides it by
# (15 of 16, 7 of 8, 3 of 4, 1 of 2). The scaled trial (v // 2 + 1) and the old odd size
# (v + 1) both leave 1 of 4 on every power-of-two size: a tail loop that handled one
# leftover element passed every trial (red team 6). A size of at least WIDE_TAIL_WIDTH gets
# the longest tail of that width (63 of 64, 31 of 32): a 32-wide main loop (8 floats unrolled
# 4x) whose tail forgot a 16-block when n % 32 >= 16 passed every trial at 16 (red team 7).
TAIL_WIDTH = 16
WIDE_TAIL_WIDTH = 64


def _one_short(v: int) -> int:
    """The first size past v that is one short of a multiple of its tail width."""
    width = WIDE_TAIL_WIDTH if v >= WIDE_TAIL_WIDTH else TAIL_WIDTH
    return v + width - (v + 1) % width


def edge_shapes(constants: dict[str, int]) -> list[dict[str, int]]:
    """Input shapes where kernels tuned to the task's sizes break: every input-only size
    constant at 1 (tiny extents, one-block grids), then at the first size past the task's
    that is one short of a multiple of TAIL_WIDTH (WIDE_TAIL_WIDTH for sizes past it): odd, and
    the longest remainder loop of every vector width or block size up to it. Shapes the
    reference rejects are skipped by the trial loop."""
    if not constants:
        return []
    tiny = {k: 1 for k in constants}
    odd = {k: _one_short(v) for k, v in constants.items()}
    return [shape for shape in (tiny, odd) if shape != constants]


def untied_shapes(constants: dict[str, int]) -> list[dict[str, int]]:
    """One shape per group of equal-valued input-only size constants (H = W, dim1 = dim2)
    where they differ (the k-th of a group at its value + k; the other constants keep the
    task's values): every other trial moves them together, so a kernel that mixes up two
    such dims would pass them all. A task that needs them equal is skipped by the
    reference-first rule."""
    groups: dict[int, list[str]] = {}
    for k, v in constants.items():
        groups.setdefault(v, []).append(k)
    return [{k: v + i for i, k in enumerate(names)} for v, names in groups.items() if len(names) > 1]


# A reference call slower than this, or moving more bytes, makes a task "heavy": every extra
# check still runs, each on one input set instead of several (a large task spent 77 s in
# correctness trials).
HEAVY_CALL_S = 0.25
HEAVY_BYTES = 64 << 20


def _trial_groups(cfg: EvalConfig, constants: dict, heavy: bool) -> list[tuple]:
    """(label, seeds, signed, scaled constants, input distribution) of every trial after the
    first base call."""
    def seeds(k: int) -> list[int]:
        return [secrets.randbits(31) for _ in range(1 if heavy else k)]

    n_signed = cfg.trials // 2 if cfg.trials > 1 else 0
    groups = []
    if cfg.trials - n_signed > 1:
        groups.append(("trial", seeds(cfg.trials - n_signed - 1), False, {}, ""))
    if n_signed:
        groups.append(("signed-input trial", seeds(n_signed), True, {}, ""))
    for dist, what in (("heavy", "heavy-tailed"), ("large", "x100"), ("small", "x1e-3")):
        groups.append((f"distribution trial ({what} inputs)", seeds(1), False, {}, dist))
    scaled = {k: v // 2 + 1 for k, v in constants.items()}
    if scaled:
        groups.append(("scaled-shape trial (" + ", ".join(f"{k}={v}" for k, v in scaled.items()) + ")",
                       seeds(2), False, scaled, ""))
    for shape in untied_shapes(constants):  # the other constants keep the task's values
        groups.append(("untied-size trial (" + ", ".join(f"{k}={v}" for k, v in shape.items()) + ")",
                       seeds(1), False, shape, ""))
    for shape in edge_shapes(constants) if cfg.edge_shapes else []:
        groups.append(("stress-shape trial (" + ", ".join(f"{k}={v}" for k, v in shape.items()) + ")",
                       seeds(1), True, shape, ""))
    return groups


def _correctness(s: _Session, cfg: EvalConfig, res: dict, constants: dict) -> None:
    checks = res["checks"]
    first = _exchange(s, [secrets.randbits(31)], "trial", checked=True, base=True)
    s.base_nonfinite = first["ref_nonfinite"]
    native_calls = first["new_native_calls"]
    s.interpreted = res["kernel"] == "triton" and cfg.device == "cpu" and native_calls > 0
    _raise_if_failed(first, checks)
    heavy = first["ref"] > HEAVY_CALL_S or first["bytes_per_call"] > HEAVY_BYTES
    if heavy:
        checks["heavy"] = (f"reference call {first['ref']:.2f}s, {first['bytes_per_call'] / 2**20:.0f} MiB moved: "
                           f"one input set per extra trial")
    ran, shapes = 1, 1
    for label, group_seeds, signed, scale, dist in _trial_groups(cfg, constants, heavy):
        base = label == "trial"
        try:
            times = _exchange(s, group_seeds, label, signed, scale, checked=True, base=base, dist=dist)
        except SkipTrial as e:
            checks.setdefault("skipped", []).append(f"{label}: the reference rejects these inputs ({e})"
                                                    if "not finite" not in str(e) else f"{label}: {e}")
            continue
        _raise_if_failed(times, checks)
        ran += len(group_seeds)
        shapes += 1 if scale else 0
    checks.update(trials=ran, shapes=shapes, atol=cfg.atol, rtol=cfg.rtol)
    if res["kernel"] in ("cpp", "cuda", "triton", "cupy") and not native_calls:
        checks["ghost_kernel"] = (f"the solution builds a {res['kernel']} kernel but forward never called "
                                  f"into it: counted as a plain PyTorch solution")
        res["kernel"] = "torch"
    s.heavy = heavy


def task_quality(s: _Session, cfg: EvalConfig, res: dict) -> None:
    """The reference-only task-quality flags (many seeds, weights re-drawn and put back). Run
    after the timed rounds: work only one side did must not sit between the two sides'
    clocks (copies of transposed-conv tasks leaned to 1.1-1.5x when it ran before them)."""
    n_quality = min(cfg.quality_seeds, 3) if getattr(s, "heavy", False) else cfg.quality_seeds
    reason = s.ref_call({"cmd": "degeneracy", "seeds": [secrets.randbits(31) for _ in range(n_quality)],
                         "atol": cfg.atol, "rtol": cfg.rtol},
                        timeout=cfg.setup_timeout_s)[0].get("reason")
    res["degenerate"] = reason is not None
    if reason:
        res["degenerate_reason"] = reason


def param_pairs(ref: list | None, new: list | None) -> list[tuple[int, int]]:
    """(reference index, candidate index) for each reference parameter the candidate holds
    too, same shape and values (its first unused twin): the ones the trial re-draws."""
    pairs: list[tuple[int, int]] = []
    free = list(enumerate(new or []))
    for i, sig in enumerate(ref or []):
        k = next((k for k, (_, other) in enumerate(free) if other == sig), None)
        if k is not None:
            pairs.append((i, free.pop(k)[0]))
    return pairs


def _reinit_trial(s: _Session, cfg: EvalConfig, res: dict, pairs: list[tuple[int, int]]) -> None:
    """The parameters both sides hold alike (`pairs`) are re-drawn from a secret seed on both
    (a second initialisation scheme) for one more trial, then restored. A candidate's other
    parameters stay: a forward that uses a frozen copy instead of its parameters fails."""
    seed = secrets.randbits(31)
    label = "re-initialised-weights trial"
    ref_order, new_order = [i for i, _ in pairs], [j for _, j in pairs]
    s.ref_call({"cmd": "reinit", "seed": seed, "order": ref_order})
    s.new_call({"cmd": "reinit", "seed": seed, "order": new_order})
    try:
        times = _exchange(s, [secrets.randbits(31)], label, checked=True)
        _raise_if_failed(times, res["checks"])
        res["checks"]["trials"] += 1
        res["checks"]["weights_reinitialised"] = True
    except SkipTrial as e:
        res["checks"].setdefault("skipped", []).append(f"{label}: {e}")
    finally:
        s.ref_call({"cmd": "reinit", "restore": True, "order": ref_order})
        s.new_call({"cmd": "reinit", "restore": True, "order": new_order})
