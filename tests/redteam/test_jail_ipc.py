"""Nothing a worker leaves in System V IPC or the kernel keyring reaches the next worker
(or comes from the host): each worker has its own IPC namespace, and its seccomp filter
refuses the keyring calls (a uid's user keyring is shared by every process of that uid)."""
from __future__ import annotations

import ctypes
import errno
import secrets

import pytest

from tests.redteam.jailrun import require, run_hostile

libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
IPC_CREAT, IPC_RMID = 0o1000, 0


@pytest.fixture
def key_and_token():
    key = secrets.randbelow(1 << 28) + 1 << 2
    yield key, "krt" + secrets.token_hex(6)
    for k in (key, key + 1):  # whatever is left (a breach) goes
        for get, ctl in ((libc.shmget, libc.shmctl), (libc.msgget, libc.msgctl)):
            ident = get(k, 0, 0)
            if ident >= 0:
                ctl(ident, IPC_RMID, None)
        sem = libc.semget(k, 0, 0)
        if sem >= 0:
            libc.semctl(sem, 0, IPC_RMID)


def test_sysv_ipc_does_not_outlive_the_worker(key_and_token):
    require("ipc namespace")
    key, token = key_and_token
    host_secret = "kopt-host-" + secrets.token_hex(8)
    shm = libc.shmget(key + 1, 4096, IPC_CREAT | 0o666)
    assert shm >= 0
    addr = libc.shmat(shm, None, 0)
    ctypes.memmove(addr, host_secret.encode(), len(host_secret))
    try:
        planted, _, worker = run_hostile("jail_ipc", "plant", str(key), token)
        assert worker.protections["ipc namespace"]
        # the attack ran: inside its namespace each object was made
        assert planted["shm"] >= 0 and planted["msg"] >= 0 and planted["sem"] >= 0, planted
        assert libc.shmget(key, 0, 0) < 0 and libc.msgget(key, 0) < 0 and libc.semget(key, 0, 0) < 0, \
            "the worker's IPC objects are on the host"
        _, out, _ = run_hostile("jail_ipc", "find", str(key), token)  # no KOPT-ESCAPED: nothing found
        assert host_secret not in out
    finally:
        libc.shmdt(ctypes.c_void_p(addr))
        libc.shmctl(shm, IPC_RMID, None)


def test_keyring_keys_are_refused(key_and_token):
    require("keyring blocked")
    key, token = key_and_token
    planted, _, worker = run_hostile("jail_ipc", "plant", str(key), token)
    assert worker.protections["keyring blocked"]
    assert planted["user_key"] == planted["session_key"] == -errno.EPERM, planted
    found, _, _ = run_hostile("jail_ipc", "find", str(key), token)
    assert found["request_key"] == -errno.EPERM, found
