"""What the sandboxed worker watches in a candidate's process: the alarm channel (rule
violations seen by an audit hook) and counters of calls into the solution's own compiled
code (ctypes, CuPy, torch extensions), so a kernel built but never run is told apart.
A second line of defence: verdicts are decided in kopt's own process.
"""
from __future__ import annotations

import builtins
import gc
import hashlib
import json
import json.decoder
import json.encoder
import json.scanner
import os
import select
import sys
import types

from kopt.sandboxes import harness_support, protocol, reuse, sealed_inputs
from kopt.sandboxes.gpu_timing import GpuTimer

GUARD_ALARM = (b'{"rule": "patches the timer or harness", "detail": "the tamper check, or a function it or the '
               b'harness relies on, was replaced"}\n')


def guarded(namespace: dict, *classes: type) -> tuple[tuple, tuple]:
    """(namespace, name, value, code) of every entry of the harness's globals, its classes, the
    builtins and the modules its frames go through, taken before any candidate code runs; and
    (live dict, names) of each class. The worker compares them with plain loops before each
    tamper check: replacing the check itself, its alarm, a helper it calls, or a builtin
    (`isinstance` ran the candidate's code while `put` was answered, its inputs in place and no
    clock running) is reported from there, and so is a name added to or removed from a class
    (a descriptor put on `torch.Tensor` answers a getattr on the class with the original)."""
    modules = (builtins, json, json.encoder, json.decoder, json.scanner, os, select, protocol, reuse, gc, hashlib,
               sealed_inputs, harness_support, sys.modules[__name__])  # the timed path's helpers too (red team 7)
    stacks = ModeStacks(sys.modules["torch"])
    spaces = [namespace, *(vars(c) for c in (*classes, ModeStacks)), vars(stacks), *(vars(m) for m in modules)]
    return tuple((ns, name, value, value.__code__ if isinstance(value, types.FunctionType) else None)
                 for ns in spaces for name, value in list(ns.items())), \
        tuple((vars(c), frozenset(vars(c))) for c in (*classes, ModeStacks, stacks)) + ((stacks, stacks.keys()),)


def reply_path(guard: tuple) -> tuple:
    """The entries of `guard` a reply's sending goes through (protocol's and json's globals, the
    JSON encoder, the builtins, the os writes), checked again right before a timed call's reply
    leaves, inside the clock on both sides: a patch of `protocol._write_shm` that put itself back
    while the reply was written was never seen by the check at the next request (the outputs,
    written by forward straight into the reply memfd, were never copied: faster 2.5x, red team 7)."""
    spaces = [vars(m) for m in (protocol, json, json.encoder, json.JSONEncoder, builtins)]
    writes = ("write", "pwrite", "pwritev", "get_blocking", "set_blocking")
    return tuple(e for e in guard if any(e[0] is ns for ns in spaces) or e[0] is vars(os) and e[1] in writes)


def swapped_inputs(inputs) -> set[str]:
    """{"inputs"} when the worker's input lists are no longer the plain lists `put` made: a list
    subclass swapped in during forward ran the candidate's code when `inputs_after` iterated it
    (an in-place `relu_` undone there, from the worker's own payload: faster 2.3x)."""
    plain = type(inputs) is list and all(type(slot) is list for slot in list.__iter__(inputs))
    return set() if plain else {"inputs"}


# What the worker itself writes on itself after setup, by request; every other attribute of
# the worker (and of its GPU timer) is fixed from setup on.
OWN_WRITES = {"put": ("inputs", "outs", "payload", "call_seed", "mapped", "inputs_fd", "held"), "held": ("held",),
              "call": ("outs", "inputs", "mapped", "inputs_fd"),
              "reinit": ("saved_params",),
              "gpu_state": ("gpu_timer",), "compile_baseline": ("gpu_timer",)}


def own_state(worker, last: tuple = (), written: tuple = ()) -> tuple:
    """The worker's own attributes and its GPU timer's as (name, value) pairs: the `last`
    state with the names a request of the worker's `written` taken from the worker now (all of
    them when `last` is empty). A tuple, so a candidate that reaches it cannot edit it."""
    timer = vars(worker).get("gpu_timer")  # anything else there differs from the worker's own timer
    now = {**vars(worker), **{f"gpu_timer.{k}": v for k, v in (vars(timer) if type(timer) is GpuTimer else {}).items()}}
    if not last:
        return tuple(now.items())

    def refreshed(name: str) -> bool:
        return name in written or "gpu_timer" in written and name.startswith("gpu_timer.")

    state = {k: v for k, v in last if not refreshed(k)}
    state.update((k, v) for k, v in now.items() if refreshed(k))
    return tuple(state.items())


