"""Two steps of jail.sh that the shell cannot do, run as `python -I -S jailhelp.py CMD ...`
(standard library only, no site, so it starts fast and imports nothing from the host):

- `idmap PATH UID GID`: put an id-mapped bind of PATH over itself, so that files the host's
  root owns there appear owned by UID:GID -- the unprivileged worker can write its own build
  cache, and what it writes lands on the host owned by root, with no chown of host files;
- `seccomp -- CMD...`: install a seccomp filter, then exec CMD. socket() for AF_UNIX,
  AF_NETLINK and AF_VSOCK, io_uring (which opens and connects sockets without the socket
  syscall) and the keyring calls (add_key, request_key, keyctl) fail with EPERM. A unix
  socket is the one way out of the network namespace (a path-named socket on the host);
  the keyring is shared by every process of a uid, so a key would outlive the worker.
  sched_setaffinity fails too: kopt pins the worker's threads from outside, and a candidate
  that widened its own affinity would run on cores the reference does not get.
  What the host's page cache holds may be neither set nor read: fadvise64, readahead,
  mincore and cachestat fail, and so does preadv2 with RWF_NOWAIT (EAGAIN: not cached), and
  move_pages (its status says which pages of a mapping are present), Linux AIO (io_setup,
  io_submit: an iocb's aio_rw_flags carries RWF_NOWAIT too) and perf_event_open (a process's
  own major-fault count, getrusage's ru_majflt by another door; red team 11). Nor may a
  run push pages out of it: madvise MADV_COLD / MADV_PAGEOUT, process_madvise and
  migrate_pages fail -- a run that read a tree file's uncached pages and paged them out
  again left the cache as it found it, and kopt's count of the pages it brought in at 0
  (red team 23). A
  page of a read-only host file, cached or dropped, is a bit every later run and evaluation
  sees: a program kept each input's answer there (faster 1859x, every counted and timed run
  a lookup, red team 8). Left: timing a read (a dropped page is a disk read), slower and
  write-once without fadvise.

`drop_privileges` is jail.sh's last step (`setpriv --reuid --regid --clear-groups
--inh-caps=-all --bounding-set=-all --no-new-privs`) for a worker that is not exec'd (a fork
of kopt's zygote): without an exec, root of a user namespace would keep its capabilities
there, so every set is cleared explicitly and then read back from /proc/self/status.
"""
from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
import sys

