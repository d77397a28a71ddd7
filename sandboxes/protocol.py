"""Framing between kopt and a sandboxed worker.

A frame is an 8-byte header (JSON length, payload length) followed by a JSON header
and an optional binary payload. Tensors travel as `torch.save` bytes and are read back
with `weights_only=True`, so a hostile worker cannot make kopt unpickle arbitrary objects.
"""
from __future__ import annotations

import json
import os
import struct

_HEADER = struct.Struct("<II")
MAX_JSON = 16 << 20


class ProtocolError(Exception):
    """The peer sent something that is not a valid frame (or closed the pipe)."""


def _read_exact(fd: int, n: int) -> bytes:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = os.readv(fd, [view[got:]])
        if not k:
            raise ProtocolError("worker closed the channel")
        got += k
    return bytes(buf) if n < 4096 else buf


def widen_pipe(fd: int) -> None:
    """Raise a pipe's buffer to the system maximum: payloads are tens of MB."""
    import fcntl

    try:
        size = int(open("/proc/sys/fs/pipe-max-size").read())
        fcntl.fcntl(fd, 1031, size)  # F_SETPIPE_SZ
    except (OSError, ValueError):
        pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def send(fd: int, header: dict, payload: bytes = b"") -> None:
    body = json.dumps(header).encode()
    _write_all(fd, _HEADER.pack(len(body), len(payload)) + body)
    if payload:
        _write_all(fd, payload)


def recv(fd: int, max_payload: int = 8 << 30) -> tuple[dict, bytes]:
    n_json, n_payload = _HEADER.unpack(_read_exact(fd, _HEADER.size))
    if n_json > MAX_JSON or n_payload > max_payload:
        raise ProtocolError(f"frame too large ({n_json} + {n_payload} bytes)")
    try:
        header = json.loads(_read_exact(fd, n_json))
    except ValueError as e:
        raise ProtocolError(f"bad frame header: {e}") from None
    if not isinstance(header, dict):
        raise ProtocolError("bad frame header: not an object")
    return header, _read_exact(fd, n_payload) if n_payload else b""


def dumps_tensors(obj) -> bytes:
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def loads_tensors(data: bytes):
    """Load untrusted tensor bytes: only plain tensors and containers are accepted."""
    import io

    import torch

    return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
