"""Framing between kopt and a sandboxed worker, and the tensor format they exchange.

A frame is an 8-byte header (JSON length, payload length) followed by a JSON header
and an optional binary payload. Tensors travel as a *blob*: a JSON tree (structure,
dtype, shape, byte offset of each tensor) and the raw bytes of contiguous tensors.
Nothing is unpickled anywhere, and kopt validates a blob from the candidate (sizes,
dtypes, offsets) with plain arithmetic before a byte of it is allocated or forwarded.
"""
from __future__ import annotations

import json
import os
import select
import struct
import time

_HEADER = struct.Struct("<II")
_BLOB = struct.Struct("<I")
MAX_JSON = 16 << 20
ALIGN = 64
MAX_DEPTH = 32
MAX_NODES = 100_000
MAX_STR = 1 << 16  # longest string leaf in a blob (an activation's name, a mode): characters
# name -> bytes per element; anything else is not a plain tensor
DTYPES = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2, "complex64": 8, "complex128": 16,
          "int8": 1, "uint8": 1, "int16": 2, "int32": 4, "int64": 8, "bool": 1}


class ProtocolError(Exception):
    """The peer sent something that is not a valid frame (or closed the pipe, or was late)."""


class Closed(ProtocolError):
    """The peer closed its end (it died, or exited)."""


class Late(ProtocolError):
    """The peer did not take a request, or finish its reply, before the deadline."""


def _wait(fd: int, deadline: float | None, write: bool = False) -> None:
    """Until `fd` can be read (or written); Late once the deadline has passed."""
    rd, wr = ([], [fd]) if write else ([fd], [])
    if deadline is None:
        if write:  # a non-blocking fd with no deadline: wait as long as it takes
            select.select(rd, wr, [])
        return
    left = deadline - time.monotonic()
    if left <= 0 or not any(select.select(rd, wr, [], left)[:2]):
        raise Late("request not taken before the deadline" if write else "reply not complete before the deadline")


def _read_into(fd: int, view: memoryview, deadline: float | None = None) -> None:
    got = 0
    while got < len(view):
        _wait(fd, deadline)
        k = os.readv(fd, [view[got:]])
        if not k:
            raise Closed("worker closed the channel")
        got += k


def _read_exact(fd: int, n: int, deadline: float | None = None) -> bytearray:
    buf = bytearray(n)
    _read_into(fd, memoryview(buf), deadline)
    return buf


def widen_pipe(fd: int) -> None:
    """Raise a pipe's buffer to the system maximum: payloads are tens of MB."""
    import fcntl

    try:
        size = int(open("/proc/sys/fs/pipe-max-size").read())
        fcntl.fcntl(fd, 1031, size)  # F_SETPIPE_SZ
    except (OSError, ValueError):
        pass


def _write_all(fd: int, data, deadline: float | None = None) -> None:
    view = memoryview(data).cast("B")
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            _wait(fd, deadline, write=True)
            continue
        view = view[n:]


def send(fd: int, header: dict, payload=b"", deadline: float | None = None, shm: int | None = None) -> None:
    """One frame; `payload` is bytes or a list of buffers (written without joining them).
    With a deadline the fd is written non-blocking: a peer that stops reading raises Late
    instead of blocking the sender for ever once the pipe is full. With `shm` (a memfd the
    peer holds too) a payload goes there and the frame only says how long it is: a pipe
    moves 1 MiB per context switch, which on a busy machine made large outputs cost more
    than the forward that made them."""
    parts = payload if isinstance(payload, list) else [payload]
    size = sum(memoryview(p).nbytes for p in parts)
    if shm is not None and size:
        _write_shm(shm, parts)
        header, parts, size = {**header, SHM_KEY: size}, [], 0
    body = json.dumps(header).encode()
    blocking = os.get_blocking(fd)
    if deadline is not None and blocking:
        os.set_blocking(fd, False)
    try:
        _write_all(fd, _HEADER.pack(len(body), size) + body, deadline)
        for p in parts:
            if memoryview(p).nbytes:
                _write_all(fd, p, deadline)
    finally:
        if deadline is not None and blocking:
            os.set_blocking(fd, True)


SHM_KEY = "_shm"  # header key: the payload's length, its bytes in the shared memfd from offset 0


