"""The channel to one sandboxed worker: requests and replies with deadlines, the candidate's
replies validated field by field with their sizes capped, its alarm pipe read with bounded
time and bytes. Whatever a hostile worker sends ends as a WorkerFailed, never a crash."""
from __future__ import annotations

import json
import math
import os
import select
import time
from dataclasses import dataclass, field

from kopt.sandboxes import protocol, sealed_inputs
from kopt.sandboxes.local import Worker, cache_problem


class WorkerFailed(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind, self.message = kind, message


# What kopt reads from the candidate, whatever it sends (its own memory stays bounded).
REPLY_JSON_MAX = 4 << 20
ALARM_READ_MAX = 256 << 10
ALARM_LINE_MAX = 8 << 10
KINDS = ("compile_error", "runtime_error", "timeout", "rejected")


CACHE_POLL_S = 0.05


@dataclass
class Channel:
    """Request/response with one worker, with deadlines and its alarms collected. The
    candidate's channel is `hostile`: every reply is validated and its size capped."""

    worker: Worker
    role: str
    hostile: bool = False
    alarms: list[dict] = field(default_factory=list)
    _alarm_buf: bytes = b""
    elapsed: float = 0.0
    inputs_fd: int | None = None  # the last `put`'s inputs, sealed, until the next `put`

    def _answered(self, cmd: str, timeout: float) -> bool:
        """Whether the worker's reply began within TIMEOUT. Meanwhile the candidate's writable
        build folder is measured every CACHE_POLL_S: its cap is checked while it writes, not
        only between stages (red team 10 wrote 1.5 GB past a 512 MB cap onto the host's disk
        within one setup), so the host's disk takes at most a twentieth of a second's writing past it."""
        w = self.worker
        folder, cap = getattr(w, "cache_dir", None), getattr(w, "cache_mb", 0)
        if not (self.hostile and folder and cap):
            return bool(select.select([w.from_fd], [], [], timeout)[0])
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if select.select([w.from_fd], [], [], min(left, CACHE_POLL_S))[0]:
                return True
            if problem := cache_problem(folder, cap, w):
                raise WorkerFailed("rejected", f"{problem}; seen during '{cmd}')")
        return False

    def call(self, header: dict, payload=b"", timeout: float = 120.0,
             max_payload: int = 8 << 30) -> tuple[dict, bytes]:
        w, cmd = self.worker, header["cmd"]
        if cmd == "put" and w.pass_fd is not None:
            # the inputs stay in kopt's hands, sealed, until the timed `call` passes them
            self.release()
            self.inputs_fd, payload = sealed_inputs.sealed_memfd(payload), b""
        t0 = time.perf_counter()
        if cmd == "call" and self.inputs_fd is not None:
            header = {**header, "inputs": True}
            try:  # inside the clock: the inputs reach the worker with the request
                sealed_inputs.pass_fd(w.pass_fd, self.inputs_fd)
            except OSError as e:
                raise WorkerFailed("runtime_error", f"{self.role} did not take its inputs ({e})") from None
        try:  # a worker that stops reading must not block kopt's write for ever
            protocol.send(w.to_fd, header, payload, deadline=time.monotonic() + timeout, shm=w.shm_fd)
        except OSError:
            raise WorkerFailed("runtime_error", self._death_reason()) from None
        except protocol.Late:
            late = f"{self.role} did not take the '{cmd}' request within {timeout:.0f}s"
            raise WorkerFailed("timeout", late) from None
        if not self._answered(cmd, timeout):
            raise WorkerFailed("timeout", f"{self.role} did not answer '{cmd}' within {timeout:.0f}s")
        try:
            reply, data = protocol.recv(w.from_fd, max_payload, REPLY_JSON_MAX if self.hostile else protocol.MAX_JSON,
                                        deadline=time.monotonic() + timeout, shm=w.shm_fd)
            self.elapsed = time.perf_counter() - t0  # request out to reply's last byte in: the clock
            if self.hostile:
                reply = _valid_reply(reply, cmd)
        except WorkerFailed:
            raise
        except protocol.Closed:
            raise WorkerFailed("runtime_error", self._death_reason()) from None
        except protocol.ProtocolError as e:
            raise WorkerFailed("rejected", f"malformed reply to '{cmd}': {e}") from None
        except Exception as e:  # noqa: BLE001 - whatever the reply makes kopt raise is a verdict on it
            raise WorkerFailed("rejected", f"unreadable reply to '{cmd}': {type(e).__name__}") from None
        self.read_alarms()
        if not reply.get("ok"):
            raise WorkerFailed(reply.get("kind", "runtime_error"), str(reply.get("error", "failed")))
        return reply, data

    def release(self) -> None:
        """Close the sealed inputs kopt holds for this worker."""
        if self.inputs_fd is not None:
            os.close(self.inputs_fd)
            self.inputs_fd = None

    def read_alarms(self) -> None:
        """Alarm lines, read with bounded bytes: a flood (with or without newlines) is itself
        an alarm, never a stall or unbounded memory in kopt."""
        fd, budget = self.worker.alarm_fd, ALARM_READ_MAX
        while budget > 0 and select.select([fd], [], [], 0)[0]:
            chunk = os.read(fd, min(65536, budget))
            if not chunk:
                if self.worker.alive():
                    self._alarm("closed the alarm channel")
                break
            budget -= len(chunk)
            self._alarm_buf += chunk
            *lines, self._alarm_buf = self._alarm_buf.split(b"\n")
            for line in lines[:100]:
                try:
                    alarm = json.loads(line)
                    if not isinstance(alarm, dict) or not isinstance(alarm.get("rule"), str):
                        raise ValueError
                    self.alarms.append({"rule": alarm["rule"][:100], "detail": str(alarm.get("detail", ""))[:300]})
                except Exception:  # noqa: BLE001 - any line kopt cannot parse (deep nesting too) is an alarm
                    self._alarm("wrote to the alarm channel")
            if len(self._alarm_buf) > ALARM_LINE_MAX:
                self._alarm_buf = b""
                self._alarm("flooded the alarm channel")
        if budget <= 0:
            self._alarm("flooded the alarm channel")

    def _alarm(self, detail: str) -> None:
        if len(self.alarms) < 100:
            self.alarms.append({"rule": "tampers with the harness", "detail": detail})

    def _death_reason(self) -> str:
        w = self.worker
        try:
            w.proc.wait(timeout=5)
        except Exception:  # noqa: BLE001
            pass
        rc = w.proc.returncode
        tail = w.output.text().strip().splitlines()[-3:]
        how = f"exit code {rc}" if rc is not None and rc >= 0 else f"signal {-(rc or 0)}"
        if w.cgroup and w.cgroup.memory_exceeded():
            how += ", memory limit exceeded"
        elif rc in (-9, 137) or any("MemoryError" in line or "bad_alloc" in line for line in tail):
            how += " (memory limit?)"
        return f"{self.role} process died ({how}): " + " | ".join(tail)[-400:]


def _valid_reply(reply: dict, cmd: str) -> dict:
    """The candidate's reply header, checked field by field (WorkerFailed 'rejected' if not)."""
    def bad(what: str):
        raise WorkerFailed("rejected", f"malformed reply to '{cmd}': {what}")

    if type(reply.get("ok")) is not bool:
        bad("no ok flag")
    if not reply["ok"]:
        kind, error = reply.get("kind", "runtime_error"), reply.get("error", "failed")
        if kind not in KINDS or not isinstance(error, str):
            bad("an error of unknown kind")
        return {"ok": False, "kind": kind, "error": error[-4000:]}
    for key in ("native_calls",):
        if key in reply and (type(reply[key]) is not int or reply[key] < 0):
            bad(key)
    for key in ("event_ms", "call_wall_ms"):
        if key in reply and (not isinstance(reply[key], list) or len(reply[key]) > 100_000 or
                             not all(type(v) in (int, float) and math.isfinite(v) for v in reply[key])):
            bad(key)
    for key in ("allocated_mb", "reserved_mb"):  # gpu_state: kopt does arithmetic on them
        if key in reply and (type(reply[key]) not in (int, float) or not math.isfinite(reply[key])):
            bad(key)
    if "wedged" in reply and type(reply["wedged"]) is not bool or "error" in reply and type(reply["error"]) is not str:
        bad("gpu state")
    if "code" in reply and not (isinstance(reply["code"], list) and len(reply["code"]) <= 100_000 and  # hashed, sorted
                                all(type(c) is str and len(c) <= 4096 for c in reply["code"])):
        bad("code")
    if "params" in reply and not (isinstance(reply["params"], list) and all(  # shapes, compared with ==
            isinstance(p, list) and all(type(d) is int for d in p) for p in reply["params"])):
        bad("params")
    return reply


def _check_outputs_blob(data, n_calls: int | None, cmd: str) -> int:
    """Bytes of tensor data in a candidate's outputs, after validating the blob."""
    try:
        tree, _ = protocol.check_blob(data)
    except protocol.ProtocolError as e:
        raise WorkerFailed("rejected", f"unreadable reply to '{cmd}': {e}") from None
    if n_calls is not None and (tree["t"] != "list" or len(tree["v"]) != n_calls):
        raise WorkerFailed("rejected", f"reply to '{cmd}' holds outputs for the wrong number of calls")
    return protocol.blob_tensor_bytes(tree)
