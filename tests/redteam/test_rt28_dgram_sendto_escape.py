"""rt28: a KernelBench worker reaches a host unix socket through the inputs' socket pair.

Attack: the jail's seccomp filter (jailhelp.py `filter_program`) refuses socket() for AF_UNIX
("a unix socket is the one way out of the network namespace"), but every KernelBench worker
already holds an AF_UNIX socket: its end of the SOCK_DGRAM pair that sealed inputs arrive on
(local.py `pass_ends = socket.socketpair(AF_UNIX, SOCK_DGRAM)`, sealed_inputs.receive_fd). A
datagram socket, connected or not, sends to any path given to sendto(), and the filter does not
look at sendto/sendmsg. The candidate calls libc's sendto through ctypes (no `socket.sendto`
audit event, so no alarm) on every fd with a path-named address: the one that is the pair's end
delivers the datagram. A socket file is not refused by a read-only bind (the kernel's EROFS
covers regular files, folders and links only), so any dgram socket inside a path the worker is
allowed to see is reachable -- here a folder on kopt's import path (`runtime_paths` binds every
sys.path entry), as a user's PYTHONPATH folder would be; syslog/journald/notify sockets wherever
a host's allow-list shows them.
Measured here (2-core machine, jail with every protection on): the host socket received
"rt28 hello from the sandbox uid=<the worker's uid>"; the verdict was `same` (no alarm).
Honest outcome: nothing from inside the sandbox reaches a host socket.
Root cause: sandboxes/local.py (the fd-pass pair is SOCK_DGRAM and the worker's end can send)
and sandboxes/jailhelp.py `filter_program` (socket() filtered, sendto/sendmsg not).
Fix idea: make the pair SOCK_SEQPACKET (a connected socket ignores sendto's address), or
`shutdown(SHUT_WR)` the worker's end before it is handed over (kopt only sends on it); a
seccomp rule refusing sendto with a non-null address closes the sendto door too.
Fixed: the pair is SOCK_SEQPACKET (sendto's address ignored, connect() refused) and kopt's end
is shut for reading, so the worker's end sends nothing at all (local._pass_pair); the seccomp
filter refuses socketpair(AF_UNIX) of any type but SOCK_STREAM and SOCK_SEQPACKET (a worker's
own datagram pair, SOCK_RAW included, was the same door: the `own_pair` and `raw_pair` cases).
"""
from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

import pytest

from kopt.sandboxes.evaluator import EvalConfig, evaluate

TASK = Path(__file__).resolve().parents[1] / "fixtures" / "tasks" / "relu.py"

SOLUTION = '''
import ctypes, os, socket, struct
import torch

TARGET = {target!r}.encode()
_libc = ctypes.CDLL(None, use_errno=True)


def _send(msg):
    addr = struct.pack("H", socket.AF_UNIX) + TARGET + b"\\0"
    buf = ctypes.create_string_buffer(addr, len(addr))
    fds = list(range(3, 256))
    if {kind!r} != "inherited":  # a datagram pair of its own (SOCK_DGRAM 2, SOCK_RAW 3)
        pair = (ctypes.c_int * 2)()
        _libc.socketpair(socket.AF_UNIX, 2 if {kind!r} == "own_pair" else 3, 0, pair)
        fds = [pair[0]]
    for fd in fds:
        _libc.sendto(fd, msg, len(msg), 0, buf, len(addr))
        _libc.connect(fd, buf, len(addr))  # a datagram socket re-connects anywhere
        _libc.send(fd, msg, len(msg), 0)


class ModelNew(torch.nn.Module):
    def __init__(self):
        super().__init__()
        _send(b"rt28 hello from the sandbox uid=%d" % os.getuid())

    def forward(self, x):
        return torch.relu(x)
'''


@pytest.mark.parametrize("kind", ["inherited", "own_pair", "raw_pair"])
def test_worker_cannot_send_to_a_host_unix_socket(tmp_path: Path, monkeypatch, kind: str) -> None:
    folder = tempfile.mkdtemp(prefix="kopt-rt28-sock-", dir="/tmp")
    try:
        os.chmod(folder, 0o755)  # the worker runs under a uid of its own
        path = os.path.join(folder, "s")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        server.bind(path)
        os.chmod(path, 0o777)
        server.setblocking(False)
        monkeypatch.syspath_prepend(folder)  # a folder on the import path is bound into the jail
        solution = tmp_path / "solution.py"
        solution.write_text(SOLUTION.format(target=path, kind=kind))
        cfg = EvalConfig(max_timing_s=2, rounds=3, call_timeout_s=30, setup_timeout_s=60, confirm=False,
                         quality_seeds=2)
        res = evaluate(TASK, solution, cfg)
        got = []
        try:
            while True:
                got.append(server.recv(4096))
        except BlockingIOError:
            pass
        server.close()
        if not res["checks"].get("sandbox_protections", {}).get("unix/vsock/netlink block"):
            pytest.skip(f"no seccomp filter on this host: {res['checks'].get('sandbox')}")
        assert got == [], f"the sandbox sent {got!r} to a host socket (verdict {res['verdict']})"
    finally:
        for name in os.listdir(folder):
            os.unlink(os.path.join(folder, name))
        os.rmdir(folder)