def own_state_change(worker, last: tuple) -> str | None:
    """The first of the worker's own attributes that is not what the worker left there, or
    None: forward reached the worker through the stack and rewrote one (`code_before` reset to
    a fresh `live_code()` hid task code held in a closure from the second reuse scan; a
    `gpu_timer` of the candidate's own reports any event times it likes)."""
    now = own_state(worker)
    if len(now) != len(last):
        return sorted({k for k, _ in now} ^ {k for k, _ in last})[0]
    current = dict(now)
    for name, value in last:
        if name not in current or current[name] is not value:
            return name
    return None


class ModeStacks:
    """The depths of torch's function and dispatch mode stacks, read as the names of a watched
    class (`keys`): a mode the candidate leaves on sees every torch call in the process, `put`'s
    `Tensor.to` among them (a matmul made there, out of the clock, was judged faster 2.0x)."""

    def __init__(self, torch):
        self.depths = (torch._C._len_torch_function_stack, torch._C._len_torch_dispatch_stack)

    def keys(self) -> tuple:
        return tuple(depth() for depth in self.depths)


def watched_classes(torch, *own: type) -> tuple[type, ...]:
    """The harness's classes and the library classes whose methods it calls once candidate code
    has run (decoding inputs in `put`, encoding inputs and outputs, the GPU timer, JSON). A
    method added to one of them shadows the library's own: a `numpy` on `torch.Tensor` ran the
    candidate's code while `put` decoded the inputs (its answer made there, out of the clock)
    and while `inputs_after` encoded them (in-place writes undone before they were read)."""
    return (*own, torch.Tensor, torch.cuda.Event, GpuTimer, json.JSONEncoder, json.JSONDecoder)


# code objects that may set a profile function in the candidate's worker: the harness's own
# native-call count (set once when the harness loads; this module's globals are under the
# tamper guard, and a frozenset cannot grow)
PROFILE_CALLERS: frozenset = frozenset()
_getframe = sys._getframe  # as the worker started: the hook must not ask a replaced one


class Alarm:
    """Writes rule violations to kopt on a channel of their own (JSON lines)."""

    def __init__(self, fd: int):
        self.fd = fd
        self.phase = "setup"
        self.blocked_paths: set[str] = set()
        self.native_calls = 0  # calls into the solution's own compiled code while forward ran
        self.extension_modules: set[str] = set()
        # the reference's worker runs this same hook (the same cost per audit event on both
        # sides' clocks) with nothing enforced: a task may use sockets or processes
        self.enforce = True

    def raise_alarm(self, rule: str, detail: str) -> None:
        try:
            os.write(self.fd, (json.dumps({"rule": rule, "detail": detail[:300]}) + "\n").encode())
        except OSError:
            pass

    def hook(self, event: str, args: tuple) -> None:
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            try:
                path = os.path.realpath(os.fsdecode(args[0]))
            except (TypeError, ValueError):
                return
            if path in self.blocked_paths:
                self.raise_alarm("reads the reference task", path)
                raise PermissionError("kopt: a solution may not read the reference task file")
        elif event in ("socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo"):
            if self.enforce:
                self.raise_alarm("network access", f"{event} {args[1:2]!r}")
                raise PermissionError("kopt: no network access during evaluation")
        elif event in ("sys.settrace", "sys.setprofile") and self.enforce:
            # a trace or profile function rewrites the locals of any frame it sees (Python 3.11):
            # the serve loop's tamper snapshots, the GPU timer's clock readings (red team 6)
            if event == "sys.setprofile" and _getframe(1).f_code in PROFILE_CALLERS:
                return
            self.raise_alarm("traces the harness", f"{event} called by the solution: a trace or profile function "
                                                   f"can rewrite the harness's own variables")
            raise PermissionError("kopt: a solution may not set a trace or profile function")
        elif self.phase == "run" and event in ("subprocess.Popen", "os.fork", "os.forkpty", "os.posix_spawn",
                                                "os.system", "os.exec"):
            if self.enforce:
                self.raise_alarm("spawns a process during forward", event)
                raise PermissionError("kopt: no processes may be started during forward")


