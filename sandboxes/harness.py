"""The worker that runs inside the sandbox: loads a task (role `ref`) or a solution
(role `new`), runs forward calls on inputs it is given and ships outputs back.

It never compares or times anything that decides a verdict: kopt's own process does
both, out of the candidate's reach. What this file does check (patched timers, spawned
processes, reads of the task file, network use) is reported through a separate alarm
channel, as a second line of defence.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import types

from kopt.sandboxes import gpu_timing, harness_support, harness_watch, protocol, reference_error, reuse, sealed_inputs
from kopt.sandboxes.checks import Tolerance, check_round, degeneracy, has_nonfinite, insensitive_to_weights
from kopt.sandboxes.harness_support import (
    Seeded,
    classify_setup_error,
    error_text,
    load_module,
    reshape_distribution,
    scalable_constants,
)
from kopt.sandboxes.harness_watch import (
    Alarm,
    changed,
    count_ctypes_calls,
    count_cupy_launches,
    record_extension_modules,
    snapshot,
)

_perf_counter = time.perf_counter


def _timer_functions() -> dict:
    """The clocks, as they are now; captured at import, compared after the candidate runs."""
    return {"time.perf_counter": time.perf_counter, "time.perf_counter_ns": time.perf_counter_ns,
            "time.time": time.time, "time.monotonic": time.monotonic}


_ORIGINALS = _timer_functions()


def _torch_functions(torch) -> dict:
    """The torch functions the harness relies on after `forward` returns."""
    out = {f"torch.Tensor.{m}": getattr(torch.Tensor, m) for m in
           ("detach", "to", "clone", "contiguous", "copy_", "cpu", "__reduce_ex__")}
    out.update({f"torch.{f}": getattr(torch, f) for f in ("save", "load", "equal", "no_grad", "empty")})
    out["torch.cuda.synchronize"] = torch.cuda.synchronize
    # what GPU timing relies on (its numbers are cross-checked in kopt as well)
    out.update({f"torch.cuda.Event.{m}": getattr(torch.cuda.Event, m) for m in ("record", "elapsed_time")})
    out.update({f"gpu_timing.GpuTimer.{m}": getattr(gpu_timing.GpuTimer, m) for m in ("run", "_cold")})
    out.update({f"protocol.{f}": getattr(protocol, f) for f in ("send", "recv", "encode", "decode", "_write_all",
                                                                "_read_into", "check_blob")})
    out.update({f"Worker.{m}": v for m, v in vars(Worker).items() if isinstance(v, types.FunctionType)})
    out.update({f"Alarm.{m}": v for m, v in vars(Alarm).items() if isinstance(v, types.FunctionType)})
    return out


class Worker:
    def __init__(self, role: str, chan_in: int, chan_out: int, alarm: Alarm, shm: int | None = None,
                 fd_pass: int | None = None):
        self.role, self.fd_in, self.fd_out, self.alarm, self.shm = role, chan_in, chan_out, alarm, shm
        self.fd_pass = fd_pass  # where a call's sealed inputs arrive (sealed_inputs)
        self.mapped = self.torch = self.model = self.task = self.inputs_fd = None
        self.device = "cpu"
        self.inputs: list = []
        self.payload = b""
        self.outs: list = []
        self.held: list = []

    # -- commands -------------------------------------------------------------------------
    def cmd_setup(self, h: dict, payload: bytes) -> tuple[dict, bytes]:
        import torch

        self.torch = torch
        if h.get("cpus"):  # pinned only now: both workers imported torch on every core kopt may use
            harness_support.pin_threads([int(c) for c in h["cpus"]])
        torch.set_num_threads(int(h.get("threads", 1)))
        self.device = h.get("device", "cpu")
        if self.role == "ref":
            self.task = load_module(h["task"], "kopt_task")
            torch.manual_seed(42)
            init = list(self.task.get_init_inputs())
            torch.manual_seed(42)  # again, as upstream KernelBench: init inputs may draw from the RNG
            self.model = self.task.Model(*init).to(self.device)
            # the candidate's per-call bookkeeping (audit hook, tamper check) runs here too,
            # so both sides' clocks carry the same harness work
            self.originals = snapshot({**_ORIGINALS, **_torch_functions(torch)})
            self.alarm.enforce = False
            sys.addaudithook(self.alarm.hook)  # the candidate's hook, enforcing nothing: the same cost per event
            return {"ok": True, "constants": scalable_constants(self.task), "params": self.param_shapes()}, \
                protocol.encode(init, torch)
        init = protocol.decode(payload, torch)
        self.alarm.blocked_paths = {os.path.realpath(h["task"])}
        sys.addaudithook(self.alarm.hook)
        count_ctypes_calls(self.alarm)
        if "cpp_extension" in h.get("source", ""):
            record_extension_modules(self.alarm)
        if "cupy" in h.get("source", ""):
            count_cupy_launches(self.alarm)
        originals = snapshot({**_ORIGINALS, **_torch_functions(torch)})
        # the solution arrives as text: its own path may be hidden from this process
        local = os.path.join(os.getcwd(), os.path.basename(h["solution"]) or "solution.py")
        with open(local, "w") as f:
            f.write(h["source"])
        try:
            mod = load_module(local, "kopt_solution")
        except BaseException as e:  # noqa: BLE001 - any failure of untrusted code is a verdict
            return {"ok": False, "kind": classify_setup_error(e), "error": error_text(e)}, b""
        if not isinstance(getattr(mod, "ModelNew", None), type):
            return {"ok": False, "kind": "runtime_error",
                    "error": "the solution defines no class ModelNew"}, b""
        try:
            torch.manual_seed(42)
            self.model = mod.ModelNew(*init).to(self.device)
        except TypeError as e:
            return {"ok": False, "kind": "runtime_error",
                    "error": f"ModelNew(*get_init_inputs()) failed: {e} -- ModelNew must take the same "
                             f"constructor arguments as Model"}, b""
        except BaseException as e:  # noqa: BLE001
            return {"ok": False, "kind": classify_setup_error(e), "error": error_text(e)}, b""
        self.originals = originals
        Worker.check_tamper(self)  # not through the instance: an attribute set there cannot skip it
        return {"ok": True, "params": self.param_shapes(), **self._code(h)}, b""

    def _code(self, h: dict) -> dict:
        """The model's code fingerprints, and every live function's named like the task's (see reuse)."""
        return {"code": reuse.model_fingerprints(self.model), "live": reuse.live_fingerprints(h.get("names"))}

    def cmd_code(self, h: dict, payload: bytes) -> tuple[dict, bytes]:
        """Live fingerprints before the solution loads (kopt keeps them), or all after its calls."""
        return {"ok": True, **(self._code(h) if self.model is not None else {"live": self._code(h)["live"]})}, b""

    def _float_params(self) -> list:
        return [p for p in self.model.parameters() if p.is_floating_point() and p.numel()]

    def param_shapes(self) -> list:
        return harness_support.param_signature(self.torch, self._float_params())

    def cmd_reinit(self, h: dict, payload: bytes) -> tuple[dict, bytes]:
        """Re-draw every parameter from a seed (both sides identically), or put them back:
        a solution tuned to the one set of weights that seed 42 gives fails."""
        torch = self.torch
        params = [self._float_params()[i] for i in h["order"]] if "order" in h else self._float_params()
        with torch.no_grad():
            if h.get("restore"):
                for p, saved in zip(params, self.saved_params):
                    p.copy_(saved)
                return {"ok": True}, b""
            self.saved_params = [p.detach().clone() for p in params]
            gen = torch.Generator().manual_seed(int(h["seed"]))
            for p in params:
                scale = float(p.detach().float().std()) if p.numel() > 1 else 1.0
                p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1).to(p.device, p.dtype) * (scale or 0.1) * 1.7)
        return {"ok": True}, b""

    def check_tamper(self) -> None:
        current = snapshot({**_timer_functions(), **_torch_functions(self.torch)})
        for name, before in self.originals.items():
            if changed(before, current.get(name)):
                self.alarm.raise_alarm("patches the timer or harness", f"{name} was replaced")
        if self.role == "new" and self.alarm.enforce is not True:
            self.alarm.raise_alarm("patches the timer or harness", "the audit hook's rules were switched off")
        shadowed = set(vars(self)) & set(vars(Worker)) | harness_watch.swapped_inputs(self.inputs)
        if shadowed:
            self.alarm.raise_alarm("patches the timer or harness", f"Worker.{sorted(shadowed)[0]} was shadowed")

    def make_inputs(self, seed: int, signed: bool, scale: dict, dist: str = "") -> list:
        torch = self.torch
        saved = {k: getattr(self.task, k) for k in scale}
        try:
            for k, v in scale.items():
                setattr(self.task, k, v)
            torch.manual_seed(seed)
            inputs = list(self.task.get_inputs())
        finally:
            for k, v in saved.items():
                setattr(self.task, k, v)
        if signed:
            gen = torch.Generator().manual_seed(seed + 1)
            for i, x in enumerate(inputs):
                if isinstance(x, torch.Tensor) and x.is_floating_point() and x.numel() and bool(x.min() >= 0):
                    flip = torch.rand(x.shape, generator=gen) < 0.5
                    inputs[i] = torch.where(flip.to(x.device), -x, x)
        if dist:
            inputs = [reshape_distribution(torch, x, dist, seed) for x in inputs]
        return inputs

    def cmd_make_inputs(self, h: dict, payload: bytes) -> tuple[dict, bytes]:
        t0 = _perf_counter()
        dists = h.get("dists") or [""] * len(h["seeds"])
        sets = [self.make_inputs(int(s), bool(h.get("signed")), h.get("scale") or {}, d)
                for s, d in zip(h["seeds"], dists)]
        gen_s = (_perf_counter() - t0) / max(1, len(sets))
        tensor = self.torch.Tensor
        shapes = [list(x.shape) if isinstance(x, tensor) else type(x).__name__ for x in sets[0]] if sets else []
        return {"ok": True, "gen_s": gen_s, "shapes": shapes}, protocol.encode(sets, self.torch)

    def cmd_put(self, h: dict, payload) -> tuple[dict, bytes]:
        """Out of the clock, both sides alike: the last call's inputs, outputs and mapping dropped
        (each call starts from the same heap), the next call's seed taken. The inputs come with
        the timed `call` (sealed_inputs): nothing can be computed from them ahead of the clock."""
        if h.get("hold"):  # the last call's outputs stay alive to the end of timing (cmd_held)
            self.held = self.outs
        self.inputs, self.outs, self.mapped, self.inputs_fd = [], [], None, sealed_inputs.release(self.inputs_fd)
        self.payload = payload
        self.call_seed = h.get("seed")
        if not payload:
            return {"ok": True}, b""
        try:
            sets = protocol.decode(payload, self.torch)
            self.inputs = [[x.to(self.device) if isinstance(x, self.torch.Tensor) else x for x in s] for s in sets]
        except BaseException as e:  # noqa: BLE001
            return {"ok": False, "kind": "runtime_error", "error": error_text(e)}, b""
        return {"ok": True}, b""

    def cmd_call(self, h: dict, payload) -> tuple[dict, list]:
        """The one timed step, the same for both sides and for checked and timed rounds: every
        forward on the inputs the request brings, then the outputs leave as bytes, timed by kopt
        to the reply's last byte; the harness's checks run at the next request, outside it."""
        if h.get("inputs"):  # mapped and placed inside the clock, on both sides alike
            try:
                fd = sealed_inputs.receive_fd(self.fd_pass)
                self.mapped, sets, self.inputs_fd = sealed_inputs.map_kept(fd, self.torch)
                self.inputs = [[x.to(self.device) if isinstance(x, self.torch.Tensor) else x for x in s] for s in sets]
            except BaseException as e:  # noqa: BLE001
                return {"ok": False, "kind": "runtime_error", "error": error_text(e)}, b""
        self.alarm.phase = "run"
        gpu_times: dict = {}
        try:
            if self.device == "cuda":
                self.outs, gpu_times["event_ms"], gpu_times["call_wall_ms"] = self._gpu_timer().run(
                    Seeded(self.torch, self.model, self._seeds(0)), self.inputs)
            else:
                self.outs = self._forward_all(self._seeds(0))
        except BaseException as e:  # noqa: BLE001
            return {"ok": False, "kind": "runtime_error", "error": error_text(e)}, b""
        finally:
            self.alarm.phase = "idle"
        reply = self._encoded(self.outs)
        return reply if reply[0]["ok"] is False else ({"ok": True, **gpu_times}, reply[1])

    def _encoded(self, obj) -> tuple[dict, list]:
        """Outputs as a blob; anything but plain tensors is rejected (a lazy object, a subclass)."""
        try:
            return {"ok": True}, protocol.encode(obj, self.torch)
        except TypeError as e:
            return {"ok": False, "kind": "rejected", "error": str(e)}, b""

    def cmd_held(self, h: dict, payload: bytes) -> tuple[dict, list]:
        """The outputs kept at a `put` with `hold`, as they are now, after every later call (kopt
        compares them with what it received: an output the module wrote again has changed)."""
        held, self.held = getattr(self, "held", []), []
        return self._encoded(held)

    def cmd_nonfinite(self, h: dict, payload: bytes) -> tuple[dict, bytes]:
        """Whether the last call's outputs hold NaN/Inf (reference only; asked outside the clock)."""
        return {"ok": True, "nonfinite": has_nonfinite(self.outs)}, b""

    def cmd_inputs_after(self, h: dict, payload: bytes) -> tuple[dict, list]:
        """The inputs as the last call left them (a solution may not modify them)."""
        return self._encoded([list(x) for x in self.inputs])

    def cmd_repeat(self, h: dict, payload: bytes) -> tuple[dict, list]:
        """Same tensors (same data_ptr), next call's values: a cache keyed by pointer, or any
        state carried between calls, now returns the wrong answer. The base trial's repeat
        also counts calls into the solution's own compiled code."""
        self.alarm.phase = "run"
        try:
            fresh = harness_support.pristine_inputs(self)
            n = len(self.inputs)
            for i, slot in enumerate(self.inputs):
                for x, v in zip(slot, fresh[(i + 1) % n]):
                    if isinstance(x, self.torch.Tensor):
                        x.copy_(v)
            if h.get("trace"):
                sys.setprofile(harness_watch.native_call_profiler(self.alarm))
            try:
                outs = self._forward_all(self._seeds(1))
            finally:
                sys.setprofile(None)
        except BaseException as e:  # noqa: BLE001
            return {"ok": False, "kind": "runtime_error", "error": error_text(e)}, b""
        finally:
            self.alarm.phase = "idle"
        reply = self._encoded(outs)
        return reply if reply[0]["ok"] is False else ({"ok": True, "native_calls": self.alarm.native_calls}, reply[1])

    def cmd_echo(self, h: dict, payload) -> tuple[dict, list]:
        """What sending the last call's outputs costs (reference only; kopt subtracts the median
        of several echoes from both sides). Contiguous first, see harness_support.contiguous."""
        self.outs = harness_support.contiguous(self.outs, self.torch)
        return {"ok": True}, protocol.encode(self.outs, self.torch)

    def _seeds(self, shift: int) -> list | None:
        """Per-forward seeds of the last call, input sets shifted by `shift`; None without a seed."""
        seed, n = getattr(self, "call_seed", None), len(self.inputs)
        if not isinstance(seed, int) or not n:
            return None
        return [seed + (i + shift) % n for i in range(n)]

    def _forward_all(self, seeds: list | None = None) -> list:
        torch = self.torch
        model = Seeded(torch, self.model, seeds)
        with torch.no_grad():
            outs = [model(*x) for x in self.inputs]
        if self.device == "cuda":
            torch.cuda.synchronize()
        return outs

    def _gpu_timer(self) -> gpu_timing.GpuTimer:
        if getattr(self, "gpu_timer", None) is None:
            self.gpu_timer = gpu_timing.GpuTimer(self.torch)
        return self.gpu_timer

    def cmd_gpu_state(self, h: dict, payload: bytes) -> tuple[dict, bytes]:
        """GPU memory and context health (the timer's flush buffer allocated first: not a leak)."""
        if self.device == "cuda":
            self._gpu_timer()
        return {"ok": True, **gpu_timing.memory_state(self.torch)}, b""

    def cmd_compile_baseline(self, h: dict, payload: bytes) -> tuple[dict, bytes]:
        """The reference under torch.compile, timed like the eager one on the last inputs:
        a second baseline on the GPU. Its failure is a note, never a verdict."""
        import statistics

        torch = self.torch
        try:
            compiled = torch.compile(self.model)
            with torch.no_grad():
                for x in self.inputs[:2]:
                    compiled(*x)  # compiles, then warms up
            _, event_ms, _ = self._gpu_timer().run(compiled, self.inputs)
        except Exception as e:  # noqa: BLE001 - no inductor/triton here, or the model does not compile
            return {"ok": True, "error": f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"}, b""
        return {"ok": True, "ms": statistics.median(event_ms)}, b""

    # -- reference role only: the comparisons happen here, never in the candidate ---------
    def cmd_compare(self, h: dict, payload) -> tuple[dict, bytes]:
        """The candidate's outputs against this side's last call (`float64`: reference_error)."""
        body, at = {}, 0
        for key, n in zip(("outs", "inputs_after", "repeat"), h["parts"]):
            if n:
                body[key] = protocol.decode(memoryview(payload)[at:at + n], self.torch)
            at += n
        opinion = reference_error.second_opinion(self, tol := Tolerance(h["atol"], h["rtol"]), h.get("float64_s"))
        rc = check_round(self.outs, self.inputs if "inputs_after" in body else None, body, tol, h["label"], opinion)
        return {"ok": True, "verdict": rc.verdict, "reason": rc.reason, "max_abs_err": rc.max_abs_err,
                "mismatch": rc.detail, "float64_calls": rc.float64_calls, "float64_spent": opinion.spent}, b""

    def cmd_degeneracy(self, h: dict, payload: bytes) -> tuple[dict, bytes]:
        """Task-quality flags from the reference alone over many seeds (robust-kbench style):
        ~zero or constant outputs, per-element spread below 0.01, output equal to an input,
        output unchanged when the weights are re-drawn."""
        torch = self.torch
        outs, inputs = [], []
        with torch.no_grad():
            for seed in h["seeds"]:
                x = self.make_inputs(int(seed), False, {})
                inputs.append(x)
                outs.append(self.model(*[v.clone() if isinstance(v, torch.Tensor) else v for v in x]))
            tol = float(h.get("atol", 1e-4)), float(h.get("rtol", 1e-4))
            reason = degeneracy(outs, inputs, *tol) or insensitive_to_weights(torch, self.model, inputs[0], outs[0])
        return {"ok": True, "reason": reason}, b""

    def serve(self) -> None:
        handlers = {"ping": lambda h, p: ({"ok": True}, b""), "setup": self.cmd_setup, "reinit": self.cmd_reinit,
                    "gpu_state": self.cmd_gpu_state, "make_inputs": self.cmd_make_inputs, "put": self.cmd_put,
                    "call": self.cmd_call, "inputs_after": self.cmd_inputs_after, "repeat": self.cmd_repeat,
                    "code": self.cmd_code, "held": self.cmd_held}
        if self.role == "ref":
            handlers.update(compare=self.cmd_compare, degeneracy=self.cmd_degeneracy, echo=self.cmd_echo,
                            nonfinite=self.cmd_nonfinite, compile_baseline=self.cmd_compile_baseline)
        classes = harness_watch.watched_classes(torch := sys.modules["torch"], Worker, Alarm)
        (guard, names), check, originals = harness_watch.guarded(globals(), *classes), Worker.check_tamper, None
        reply_guard = harness_watch.reply_path(guard)
        write, alarm, alarm_fd, alarm_line = os.write, self.alarm, self.alarm.fd, harness_watch.GUARD_ALARM
        set_up, own, fixed = False, (), {k: getattr(self, k) for k in ("role", "fd_in", "fd_out", "shm", "fd_pass")}
        while True:
            try:
                h, payload = protocol.recv(self.fd_in, shm=self.shm)
            except protocol.ProtocolError:
                return
            if h.get("cmd") == "exit":
                return
            if set_up and h.get("cmd") != "call":
                # the tamper check, before every request but the timed one: out of the clock,
                # identical on both sides, and before anything after a call is answered
                for ns, name, value, code in guard:
                    if ns.get(name) is not value or code is not None and value.__code__ is not code:
                        write(alarm_fd, alarm_line)
                        break
                for ns, keys in names:
                    if ns.keys() != keys:
                        write(alarm_fd, alarm_line)
                        break
                if (rewritten := harness_watch.own_state_change(self, own)) is not None:
                    alarm.raise_alarm("patches the timer or harness", f"Worker.{rewritten} was rewritten")
                self.originals, self.alarm, alarm.fd, self.torch = originals, alarm, alarm_fd, torch  # as at setup
                check(self)
            try:
                reply, data = handlers[h["cmd"]](h, payload)
            except BaseException as e:  # noqa: BLE001 - report, never die silently
                reply, data = {"ok": False, "kind": "runtime_error", "error": error_text(e)}, b""
            for ns, name, value, code in reply_guard if set_up and h.get("cmd") == "call" else ():
                if ns.get(name) is not value or code is not None and value.__code__ is not code:
                    write(alarm_fd, alarm_line)  # a one-shot patch of what sends this reply
                    break
            protocol.send(self.fd_out, reply, data, shm=self.shm)
            data = None  # the reply's buffers go now, not during the next request (its fresh memory is measured)
            if set_up:  # what the worker wrote on itself; whatever else changed is the candidate's
                own = harness_watch.own_state(self, own, harness_watch.OWN_WRITES.get(h.get("cmd"), ()))
            elif h.get("cmd") == "setup" and reply.get("ok") is True:
                self.alarm, self.torch, fixed["device"] = alarm, torch, h.get("device", "cpu")
                try:  # made now, so the timer is the worker's own from here on (a failure: call reports it)
                    fixed["device"] == "cuda" and self._gpu_timer()
                except Exception:  # noqa: BLE001
                    pass
                set_up, originals = True, dict(self.originals)
                self.originals = originals  # what the check before each request puts back
                own = tuple((k, fixed.get(k, v)) for k, v in harness_watch.own_state(self))  # as set before it ran


harness_watch.PROFILE_CALLERS = frozenset({Worker.cmd_repeat.__code__})  # its native-call count, nothing else


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--role", choices=["ref", "new"], required=True)
    p.add_argument("--fd-in", type=int, required=True)
    p.add_argument("--fd-out", type=int, required=True)
    p.add_argument("--fd-alarm", type=int, required=True)
    p.add_argument("--fd-shm", type=int, default=None)
    p.add_argument("--fd-pass", type=int, default=None)
    a = p.parse_args()
    harness_support.confine_reads()
    import torch  # noqa: F401 - import while kopt talks to the other worker

    Worker(a.role, a.fd_in, a.fd_out, Alarm(a.fd_alarm), a.fd_shm, a.fd_pass).serve()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