# (audit arch, syscall numbers) per machine; new syscalls (io_uring, mount API) share numbers
ARCHES = {
    "x86_64": (0xC000003E, {"socket": 41, "add_key": 248, "request_key": 249, "keyctl": 250,
                            "sched_setaffinity": 203, "fadvise64": 221, "readahead": 187, "mincore": 27,
                            "preadv2": 327, "move_pages": 279, "io_setup": 206, "io_submit": 209,
                            "perf_event_open": 298, "madvise": 28, "migrate_pages": 256, "socketpair": 53}),
    "aarch64": (0xC00000B7, {"socket": 198, "add_key": 217, "request_key": 218, "keyctl": 219,
                             "sched_setaffinity": 122, "fadvise64": 223, "readahead": 213, "mincore": 232,
                             "preadv2": 286, "move_pages": 239, "io_setup": 0, "io_submit": 2,
                             "perf_event_open": 241, "madvise": 233, "migrate_pages": 238, "socketpair": 199}),
}
CACHESTAT = 451  # the same on both
PROCESS_MADVISE = 440  # the same on both
MADVISE_ADVICE = 16 + 8 * 2  # seccomp_data.args[2], low half
MADV_COLD, MADV_PAGEOUT = 20, 21
RWF_NOWAIT = 0x8
PREADV2_FLAGS = 16 + 8 * 5  # seccomp_data.args[5], low half
IO_URING = (425, 426, 427)  # setup, enter, register
BLOCKED_FAMILIES = (1, 16, 40)  # AF_UNIX, AF_NETLINK, AF_VSOCK
AF_UNIX, SOCK_STREAM, SOCK_SEQPACKET, SOCK_TYPE_MASK = 1, 1, 5, 0xF
X32_BIT = 0x40000000
RET_ALLOW, RET_EPERM = 0x7FFF0000, 0x00050000 | errno.EPERM
LD_W_ABS, JEQ_K, JSET_K, RET_K, AND_K = 0x20, 0x15, 0x45, 0x06, 0x54
OPEN_TREE_CLONE, AT_EMPTY_PATH, MOVE_MOUNT_F_EMPTY_PATH, MOUNT_ATTR_IDMAP = 1, 0x1000, 0x4, 0x100000
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_MOUNT_SETATTR = 428, 429, 442
CLONE_NEWUSER = 0x10000000
LIBC = ctypes.CDLL(None, use_errno=True)


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def filter_program(machine: str | None = None) -> bytes:
    """The BPF program for this machine (ValueError on a machine it does not know)."""
    machine = machine or platform.machine()
    if machine not in ARCHES:
        raise ValueError(f"no seccomp table for {machine}")
    arch, nr = ARCHES[machine]
    deny_nrs = [nr["add_key"], nr["request_key"], nr["keyctl"], nr["sched_setaffinity"], *IO_URING,
                nr["fadvise64"], nr["readahead"], nr["mincore"], nr["move_pages"], CACHESTAT,
                nr["io_setup"], nr["io_submit"], nr["perf_event_open"], PROCESS_MADVISE, nr["migrate_pages"]]
    prog = [_ins(LD_W_ABS, 4), _ins(JEQ_K, arch, 1, 0), _ins(RET_K, RET_EPERM),  # another ABI: nothing
            _ins(LD_W_ABS, 0), _ins(JSET_K, X32_BIT, 0, 1), _ins(RET_K, RET_EPERM)]  # x32 ABI: nothing
    for n in deny_nrs:
        prog += [_ins(JEQ_K, n, 0, 1), _ins(RET_K, RET_EPERM)]
    prog += [_ins(JEQ_K, nr["madvise"], 0, 5), _ins(LD_W_ABS, MADVISE_ADVICE),  # madvise: its advice
             _ins(JEQ_K, MADV_COLD, 2, 0), _ins(JEQ_K, MADV_PAGEOUT, 1, 0), _ins(RET_K, RET_ALLOW),
             _ins(RET_K, RET_EPERM)]
    prog += [_ins(JEQ_K, nr["preadv2"], 0, 4), _ins(LD_W_ABS, PREADV2_FLAGS),  # preadv2: its flags
             _ins(JSET_K, RWF_NOWAIT, 0, 1), _ins(RET_K, RET_EPERM), _ins(RET_K, RET_ALLOW)]
    # socketpair: a unix pair of the connected kinds only. A datagram pair (SOCK_RAW is one too)
    # sends to any path sendto() names and re-connects anywhere: round 28 reached a host socket
    prog += [_ins(JEQ_K, nr["socketpair"], 0, 8), _ins(LD_W_ABS, 16), _ins(JEQ_K, AF_UNIX, 0, 5),
             _ins(LD_W_ABS, 24), _ins(AND_K, SOCK_TYPE_MASK), _ins(JEQ_K, SOCK_STREAM, 2, 0),
             _ins(JEQ_K, SOCK_SEQPACKET, 1, 0), _ins(RET_K, RET_EPERM), _ins(RET_K, RET_ALLOW)]
    prog += [_ins(JEQ_K, nr["socket"], 0, 2 * len(BLOCKED_FAMILIES) + 1), _ins(LD_W_ABS, 16)]  # args[0], low half
    for fam in BLOCKED_FAMILIES:
        prog += [_ins(JEQ_K, fam, 0, 1), _ins(RET_K, RET_EPERM)]
    prog.append(_ins(RET_K, RET_ALLOW))
    return b"".join(prog)


class Filter:
    """A BPF program packed for prctl ahead of time (a forked child then only loads it)."""

    def __init__(self, prog: bytes):
        self._prog = ctypes.create_string_buffer(prog, len(prog))
        self._fprog = ctypes.create_string_buffer(struct.pack("HxxxxxxQ", len(prog) // 8,
                                                              ctypes.addressof(self._prog)), 16)

    def load(self) -> None:
        """No new privileges, then the filter on this thread and what it starts (OSError if refused)."""
        if LIBC.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
        if LIBC.prctl(22, 2, ctypes.c_void_p(ctypes.addressof(self._fprog)), 0, 0) != 0:  # PR_SET_SECCOMP, FILTER
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")


def install_filter() -> None:
    Filter(filter_program()).load()


CAP_SETS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 4, 24, 47, 4
CAP_VERSION_3 = 0x20080522


