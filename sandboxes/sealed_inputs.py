"""A call's inputs as a sealed memfd that kopt hands the worker with the timed request.

Why: the worker that runs the candidate shares its process with the candidate, so nothing
it holds can be trusted after the candidate's code has run (a trace function set on the
serve loop's frame rewrote the snapshots its tamper checks compared with). What must hold
whatever the candidate does is made to hold from kopt's side instead:

- the inputs do not exist in the worker before the clock starts: `put` carries no data,
  and the timed `call` passes the memfd (SCM_RIGHTS, on a socket pair made at start), so
  no hook run while inputs are placed can compute an answer out of the clock;
- kopt writes the memfd and seals it (no write, grow or shrink) before any worker sees it:
  what the inputs were is fixed in kopt's hands. The worker maps it private: an in-place
  write to an input gets a copy-on-write page, as dear as the fresh page an output takes,
  so writing into the inputs buys no time.
"""
from __future__ import annotations

import fcntl
import mmap
import os
import socket

from kopt.sandboxes import protocol

SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
MADV_POPULATE_READ = 22  # Linux 5.14+: page tables filled by read faults, copy-on-write left intact


def sealed_memfd(payload) -> int:
    """A memfd holding `payload` (bytes or a list of buffers), sealed against any change."""
    fd = os.memfd_create("kopt-inputs", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        parts = payload if isinstance(payload, list) else [payload]
        protocol._write_shm(fd, parts)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS)
    except BaseException:
        os.close(fd)
        raise
    return fd


def is_sealed(fd: int) -> bool:
    try:
        return fcntl.fcntl(fd, fcntl.F_GET_SEALS) & SEALS == SEALS
    except OSError:
        return False


def pass_fd(sock_fd: int, fd: int) -> None:
    """Hand `fd` to the worker over its socket pair (never blocks: a full queue is an error)."""
    sock = socket.socket(fileno=os.dup(sock_fd))
    try:
        sock.setblocking(False)
        socket.send_fds(sock, [b"i"], [fd])
    finally:
        sock.close()


def receive_fd(sock_fd: int) -> int:
    """The worker's side: the next fd kopt passed (OSError when none came)."""
    sock = socket.socket(fileno=os.dup(sock_fd))
    try:
        _, fds, _, _ = socket.recv_fds(sock, 1, 4)
    finally:
        sock.close()
    for extra in fds[1:]:
        os.close(extra)
    if not fds:
        raise OSError("kopt passed no inputs with the call")
    return fds[0]


def map_inputs(fd: int, torch) -> tuple[object, list]:
    """(mapping, input sets) from a passed memfd: private, writable, page tables filled
    for reading; the tensors are views of the mapping (no copy)."""
    try:
        size = os.fstat(fd).st_size
        if not size:
            return None, protocol.decode(b"", torch)
        mapped = mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
    try:
        mapped.madvise(MADV_POPULATE_READ)
    except (OSError, ValueError):
        pass  # an older kernel: pages fault in on first touch instead
    return mapped, protocol.decode(mapped, torch, copy=False)


def map_kept(fd: int, torch) -> tuple[object, list, int]:
    """`map_inputs`, and a duplicate of FD kept open: `reread` gives the inputs as sealed again."""
    kept = os.dup(fd)
    return (*map_inputs(fd, torch), kept)


def reread(fd: int, torch) -> list:
    """The input sets as kopt sealed them, fresh tensors copied out of a new map of the memfd:
    what a forward wrote into its own private mapping is not there (the repeat pass and the
    reference's float64 rerun need the inputs as sent; red team 26)."""
    size = os.fstat(fd).st_size
    if not size:
        return protocol.decode(b"", torch)
    return protocol.decode(mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ), torch)


def release(fd: int | None) -> None:
    """Close a kept duplicate (None: nothing kept); returns None, the worker's new value for it."""
    if fd is not None:
        os.close(fd)