def _write_shm(shm: int, parts: list) -> None:
    views = [memoryview(p).cast("B") for p in parts if memoryview(p).nbytes]
    at = 0
    for i in range(0, len(views), 512):  # IOV_MAX is 1024
        batch = views[i:i + 512]
        want = sum(v.nbytes for v in batch)
        done = os.pwritev(shm, batch, at)
        if done != want:  # a short write (memory limit): finish it piece by piece
            for v in batch:
                off = 0
                while off < v.nbytes:
                    off += os.pwrite(shm, v[off:], at + off)
                at += v.nbytes
        else:
            at += want


def _read_shm(shm: int | None, n, max_payload: int) -> bytearray:
    """A payload the peer left in the shared memfd, copied out (after this, what the peer
    does to the memfd changes nothing kopt holds)."""
    if shm is None or type(n) is not int or n < 0:
        raise ProtocolError("bad frame header: a shared-memory payload where none is expected")
    if n > max_payload:
        raise ProtocolError(f"frame too large (0 + {n} bytes, limit {MAX_JSON} + {max_payload})")
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = os.preadv(shm, [view[got:]], got)
        if k <= 0:
            raise ProtocolError(f"shared-memory payload is truncated ({got} of {n} bytes)")
        got += k
    return buf


def recv_header(fd: int, max_payload: int = 8 << 30, max_json: int = MAX_JSON,
                deadline: float | None = None) -> tuple[dict, int]:
    """The JSON header and the payload's length, refused before allocating when too large."""
    n_json, n_payload = _HEADER.unpack(_read_exact(fd, _HEADER.size, deadline))
    if n_json > max_json or n_payload > max_payload:
        raise ProtocolError(f"frame too large ({n_json} + {n_payload} bytes, limit {max_json} + {max_payload})")
    try:
        header = json.loads(_read_exact(fd, n_json, deadline))
    except ValueError as e:
        raise ProtocolError(f"bad frame header: {e}") from None
    except RecursionError:
        raise ProtocolError("bad frame header: nested too deeply") from None
    if not isinstance(header, dict):
        raise ProtocolError("bad frame header: not an object")
    return header, n_payload


def recv(fd: int, max_payload: int = 8 << 30, max_json: int = MAX_JSON,
         deadline: float | None = None, shm: int | None = None) -> tuple[dict, bytes]:
    header, n_payload = recv_header(fd, max_payload, max_json, deadline)
    if SHM_KEY in header:
        if n_payload:
            raise ProtocolError("bad frame header: a payload both inline and in shared memory")
        return header, _read_shm(shm, header.pop(SHM_KEY), max_payload)
    return header, _read_exact(fd, n_payload, deadline) if n_payload else b""


# -- tensor blobs ------------------------------------------------------------------------------

def _pad(n: int) -> int:
    return -n % ALIGN


def encode(obj, torch) -> list:
    """A blob (list of buffers) for tensors, scalars, strings and lists/tuples/dicts of them.
    TypeError for anything else (a tensor subclass, a lazy object, a sparse or meta tensor)."""
    chunks: list = []
    offset = [0]

    def node(x, depth):
        if depth > MAX_DEPTH:
            raise TypeError("outputs nested too deeply")
        if type(x) is torch.Tensor or type(x) is torch.nn.Parameter:
            if x.layout != torch.strided or x.device.type == "meta":
                raise TypeError("output tensor has no plain strided storage")
            name = str(x.dtype).removeprefix("torch.")
            if name not in DTYPES:
                raise TypeError(f"tensor dtype {name} is not supported")
            t = x.detach().to("cpu").contiguous().reshape(-1)
            raw = t.view(torch.uint8).numpy() if t.numel() else b""
            n = t.numel() * DTYPES[name]
            chunks.append(raw)
            chunks.append(bytes(_pad(n)))
            entry = {"t": "tensor", "dtype": name, "shape": list(x.shape), "off": offset[0], "n": n}
            offset[0] += n + _pad(n)
            return entry
        if type(x) in (list, tuple):
            return {"t": type(x).__name__, "v": [node(v, depth + 1) for v in x]}
        if type(x) is dict and all(type(k) is str for k in x):
            return {"t": "dict", "k": list(x), "v": [node(v, depth + 1) for v in x.values()]}
        if type(x) in (int, float, bool) or x is None or type(x) is str and len(x) <= MAX_STR:
            return {"t": "val", "v": x}
        if type(x) is str:
            raise TypeError(f"a string of {len(x)} characters (at most {MAX_STR} travel)")
        raise TypeError(f"output is a {type(x).__module__}.{type(x).__qualname__}, not a plain torch.Tensor")

    tree = json.dumps(node(obj, 0)).encode()
    head = _BLOB.pack(len(tree)) + tree
    head += bytes(_pad(len(head)))
    return [head, *chunks]