def _prctl(*args: int) -> None:
    if LIBC.prctl(*(ctypes.c_ulong(a) for a in args), *([ctypes.c_ulong(0)] * (5 - len(args)))) != 0:
        raise OSError(ctypes.get_errno(), f"prctl{args}")


def drop_privileges(ids: tuple[int, int] | None) -> None:
    """setpriv's step, in this process: no new privileges, an empty bounding set, no ambient,
    inheritable, permitted or effective capabilities, and with `ids` that uid and gid and no
    supplementary groups. OSError unless /proc/self/status then shows exactly that."""
    _prctl(38, 1)  # PR_SET_NO_NEW_PRIVS
    last = int(open("/proc/sys/kernel/cap_last_cap").read())
    for cap in range(last + 1):
        _prctl(PR_CAPBSET_DROP, cap)
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    if ids:
        os.setgroups([])
        os.setresgid(ids[1], ids[1], ids[1])
        os.setresuid(ids[0], ids[0], ids[0])
    header = struct.pack("Ii", CAP_VERSION_3, 0)
    data = bytes(24)  # two {effective, permitted, inheritable} words, all clear
    if LIBC.capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset")
    _prctl(PR_SET_DUMPABLE, 1)  # as after an exec: kopt and the worker itself read its /proc
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
    held = [name for name in CAP_SETS if int(status[name], 16) != 0]
    if held or status["NoNewPrivs"].strip() != "1":
        raise OSError(f"capabilities still held: {held or 'no_new_privs unset'}")
    if ids and (set(status["Uid"].split()) != {str(ids[0])} or set(status["Gid"].split()) != {str(ids[1])}
                or status["Groups"].strip()):
        raise OSError(f"ids not dropped: Uid {status['Uid'].split()} Gid {status['Gid'].split()}")


def _userns_fd(uid: int, gid: int) -> tuple[int, int]:
    """(fd of a user namespace mapping 0 to uid:gid, pid of its holder to kill)."""
    ready_r, ready_w = os.pipe()
    hold_r, hold_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(hold_w)
        ok = LIBC.unshare(CLONE_NEWUSER) == 0
        os.write(ready_w, b"1" if ok else b"0")
        os.read(hold_r, 1)
        os._exit(0)
    os.close(ready_w)
    os.close(hold_r)
    ok = os.read(ready_r, 1) == b"1"
    os.close(ready_r)
    try:
        if not ok:
            raise OSError("unshare(CLONE_NEWUSER) failed")
        for name, value in (("uid_map", uid), ("gid_map", gid)):
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(f"0 {value} 1\n")
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC), pid
    finally:
        os.close(hold_w)


def idmap(path: str, uid: int, gid: int) -> None:
    userns, holder = _userns_fd(uid, gid)
    try:
        syscall = LIBC.syscall
        syscall.restype = ctypes.c_long
        tree = syscall(SYS_OPEN_TREE, -100, path.encode(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC)
        if tree < 0:
            raise OSError(ctypes.get_errno(), f"open_tree({path})")
        attr = struct.pack("QQQQ", MOUNT_ATTR_IDMAP, 0, 0, userns)
        if syscall(SYS_MOUNT_SETATTR, tree, b"", AT_EMPTY_PATH, attr, len(attr)) != 0:
            raise OSError(ctypes.get_errno(), "mount_setattr(MOUNT_ATTR_IDMAP)")
        if syscall(SYS_MOVE_MOUNT, tree, b"", -100, path.encode(), MOVE_MOUNT_F_EMPTY_PATH) != 0:
            raise OSError(ctypes.get_errno(), f"move_mount({path})")
    finally:
        os.close(userns)
        os.waitpid(holder, 0)


def main(argv: list[str]) -> None:
    try:
        if argv[:1] == ["idmap"] and len(argv) == 4:
            idmap(argv[1], int(argv[2]), int(argv[3]))
            return
        if argv[:2] == ["seccomp", "--"] and len(argv) > 2:
            install_filter()
            os.execvp(argv[2], argv[2:])
    except (OSError, ValueError) as e:
        sys.exit(f"kopt-jail: {argv[0]}: {e}")
    sys.exit("usage: jailhelp.py idmap PATH UID GID | seccomp -- CMD...")


if __name__ == "__main__":
    main(sys.argv[1:])
