"""No way out but the (absent) network: a unix socket on the host -- path-named, reached
through ctypes where no audit hook sees it, or abstract -- vsock, netlink and io_uring all
fail inside the worker with EPERM from its seccomp filter; what listens on the host hears
nothing. Abstract sockets are also cut off by the network namespace alone (checked without
the filter)."""
from __future__ import annotations

import errno
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from kopt.sandboxes.jail_setup import namespace_prefix
from tests.redteam.jailrun import require, run_hostile


class UnixListener:
    """Listens on a unix socket address; `heard` holds what each connection sent."""

    def __init__(self, address: str):
        self.heard: list[bytes] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(address)
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(1)
            try:
                self.heard.append(conn.recv(200))
            except OSError:
                self.heard.append(b"")
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.sock.close()


def test_unix_vsock_netlink_and_io_uring_fail():
    require("unix/vsock/netlink block")
    secret = "kopt-secret-" + secrets.token_hex(8)
    folder = Path(tempfile.mkdtemp(prefix="kopt-rt-", dir="/var/tmp"))  # in the jail's view
    folder.chmod(0o755)
    path, abstract = str(folder / "sock"), "kopt-rt-" + secrets.token_hex(6)
    named, hidden = UnixListener(path), UnixListener("\0" + abstract)
    Path(path).chmod(0o777)  # anyone may connect: only the filter stands in the way
    try:
        report, out, worker = run_hostile("jail_sockets", path, abstract, secret)
    finally:
        named.close()
        hidden.close()
        shutil.rmtree(folder, ignore_errors=True)
    assert named.heard == [] and hidden.heard == [], (named.heard, hidden.heard)
    assert worker.protections["unix/vsock/netlink block"]
    assert secret not in out
    assert report == {k: -errno.EPERM for k in ("ctypes_path", "ctypes_abstract", "module_path", "module_abstract",
                                                  "vsock", "netlink", "netlink_audit", "io_uring")}, report


CONNECT = "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect('\\0'+sys.argv[1]); print('connected')"


def test_abstract_sockets_stop_at_the_network_namespace():
    """Without any filter: from the host the abstract listener answers, from a fresh network
    namespace (the worker's) it does not exist."""
    prefix = namespace_prefix()
    if not prefix:
        pytest.skip("no namespaces on this machine")
    abstract = "kopt-rt-" + secrets.token_hex(6)
    listener = UnixListener("\0" + abstract)
    try:
        host = subprocess.run([sys.executable, "-c", CONNECT, abstract], capture_output=True, text=True, timeout=60)
        jailed = subprocess.run([*prefix, sys.executable, "-c", CONNECT, abstract], capture_output=True, text=True,
                                timeout=60)
    finally:
        listener.close()
    assert "connected" in host.stdout, host.stderr  # the probe itself works
    assert "connected" not in jailed.stdout and "ConnectionRefusedError" in jailed.stderr, jailed