def native_call_profiler(alarm: Alarm):
    """A profiler that counts calls into code the solution built itself (extension modules
    under its build cache or work dir, Triton launches); ctypes calls and CuPy launches are
    counted by their wrappers. Used on one untimed pass: a kernel defined but never run
    leaves the count at zero."""
    roots = tuple(p for p in (os.environ.get("KOPT_CACHE_DIR"), os.environ.get("TORCH_EXTENSIONS_DIR"),
                              os.getcwd()) if p)

    def profile(frame, event, arg):
        if event == "c_call":
            owner = getattr(arg, "__self__", None)  # an extension's module-level function: its module
            if not isinstance(owner, type(sys)):
                owner = sys.modules.get(getattr(arg, "__module__", "") or "")
            path = getattr(owner, "__file__", None) or ""
            name = getattr(arg, "__module__", "") or ""
            if path.startswith(roots) and not path.endswith(".py") or name in alarm.extension_modules:
                alarm.native_calls += 1
        elif event == "call" and frame.f_code.co_name == "run" and "/triton/runtime/" in frame.f_code.co_filename:
            alarm.native_calls += 1

    return profile


def count_ctypes_calls(alarm: Alarm) -> None:
    """Every library loaded through ctypes gets function pointers that count their calls
    made while forward runs (how a kernel that is built but never called is told apart)."""
    import ctypes

    original_init = ctypes.CDLL.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        base = self._FuncPtr

        class CountedFuncPtr(base):
            _flags_, _restype_ = base._flags_, base._restype_

            def __call__(self, *call_args):
                if alarm.phase == "run":
                    alarm.native_calls += 1
                return base.__call__(self, *call_args)

        self._FuncPtr = CountedFuncPtr

    ctypes.CDLL.__init__ = init


def count_cupy_launches(alarm: Alarm) -> None:
    """CuPy launches its kernels from compiled code, with no Python call a profiler sees:
    the kernel classes a solution builds from are swapped for subclasses that count each
    launch made while forward runs (a RawKernel compiled but never launched counts zero)."""
    try:
        import cupy
    except Exception:  # noqa: BLE001 - the solution's own import will report it
        return

    def counted(cls):
        class Counted(cls):
            def __call__(self, *args, **kwargs):
                if alarm.phase == "run":
                    alarm.native_calls += 1
                return super().__call__(*args, **kwargs)

        Counted.__name__ = Counted.__qualname__ = cls.__name__
        return Counted

    class CountedFunction:
        def __init__(self, fn):
            self._fn = fn

        def __call__(self, *args, **kwargs):
            if alarm.phase == "run":
                alarm.native_calls += 1
            return self._fn(*args, **kwargs)

        def __getattr__(self, name):
            return getattr(self._fn, name)

    for name in ("RawKernel", "ElementwiseKernel", "ReductionKernel"):
        cls = getattr(cupy, name, None)
        if isinstance(cls, type):
            setattr(cupy, name, counted(cls))
    if isinstance(getattr(cupy, "RawModule", None), type):
        class CountedModule(cupy.RawModule):
            def get_function(self, name):
                return CountedFunction(super().get_function(name))

        CountedModule.__name__ = CountedModule.__qualname__ = "RawModule"
        cupy.RawModule = CountedModule


def record_extension_modules(alarm: Alarm) -> None:
    """Remember the names of modules torch.utils.cpp_extension builds and loads (it does not
    put them in sys.modules), so calls into them can be counted."""
    import torch.utils.cpp_extension as cpp_extension

    original = cpp_extension._import_module_from_library

    def import_and_record(module_name, path, is_python_module):
        alarm.extension_modules.add(module_name)
        return original(module_name, path, is_python_module)

    cpp_extension._import_module_from_library = import_and_record


def snapshot(functions: dict) -> dict:
    """Each checked function with what can be swapped under the same object: its code and
    defaults (a function whose `__code__` is replaced keeps its identity)."""
    def state(fn):
        kw = getattr(fn, "__kwdefaults__", None)
        return (fn, getattr(fn, "__code__", None), getattr(fn, "__defaults__", None), dict(kw) if kw else kw)

    return {name: state(fn) for name, fn in functions.items()}


def changed(before: tuple, after: tuple | None) -> bool:
    if after is None:
        return True
    return any(a is not b for a, b in zip(before[:3], after[:3])) or before[3] != after[3]
