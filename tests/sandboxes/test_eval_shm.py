"""Large payloads travel through a memfd both ends hold (protocol.send/recv with `shm`):
a pipe moves 1 MiB per context switch, which on a busy machine made a 50 MB output cost
more than the forward that made it (issue 16, timing item). What the peer declares is
checked before kopt allocates anything, as for the pipe."""
from __future__ import annotations

import os

import pytest

from kopt.sandboxes import protocol


@pytest.fixture
def channel():
    r, w = os.pipe()
    shm = os.memfd_create("test-io", 0)
    yield r, w, shm
    for fd in (r, w, shm):
        os.close(fd)


def test_a_payload_goes_through_shared_memory_and_comes_back_whole(channel):
    r, w, shm = channel
    parts = [b"head", bytes(range(256)) * 4000, memoryview(bytearray(b"x" * 70))]
    protocol.send(w, {"cmd": "call"}, parts, shm=shm)
    header, data = protocol.recv(r, shm=shm)
    assert header == {"cmd": "call"} and bytes(data) == b"".join(bytes(p) for p in parts)


def test_only_the_header_travels_in_the_pipe(channel):
    r, w, shm = channel
    protocol.send(w, {"cmd": "put"}, [bytes(3 << 20)], shm=shm)  # more than a pipe holds: must not block
    header_len, payload_len = protocol._HEADER.unpack(os.read(r, protocol._HEADER.size))
    assert payload_len == 0 and header_len < 100


def test_a_declared_size_past_the_limit_is_refused_before_allocating(channel):
    r, w, shm = channel
    protocol.send(w, {"ok": True, protocol.SHM_KEY: 1 << 40}, shm=shm)
    with pytest.raises(protocol.ProtocolError, match="too large"):
        protocol.recv(r, max_payload=1 << 20, shm=shm)


def test_a_declared_size_past_the_bytes_there_is_refused(channel):
    r, w, shm = channel
    os.pwrite(shm, b"12345678", 0)
    protocol.send(w, {"ok": True, protocol.SHM_KEY: 4096}, shm=shm)
    with pytest.raises(protocol.ProtocolError, match="truncated"):
        protocol.recv(r, shm=shm)


@pytest.mark.parametrize("value", ["12", -1, 1.5, None])
def test_a_malformed_declared_size_is_refused(channel, value):
    r, w, shm = channel
    protocol.send(w, {"ok": True, protocol.SHM_KEY: value})
    with pytest.raises(protocol.ProtocolError):
        protocol.recv(r, shm=shm)


def test_shared_memory_where_none_is_expected_is_refused(channel):
    r, w, _ = channel
    protocol.send(w, {"ok": True, protocol.SHM_KEY: 8})
    with pytest.raises(protocol.ProtocolError, match="none is expected"):
        protocol.recv(r)


def test_a_payload_both_inline_and_shared_is_refused(channel):
    r, w, shm = channel
    protocol.send(w, {"ok": True, protocol.SHM_KEY: 4}, b"abcd")
    with pytest.raises(protocol.ProtocolError, match="both"):
        protocol.recv(r, shm=shm)
