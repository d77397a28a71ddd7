"""`kopt doctor`: what isolation (each protection of the jail on or off), toolchains and
accelerators this machine offers."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from kopt.sandboxes import landlock, zygote_client
from kopt.sandboxes.jail_probe import (
    FEATURE_PROTECTIONS,
    REFUSED,
    can_jail,
    jail_features,
    overlay_works,
    protections,
)
from kopt.sandboxes.jail_setup import PROTECTIONS, WORKER_UIDS, namespace_prefix
from kopt.sandboxes.local import scrubbed_env
from kopt.sandboxes.machine import memory_bandwidth_gbs
from kopt.sandboxes.worker_limits import Cgroups


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text and out.returncode == 0 else "not found"


def _pids_cgroup() -> str:
    """Whether a pids cgroup can be made here (the probe one is removed at once)."""

    cg = Cgroups(64, None)
    if cg.path is None:
        return "no (process count capped by RLIMIT_NPROC only, which root ignores)"
    where = str(cg.path.parent)
    cg.remove()
    return f"yes ({where})"


def _cpu_cgroup() -> str:
    """Whether a run's CPU can be capped here: the repository target runs the original's bench
    once slowed, to tell the numbers it prints that track its speed (repo_bench._slowed_run)."""
    cg = Cgroups(64, None, cpu_quota=0.5)
    capped = cg.cpu_capped
    cg.remove()
    return ("yes (the original's bench runs once slowed: a coarse timing it prints is not taken for its answer)"
            if capped else "no (a timing a bench prints too coarsely to vary may be taken for part of its answer)")


def _protections() -> dict[str, str]:
    """Each protection of the jail, on or off here, by the names `checks.sandbox` uses."""

    jail = jail_features()
    have = protections(jail is not None, bool(namespace_prefix()))
    why = {name: REFUSED[f][:120] for f, names in FEATURE_PROTECTIONS.items() if f in REFUSED for name in names}
    if jail is None:
        why = dict.fromkeys(PROTECTIONS, "no jail on this host")
    return {name: "on" if have[name] else f"off ({why.get(name, 'refused')})" for name in PROTECTIONS}


def _zygote(jail: bool) -> str:
    """Whether KernelBench CPU workers fork from a zygote here, or why they are exec'd: the
    zygote is started and probed as for a first worker (its forks must get exactly an exec'd
    jailed worker's protections)."""
    if not zygote_client.enabled():
        return "off (KOPT_ZYGOTE=0: every worker is exec'd)"
    if not jail:
        return "off (no jail here: a fork must have a jailed worker's protections; workers are exec'd)"
    with tempfile.TemporaryDirectory(prefix="kopt-doctor-") as home:
        try:
            if zygote_client.verified_zygote(scrubbed_env(home)) is not None:
                return "on (KernelBench CPU workers fork from a pre-imported zygote; GPU and other workers are exec'd)"
            why = next(iter(zygote_client.REFUSED.values()), "refused")
        except OSError as e:  # a report line, never a crash
            why = f"failed: {e}"
    return f"off ({why[:160]}; workers are exec'd)"


def report() -> dict:
    prefix = namespace_prefix()
    jail = can_jail()
    shields = _protections()
    info = {
        # the same words evaluate() records in checks["sandbox"]
        "sandbox": ("jail (namespaces, read-only host, private work dir)" if jail else
                    "namespaces (no mount isolation: weaker)" if prefix else "rlimits only (weaker isolation)"),
        "jail": "yes" if jail else "no",
        "pids cgroup": _pids_cgroup(),
        "cpu cgroup": _cpu_cgroup(),
        "namespaces": ("net+pid+ipc" if "--ipc" in prefix else "net+pid") if prefix else "none",
        "user namespaces": "yes" if "--user" in prefix else ("not needed (root)" if prefix else "no"),
        "worker user": (f"a uid of its own per worker ({WORKER_UIDS.start}+), no capabilities, read-only host"
                        if shields["unprivileged uid"] == "on" and os.geteuid() == 0 else
                        "kopt's user, no capabilities (setpriv), read-only host" if jail else
                        "root in a user namespace" if "--user" in prefix else
                        "root with full capabilities (weaker: no jail)" if os.geteuid() == 0 else
                        "the same user as kopt"),
        **shields,
        "zygote": _zygote(jail),
        "repository tree read-only": ("on (every test and bench run sees its tree through an overlay; what it "
                                      "changes lands in a folder of its own, thrown away)" if overlay_works() else
                                      f"off ({REFUSED.get('overlay', 'refused')[:120]}): runs write their tree, "
                                      f"and a reset puts it back as far as it can"),
        "page cache unreadable": ("on (Landlock: no /proc or /sys counters; getrusage refused) for KernelBench CPU "
                                  "workers, program runs and repository commands" if landlock.available() else
                                  "off (no Landlock on this kernel): a run could read which host file pages are "
                                  "cached"),
        "bubblewrap": shutil.which("bwrap") or "not found",
        "docker engine": "yes" if shutil.which("docker") and _version(["docker", "info", "--format",
                                                                      "{{.ServerVersion}}"]) != "not found"
        else "no",
        "g++": _version(["g++", "--version"]),
        "nvcc": _version(["nvcc", "--version"]).replace("\n", " ") if shutil.which("nvcc") else "not found",
        "valgrind": _version(["valgrind", "--version"]),
    }
    try:
        info["memory bandwidth"] = f"{memory_bandwidth_gbs():.1f} GB/s (copy; the floor for 'physically possible')"
    except Exception as e:  # noqa: BLE001 - a report line, never a crash
        info["memory bandwidth"] = f"not measured ({type(e).__name__})"
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU visible"
    except ImportError:
        info["torch"] = "not installed (pip install torch)"
    return info