def blob_bytes(parts: list) -> bytes:
    return b"".join(bytes(memoryview(p).cast("B")) if not isinstance(p, bytes) else p for p in parts)


def check_blob(data, max_tree: int = 1 << 20) -> tuple[dict, int]:
    """The tree of a blob and where its data starts, after checking every entry against the
    bytes really there. ProtocolError for anything malformed: kopt's verdict on a hostile reply."""
    if len(data) < _BLOB.size:
        raise ProtocolError("outputs blob is truncated")
    (n_tree,) = _BLOB.unpack(bytes(data[:_BLOB.size]))
    if n_tree > max_tree or _BLOB.size + n_tree > len(data):
        raise ProtocolError(f"outputs blob declares a {n_tree}-byte description")
    try:
        tree = json.loads(bytes(data[_BLOB.size:_BLOB.size + n_tree]))
    except (ValueError, RecursionError):
        raise ProtocolError("outputs blob description is not JSON") from None
    start = _BLOB.size + n_tree
    start += _pad(start)
    size = len(data) - start
    count = [0]

    def check(t, depth):
        count[0] += 1
        if depth > MAX_DEPTH or count[0] > MAX_NODES or not isinstance(t, dict):
            raise ProtocolError("outputs blob description is malformed")
        kind = t.get("t")
        if kind == "tensor":
            shape, off, n = t.get("shape"), t.get("off"), t.get("n")
            if t.get("dtype") not in DTYPES or not isinstance(shape, list) or len(shape) > 16 \
                    or not all(type(d) is int and 0 <= d < 1 << 40 for d in shape) \
                    or type(off) is not int or type(n) is not int:
                raise ProtocolError("outputs blob has a malformed tensor entry")
            numel = 1
            for d in shape:
                numel *= d
            if n != numel * DTYPES[t["dtype"]] or off < 0 or off % ALIGN or off + n > size:
                raise ProtocolError("outputs blob: a tensor's size or offset does not match its bytes")
        elif kind in ("list", "tuple", "dict"):
            vals = t.get("v")
            if not isinstance(vals, list) or kind == "dict" and (
                    not isinstance(t.get("k"), list) or len(t["k"]) != len(vals)
                    or not all(isinstance(k, str) for k in t["k"])):
                raise ProtocolError("outputs blob has a malformed container")
            for v in vals:
                check(v, depth + 1)
        elif kind == "val":
            v = t.get("v")
            if not (v is None or type(v) in (int, float, bool) or type(v) is str and len(v) <= MAX_STR):
                raise ProtocolError("outputs blob has a malformed value")
        else:
            raise ProtocolError("outputs blob has an unknown entry")

    check(tree, 0)
    return tree, start


def decode(data, torch, copy: bool = True):
    """Tensors from a blob, after check_blob: fresh, writable, aligned ones; or, without
    `copy`, views of `data` itself (a mapping of the inputs' memfd: see sealed_inputs)."""
    tree, start = check_blob(data)
    view = memoryview(data)

    def build(t):
        kind = t["t"]
        if kind == "tensor":
            dtype = getattr(torch, t["dtype"])
            if not copy and t["n"]:
                return torch.frombuffer(data, dtype=dtype, count=t["n"] // DTYPES[t["dtype"]],
                                        offset=start + t["off"]).view(t["shape"])
            x = torch.empty(t["shape"], dtype=dtype)
            if t["n"]:
                x.reshape(-1).view(torch.uint8).numpy()[:] = view[start + t["off"]:start + t["off"] + t["n"]]
            return x
        if kind == "list":
            return [build(v) for v in t["v"]]
        if kind == "tuple":
            return tuple(build(v) for v in t["v"])
        if kind == "dict":
            return dict(zip(t["k"], (build(v) for v in t["v"])))
        return t["v"]

    return build(tree)


def blob_tensor_bytes(tree: dict) -> int:
    """Bytes of tensor data a checked tree declares."""
    if tree["t"] == "tensor":
        return tree["n"]
    return sum(blob_tensor_bytes(v) for v in tree.get("v", [])) if tree["t"] != "val" else 0


def dumps_tensors(obj) -> bytes:
    import torch

    return blob_bytes(encode(obj, torch))


def loads_tensors(data):
    import torch

    return decode(data, torch)
