"""Measurements of a task's *reference* in a separate process: the size fitting of
`--fit auto` and the `torch.compile` baseline of `kopt bench`.

Only the task's own code runs here (never a candidate), so the probe is a plain child
process with a time limit, an address-space limit and no network libraries allowed to
download (HF offline). It imports torch once and answers one JSON request.

    python -m kopt.agent.targets.kernelbench.size_probe < request.json   (prints one result line)
"""
from __future__ import annotations

import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
import types

from kopt.agent.targets.kernelbench.sizes import next_step, rewrite, size_constants

MARK = "KOPT_PROBE_RESULT "
# optimistic compute rates: a size whose FLOPs alone would take longer than max_ms even
# at these rates is shrunk without being run (a 16k x 16k matmul would take minutes here)
FLOP_RATE = {"cpu": 2e11, "cuda": 1e14}
# at the smallest sizes, a reference call up to this many times max_ms is still run (slowly);
# past it (measured, or estimated by FLOPs at optimistic rates) the task is skipped as too big
SLOW_FACTOR = 20
# the meta-device pass is a shortcut, not a must: an RNN runs it op by op through Python (upstream
# level 3 GRUBidirectional: 15-30 s at seq_len 16, past the probe's 300 s at its 512), so past
# this many seconds of the probe's CPU (not wall: the load must not change a fit) the sizes are
# measured for real instead, and the rest of that fit goes without it
META_BUDGET_S = 10.0


class _OverBudget(Exception):
    pass


class _Expiry:
    """Whether the meta pass's timer went off: torch may wrap the _OverBudget raised inside its
    dispatch into an error of its own, and that must still read as over budget."""
    fired = False


def _time_limit(seconds: float, expiry: _Expiry | None = None):
    """A context manager raising _OverBudget after `seconds` of this process's CPU time (the
    probe's main thread only; elsewhere, no limit); `expiry.fired` records that it went off."""
    import contextlib
    import threading

    @contextlib.contextmanager
    def limit():
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def expire(signum, frame):
            if expiry is not None:
                expiry.fired = True
            raise _OverBudget()

        previous = signal.signal(signal.SIGPROF, expire)
        signal.setitimer(signal.ITIMER_PROF, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.signal(signal.SIGPROF, previous)

    return limit()


def default_threads() -> int:
    """The evaluator's choice: half the cores, at most 8."""
    return max(1, min(8, len(os.sched_getaffinity(0)) // 2))


def run_probe(request: dict, threads: int | None = None, timeout_s: float = 300.0, memory_mb: int = 8192) -> dict:
    """Run one probe request in a child process; a crash or timeout comes back as `error`."""
    threads = threads or default_threads()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "OMP_WAIT_POLICY": "PASSIVE", "MALLOC_MMAP_THRESHOLD_": str(32 << 20),
           "MALLOC_TRIM_THRESHOLD_": str(256 << 20), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TORCHINDUCTOR_COMPILE_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    limit = None if request.get("device") == "cuda" else memory_mb << 20

    def limits() -> None:
        if limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    proc = subprocess.Popen([sys.executable, "-m", __name__, str(threads)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True, preexec_fn=limits)
    try:
        out, err = proc.communicate(json.dumps(request), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"error": f"the probe of the reference took longer than {timeout_s:.0f}s", "transient": True}
    for line in reversed(out.splitlines()):
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    tail = [s for s in (err or "").strip().splitlines() if s.strip()][-1:] or [f"exit code {proc.returncode}"]
    how = "memory limit" if proc.returncode in (-9, 137) else "crashed"
    return {"error": f"the reference {how} in the probe: {tail[0][:300]}", "transient": proc.returncode < 0}


# -- inside the probe process -------------------------------------------------------------

def _one_line(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


def _is_memory_error(e: BaseException) -> bool:
    text = str(e).lower()
    return isinstance(e, MemoryError) or any(s in text for s in ("can't allocate", "out of memory", "bad_alloc",
                                                                 "not enough memory"))


def _nbytes(x) -> int:
    import torch

    if isinstance(x, torch.Tensor):
        return x.numel() * x.element_size()
    if isinstance(x, (list, tuple)):
        return sum(_nbytes(v) for v in x)
    if isinstance(x, dict):
        return sum(_nbytes(v) for v in x.values())
    return 0


def _to(x, device: str):
    import torch

    if isinstance(x, torch.Tensor):
        return x.to(device)
    if isinstance(x, (list, tuple)):
        return type(x)(_to(v, device) for v in x)
    return x


def load_source(source: str, path: str):
    mod = types.ModuleType("kopt_probe_task")
    mod.__file__ = path
    exec(compile(source, path, "exec"), mod.__dict__)
    return mod


def _unqueued_s() -> float:
    """Wall seconds less the time this thread waited for a core (its run-queue delay, from
    /proc): a fit measured on a loaded machine comes out as on a quiet one (upstream AlexNet at
    batch 2 read 1262 ms a call at load 17: `too_large`). Sleep and I/O still count; plain
    wall time where the kernel keeps no scheduler statistics."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            delay_ns = int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        delay_ns = 0
    return time.perf_counter() - delay_ns / 1e9


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def measure(source: str, path: str, device: str, budget_mb: float, max_ms: float,
            params_budget_mb: float = float("inf"), meta_budget_s: float = META_BUDGET_S) -> dict:
    """io_mb, params_mb and ms of one reference call at the sizes in `source`. A meta-device
    pass sizes the tensors and weights and counts FLOPs first, so a size far too big is
    never allocated (a 16k x 16k MLP's gigabytes of weights take minutes just to initialise);
    past `meta_budget_s` CPU seconds (or with none) it is given up (`meta` says so) and the
    call is measured for real."""
    import torch

    try:
        mod = load_source(source, path)
    except Exception as e:  # noqa: BLE001 - the task's own import failed
        return {"error": _one_line(e)}
    res: dict = {"io_mb": None, "ms": None}
    expiry = _Expiry()
    try:
        from torch.utils.flop_counter import FlopCounterMode

        if meta_budget_s <= 0:
            raise _OverBudget()

        with _time_limit(meta_budget_s, expiry), torch.device("meta"), torch.no_grad():
            model = mod.Model(*mod.get_init_inputs())
            inputs = list(mod.get_inputs())
            counter = FlopCounterMode(display=False)
            with counter:
                out = model(*inputs)
        res["io_mb"] = (_nbytes(inputs) + _nbytes(out)) / 2**20
        if isinstance(model, torch.nn.Module):
            res["params_mb"] = _nbytes([*model.parameters(), *model.buffers()]) / 2**20
        est_ms = counter.get_total_flops() / FLOP_RATE.get(device, 2e11) * 1000
        if res["io_mb"] > budget_mb or est_ms > max_ms * 4 or res.get("params_mb", 0) > params_budget_mb:
            res["ms_estimate"] = est_ms
            return res
    except _OverBudget:
        res["meta"] = f"meta-device pass over {meta_budget_s:g} s: measured for real"
    except Exception:  # noqa: BLE001 - no meta kernel for some op: measure for real
        if expiry.fired:  # our _OverBudget, wrapped by torch on its way out
            res["meta"] = f"meta-device pass over {meta_budget_s:g} s: measured for real"
    try:
        torch.manual_seed(42)
        model = mod.Model(*mod.get_init_inputs())
        model = model.to(device) if isinstance(model, torch.nn.Module) else model
        if isinstance(model, torch.nn.Module):
            res["params_mb"] = _nbytes([*model.parameters(), *model.buffers()]) / 2**20
        inputs = _to(list(mod.get_inputs()), device)
        with torch.no_grad():
            warm0 = _unqueued_s()
            out = model(*inputs)
            _sync(device)
            res["io_mb"] = (_nbytes(inputs) + _nbytes(out)) / 2**20
            start = _unqueued_s()
            # a first call at twice the slow limit says all there is to say about this size (it
            # is shrunk, or too big even with a first call's overheads taken off): no more calls
            times = [(start - warm0) * 1000]
            if times[0] <= 2 * max_ms * SLOW_FACTOR:
                times = []
                while len(times) < 5 and (len(times) < 2 or _unqueued_s() - start < 0.3):
                    t0 = _unqueued_s()
                    model(*inputs)
                    _sync(device)
                    times.append((_unqueued_s() - t0) * 1000)
        res["ms"] = min(times)
    except Exception as e:  # noqa: BLE001
        return {"error": _one_line(e), "memory": _is_memory_error(e)}
    return res


def fit(req: dict) -> dict:
    """The fitting loop (agent/targets/kernelbench/fit.py decides the steps): smallest change that fits."""

    source, path, device = req["source"], req["path"], req.get("device", "cpu")
    budget_mb, max_ms = float(req["budget_mb"]), float(req["max_ms"])
    params_budget = float(req.get("params_mb") or "inf")
    constants = size_constants(source)
    sizes = {c.name: c.value for c in constants}
    frozen: set[str] = set()
    prev, last_ran, widened = None, None, False
    meta_budget = META_BUDGET_S
    for _ in range(200):
        m = measure(rewrite(source, constants, sizes), path, device, budget_mb, max_ms, params_budget, meta_budget)
        if m.get("meta"):  # over budget once: smaller sizes are measured for real at once
            meta_budget = 0.0
        weights_only = m.get("params_mb", 0) > params_budget and (m.get("io_mb") or 0) <= budget_mb
        if m.get("error") and not m.get("memory"):
            if prev is None:
                return {"error": m["error"]}
            tied = None if widened else _tied_step(constants, prev, sizes, frozen)
            if tied is not None:  # sizes that must stay equal (a batch that is also a row length)
                sizes, widened = tied, True
                continue
            frozen |= {k for k in sizes if sizes[k] != prev[k]}  # that step broke the task: keep those
            sizes = prev
        elif not m.get("error"):
            if m["ms"] is not None:
                last_ran = (dict(sizes), m)
                if m["io_mb"] <= budget_mb and m["ms"] <= max_ms:
                    return {"sizes": sizes, "ref_ms": round(m["ms"], 3), "io_mb": round(m["io_mb"], 3)}
        # weights too big and nothing else: shrink the model's widths, keep the batch
        nxt = (weights_only and next_step(constants, sizes, frozen, ("width",))) or next_step(constants, sizes,
                                                                                              frozen)
        if nxt is None:
            slow = m.get("ms_estimate") is not None and m["io_mb"] <= budget_mb and not weights_only
            if last_ran is None and slow and m["ms_estimate"] <= max_ms * SLOW_FACTOR:
                # only the FLOP estimate stopped it (VGG16 at batch 2): measure for real
                m = measure(rewrite(source, constants, sizes), path, device, budget_mb, float("inf"), params_budget)
                if m.get("ms") is not None:
                    last_ran = (dict(sizes), m)
            if last_ran and last_ran[1]["ms"] > max_ms * SLOW_FACTOR:
                return {"error": f"too big for this machine even at the smallest sizes kopt can set (a reference "
                                 f"call takes {last_ran[1]['ms']:.0f} ms; limit {max_ms * SLOW_FACTOR:.0f} ms)"}
            if last_ran and last_ran[1]["io_mb"] <= budget_mb:
                s, m = last_ran
                return {"sizes": s, "ref_ms": round(m["ms"], 3), "io_mb": round(m["io_mb"], 3),
                        "note": f"one reference call takes {m['ms']:.0f} ms at the smallest sizes kopt can set"}
            io = m.get("io_mb") if not m.get("error") else None
            what = f"{io:.0f} MiB of inputs and outputs; budget {budget_mb:.0f} MiB" if io else "out of memory"
            if weights_only:
                what = f"{m['params_mb']:.0f} MiB of weights; budget {params_budget:.0f} MiB"
            elif slow:
                what = f"~{m['ms_estimate']:.0f} ms a reference call by its FLOPs; limit {max_ms * SLOW_FACTOR:.0f} ms"
            return {"error": f"too big for this machine even at the smallest sizes kopt can set ({what})"}
        prev, sizes, widened = sizes, nxt, False
    return {"error": "fitting did not converge"}


def _tied_step(constants, prev: dict[str, int], step: dict[str, int], frozen: set[str]) -> dict[str, int] | None:
    """The step that broke the task, widened to every scalable constant that had the same value
    as one it changed (`batch_size = 32768; input_shape = (32768,)` broadcast against each
    other, so halving one alone breaks the task); None when there is nothing to add."""
    changed = {k for k in step if step[k] != prev[k]}
    new_of = {prev[k]: step[k] for k in changed}
    extra = {c.name: new_of[prev[c.name]] for c in constants
             if c.kind != "structural" and c.name not in changed and c.name not in frozen and prev[c.name] in new_of}
    return {**step, **extra} if extra else None


def compile_baseline(req: dict) -> dict:
    """torch.compile(Model) against eager Model, in this process (both are the task's own
    code): checked for closeness on fresh inputs, timed in interleaved rounds."""
    import torch

    device = req.get("device", "cpu")
    try:
        mod = load_source(req["source"], req["path"])
        torch.manual_seed(42)
        model = mod.Model(*mod.get_init_inputs()).to(device)
        sets = []
        for seed in range(4):
            torch.manual_seed(seed)
            sets.append(_to(list(mod.get_inputs()), device))
    except Exception as e:  # noqa: BLE001
        return {"skipped": f"the reference fails: {_one_line(e)}"}
    t0 = time.perf_counter()
    try:
        compiled = torch.compile(model)
        with torch.no_grad():
            for s in sets[:2]:
                compiled(*s)
            compile_s = time.perf_counter() - t0
            for s in sets[2:]:
                torch.testing.assert_close(compiled(*s), model(*s), atol=req.get("atol", 1e-4),
                                           rtol=req.get("rtol", 1e-4))
    except AssertionError as e:
        return {"correct": False, "verdict": "incorrect", "reason": str(e).strip().splitlines()[0][:200]}
    except Exception as e:  # noqa: BLE001 - no compiler, unsupported op...
        return {"skipped": f"torch.compile failed: {_one_line(e)}"}
    fns = {"eager": model, "compiled": compiled}
    solutions = _solution_models(req.get("solutions") or {}, mod, sets, model, req, device)
    fns.update({name: m for name, m in solutions.items() if not isinstance(m, str)})
    samples: dict[str, list[float]] = {k: [] for k in fns}
    with torch.no_grad():
        t = time.perf_counter()
        model(*sets[0])
        _sync(device)
        calls = max(1, min(200, int(0.02 / max(time.perf_counter() - t, 1e-6))))
        for r in range(9):
            for name in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
                t = time.perf_counter()
                for c in range(calls):
                    fns[name](*sets[c % len(sets)])
                _sync(device)
                samples[name].append((time.perf_counter() - t) * 1000 / calls)
    eager, comp = statistics.median(samples["eager"]), statistics.median(samples["compiled"])
    out = {"correct": True, "verdict": "measured", "speedup": round(eager / comp, 4), "eager_ms": round(eager, 4),
           "compiled_ms": round(comp, 4), "compile_s": round(compile_s, 2)}
    if solutions:
        out["solutions"] = {name: {"error": m} if isinstance(m, str) else
                            {"speedup": round(eager / statistics.median(samples[name]), 4),
                             "ms": round(statistics.median(samples[name]), 4)} for name, m in solutions.items()}
    return out


def _solution_models(sources: dict, mod, sets: list, model, req: dict, device: str) -> dict:
    """name -> ModelNew of each solution source (built like the Model: seed 42, the task's init
    inputs) when it matches the Model on the check inputs, else the reason (a string). Timed
    with eager and torch.compile in the same rounds, so a solution's speedup and the
    compiler's are measured alike (benchmarks/studies/rules_vs_compile.py). The sources are
    the caller's to trust: this process has the probe's limits, not the sandbox."""
    import torch

    found: dict = {}
    for name, source in sources.items():
        try:
            ns = load_source(source, f"{req['path']}.{name}.py")
            torch.manual_seed(42)
            new = ns.ModelNew(*mod.get_init_inputs()).to(device)
            with torch.no_grad():
                for s in sets[2:]:
                    torch.testing.assert_close(new(*s), model(*s), atol=req.get("atol", 1e-4),
                                               rtol=req.get("rtol", 1e-4))
            found[name] = new
        except Exception as e:  # noqa: BLE001 - the solution's failure is its result
            found[name] = _one_line(e)
    return found


def main() -> None:
    import torch

    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    req = json.loads(sys.stdin.read())
    handler = {"fit": fit, "compile": compile_baseline}[req["kind"]]
    result = handler(req)
    sys.stdout.write("\n" + MARK + json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown (inductor's workers, CUDA context)


if __name__ == "__main__":
    main()
