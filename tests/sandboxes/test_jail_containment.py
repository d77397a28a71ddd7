"""Containment of the local sandbox: hostile solutions attack the machine, not the verdict.

Each test evaluates one solution from tests/fixtures/hostile (a template: the test fills in
a token, paths, pids, ports) that does its damage at import or in forward, and checks that
kopt comes back with a verdict, that kopt's process is alive, and that nothing got out:
no process left behind, no file written outside the sandbox (project tree, /tmp,
site-packages, /dev), no secret (a fake ssh key, an API key in kopt's environment, a value
in the run's store) in anything kopt returns or records.

An attack that gets through prints and raises `KOPT-ESCAPED ...` naming how, so a breach
lands in the verdict's reason and fails the test with the avenue spelled out. The attacks
only target what the test planted and only create new, empty marker files.

The correctness and timing cheats live in sandboxes/test_cheats_rejected.py; only one timing attack is
here (sleeping while timed), because it must never come out faster.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")

from kopt.agent.core import Candidate  # noqa: E402
from kopt.agent.search import optimize  # noqa: E402
from kopt.sandboxes import harness  # noqa: E402
from kopt.sandboxes.evaluator import EvalConfig, build_cache_dir, evaluate  # noqa: E402
from kopt.sandboxes.jail_probe import can_jail, jail_features  # noqa: E402
from kopt.sandboxes.jail_setup import PROTECTIONS, default_hidden, home_roots, namespace_prefix  # noqa: E402
from kopt.sandboxes.local import Limits  # noqa: E402
from kopt.sandboxes.worker_limits import Cgroups  # noqa: E402
from tests.support.listener import Listener  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
HOSTILE = Path(__file__).parents[1] / "fixtures" / "hostile"
RELU = Path(__file__).parents[1] / "fixtures" / "tasks" / "relu.py"
SITE = Path(sysconfig.get_paths()["purelib"])
HARNESS = Path(harness.__file__).resolve()

FAST = {"call_timeout_s": 10, "setup_timeout_s": 30, "memory_mb": 2000, "max_timing_s": 2, "rounds": 5}
ESCAPED = "KOPT-ESCAPED"
SECRET_PREFIX = "sk-kopt-test-"
VERDICTS = {"faster", "same", "slower", "incorrect", "compile_error", "runtime_error", "timeout",
            "rejected", "unverified"}
# folders a solution must never write to; each test looks for its token in all of them afterwards
OUTSIDE = [REPO, Path("/tmp"), Path("/var/tmp"), SITE, Path("/dev")]

needs_jail = pytest.mark.skipif(not can_jail(), reason="no jail on this machine (`kopt doctor`: jail no); "
                                                       "kopt reports the weaker sandbox it uses instead")
needs_namespaces = pytest.mark.skipif(not namespace_prefix(), reason="no namespaces on this machine")


# -- helpers ------------------------------------------------------------------------------------

@pytest.fixture
def token() -> str:
    """A per-test marker for files and process names (15 chars at most: it is also a comm name)."""
    return "khostile" + secrets.token_hex(3)


def fill(tmp_path: Path, name: str, **subs: object) -> Path:
    """A copy of hostile/<name>.py with its __PLACEHOLDERS__ filled in."""
    text = (HOSTILE / f"{name}.py").read_text()
    for key, value in subs.items():
        text = text.replace(f"__{key}__", str(value))
    out = tmp_path / f"{name}.py"
    out.write_text(text)
    return out


def run_eval(solution: Path, **cfg) -> dict:
    """evaluate() in this process on the relu task; a well-formed, JSON-able verdict dict."""
    res = evaluate(RELU, solution, EvalConfig(**{**FAST, **cfg}))
    check_result(res)
    return res


def check_result(res: dict) -> None:
    assert isinstance(res, dict) and res.get("verdict") in VERDICTS, res
    json.dumps(res)
    if res["verdict"] not in ("faster", "same", "slower"):
        assert res.get("reason"), res
    if can_jail():
        assert res["checks"].get("sandbox", "jail").startswith("jail"), res["checks"]


def assert_contained(res: dict, *secret_values: str) -> None:
    """No attack reported success, and no secret is anywhere in the verdict dict."""
    text = json.dumps(res)
    assert ESCAPED not in text, f"the sandbox was breached: {res.get('reason')}"
    for s in secret_values:
        assert s not in text, f"secret {s!r} leaked into the result: {res.get('reason')}"


DRIVER = r"""
import json, os, resource, sys
from pathlib import Path
import torch
from kopt.sandboxes.evaluator import EvalConfig, evaluate
task, template, out, cfg = sys.argv[1:5]
Path(out).write_text(Path(template).read_text().replace("__KOPT_PID__", str(os.getpid())))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("KOPT-RESULT " + json.dumps(evaluate(task, out, EvalConfig(**json.loads(cfg)))), flush=True)
print(f"KOPT-PEAK-GROWTH-KIB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before}", flush=True)
"""


def eval_in_kopt_process(template: Path, env: dict[str, str] | None = None,
                         **cfg) -> tuple[subprocess.CompletedProcess, dict | None]:
    """evaluate() in a separate kopt process (started with `env`); the solution gets its pid
    as __KOPT_PID__. Returns the process and its result dict (None if it died). The process
    also prints how much its own peak memory grew during the evaluation (`peak_growth_mib`)."""
    out = template.with_name("solution_" + template.name)
    p = subprocess.run([sys.executable, "-c", DRIVER, str(RELU), str(template), str(out),
                        json.dumps({**FAST, **cfg})],
                       capture_output=True, text=True, timeout=240, env={**os.environ, **(env or {})})
    line = next((x for x in p.stdout.splitlines() if x.startswith("KOPT-RESULT ")), None)
    res = json.loads(line.split(" ", 1)[1]) if line else None
    if res is not None:
        check_result(res)
    return p, res


def peak_growth_mib(p: subprocess.CompletedProcess) -> float:
    """How far the kopt process's own peak RSS rose during its one evaluation."""
    line = next(x for x in p.stdout.splitlines() if x.startswith("KOPT-PEAK-GROWTH-KIB "))
    return int(line.split()[1]) / 1024


def processes_with(token: str) -> list[str]:
    """Live (non-zombie) processes whose command line or name carries `token`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        comm, state = stat[stat.find("(") + 1: stat.rfind(")")], stat.rsplit(")", 1)[1].split()[0]
        if state != "Z" and (token in cmd or token in comm):
            found.append(f"{entry}: {comm} {cmd[:120]}")
    return found


def wait_gone(token: str, timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := processes_with(token)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _git_status() -> set[str]:
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO,
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return set(out.stdout.splitlines()) if out.returncode == 0 else set()


def _site_files() -> list[Path]:
    return sorted(p for p in SITE.glob("*kopt*") if p.is_file()) + sorted(SITE.glob("kopt-*.dist-info/*"))


@pytest.fixture(autouse=True)
def host_untouched(token):
    """Around every test: nothing named after the token appears outside the sandbox, the
    harness and kopt's site-packages files keep their bytes, `git status` gains no entry
    that names the token, and no process carrying the token survives."""
    status = _git_status()
    hashes = {p: _sha(p) for p in [HARNESS, *_site_files()]}
    yield
    strays = [p for d in OUTSIDE if d.is_dir() for p in d.glob(f"*{token}*")]
    for p in strays:  # clean up before failing: a breach must not leave junk behind
        try:
            p.unlink()
        except OSError:
            pass
    assert not strays, f"files written outside the sandbox: {strays}"
    changed = {str(p) for p, h in hashes.items() if not p.exists() or _sha(p) != h}
    assert not changed, f"files changed outside the sandbox: {changed}"
    new_entries = [e for e in _git_status() - status if token in e]
    assert not new_entries, f"the project tree changed: {new_entries}"
    assert not wait_gone(token), f"processes outlived the evaluation: {processes_with(token)}"


# -- processes ---------------------------------------------------------------------------------------

@needs_namespaces
def test_fork_bomb(tmp_path, token):
    """The bomb's tree stays under the process cap, is reported, and dies with the sandbox."""
    peak, stop = [0], threading.Event()

    def count():
        while not stop.is_set():
            peak[0] = max(peak[0], len(processes_with(token)))
            time.sleep(0.1)

    t = threading.Thread(target=count, daemon=True)
    t.start()
    started = time.monotonic()
    try:
        res = run_eval(fill(tmp_path, "fork_bomb", TOKEN=token))
    finally:
        stop.set()
        t.join(timeout=10)
    # a bomb still alive after setup is `rejected`; one whose tree collapsed at the cap by
    # itself leaves an honest relu behind (`same`). Either way it stayed under the cap.
    # (the relu left behind is timed like any copy: on a busy machine it may read `slower`)
    assert res["verdict"] in ("rejected", "same", "slower", "runtime_error"), res
    if res["verdict"] == "rejected":
        assert "process" in res["reason"], res
    assert time.monotonic() - started < 180
    assert 0 < peak[0] <= Limits().nproc, f"{peak[0]} bomb processes at once (cap {Limits().nproc})"
    assert not wait_gone(token), processes_with(token)
    assert subprocess.run(["true"], timeout=30).returncode == 0  # the host can still start processes
    assert_contained(res)


@needs_namespaces
def test_fork_bomb_cannot_leave_its_pids_cgroup(tmp_path):
    """A bomb would first move itself out of the cgroup that caps its process count."""
    probe = Cgroups(8, None)
    if probe.path is None:
        pytest.skip("no pids cgroup here")
    probe.remove()
    res = run_eval(fill(tmp_path, "cgroup_escape"))
    assert_contained(res)


def test_memory_bomb(tmp_path):
    res = run_eval(fill(tmp_path, "memory_bomb"))
    assert res["verdict"] == "runtime_error" and "memory" in res["reason"].lower(), res
    assert res["correct"] is False
    assert_contained(res)


def test_memory_bomb_split_across_processes(tmp_path):
    """memory_mb caps the sandbox, not each of its processes: five children of 640 MiB each
    must not all get their memory when the limit is 2000 MiB."""
    res = run_eval(fill(tmp_path, "memory_split", CHILDREN=5, EACH_MB=640, LIMIT_MB=FAST["memory_mb"]))
    assert_contained(res)


@needs_namespaces
def test_infinite_loop_ignoring_sigterm(tmp_path, token):
    started = time.monotonic()
    res = run_eval(fill(tmp_path, "ignore_sigterm", TOKEN=token), call_timeout_s=5)
    assert res["verdict"] == "timeout" and res["correct"] is False, res
    assert time.monotonic() - started < 45
    assert not wait_gone(token), f"the spinning worker survived: {processes_with(token)}"
    assert_contained(res)


@needs_namespaces
def test_double_forked_daemon_dies_with_the_sandbox(tmp_path, token):
    """The daemon reports through the build cache, the one host folder the jail lets it
    write: `-started` proves it ran (else this test proves nothing), `-late` must never come.
    The markers are named like build outputs: only those reach the shared cache read here."""
    sol = fill(tmp_path, "daemon_marker", TOKEN=token, DELAY=3)
    cache = build_cache_dir(sol.read_text())
    started = time.monotonic()
    try:
        res = run_eval(sol)
        assert not wait_gone(token), f"the daemon outlived the evaluation: {processes_with(token)}"
        time.sleep(max(0.0, started + 4.5 - time.monotonic()))  # past the daemon's sleep
        ran, late = (cache / f"{token}-started.o").exists(), (cache / f"{token}-late.o").exists()
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    assert ran, "the daemon never started: the attack did not run"
    assert res["verdict"] == "rejected" and "process" in res["reason"], res
    assert not late, "the daemon wrote its marker after the evaluation"
    assert_contained(res)


@needs_namespaces
def test_killing_the_parent(tmp_path):
    """os.kill(os.getppid()), os.kill(1), kill -9 -1, and kopt's host pid by number, by pidfd
    and through /proc/<pid>/mem: kopt (a separate process here) must live to give a verdict.
    (os.getppid() is 0 for a namespace's PID 1: kill(0) hits the worker's process group, whose
    host side -- `unshare`, root's -- an unprivileged worker cannot signal; then nothing died
    and the candidate is an honest relu. Otherwise the worker killed its own sandbox.)"""
    p, res = eval_in_kopt_process(fill(tmp_path, "kill_parent"))
    assert p.returncode == 0 and res is not None, f"kopt died: rc={p.returncode} {p.stderr[-2000:]}"
    features = jail_features()
    if features and features[1]["unprivileged uid"] and os.geteuid() == 0:
        assert res["correct"] is True, res
    else:
        assert res["correct"] is False and res["verdict"] in ("runtime_error", "rejected"), res
    assert_contained(res)


# -- files ----------------------------------------------------------------------------------------

@needs_jail
def test_disk_filler(tmp_path, token):
    sol = fill(tmp_path, "disk_filler", TOKEN=token)
    cache = build_cache_dir(sol.read_text())
    try:
        res = run_eval(sol)
        size_mb = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file()) >> 20
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    assert res["verdict"] == "runtime_error", res
    wrote = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", res["reason"])}
    if not wrote:  # killed by the memory cap first: the work dir is a tmpfs and counts as memory
        assert "memory" in res["reason"], res
    assert wrote.get("tmp", 0) == 0 and wrote.get("var_tmp", 0) == 0, wrote
    assert wrote.get("work", 0) <= Limits().tmp_mb, f"the work dir took more than its cap: {wrote}"
    assert wrote.get("dev_shm", 0) <= 64, wrote
    assert size_mb < 512, (f"the solution left {size_mb} MiB on the host disk in its build-cache folder "
                           f"{cache} (it wrote {wrote})")
    assert_contained(res)


@needs_jail
def test_writing_outside_the_sandbox(tmp_path, token):
    """New files in the project tree, /tmp, site-packages, /dev and a folder of the test's;
    the harness opened for writing. Directly, through /proc/<kopt>/root, after a remount."""
    targets = [str(d) for d in OUTSIDE] + [str(tmp_path)]
    status = _git_status()
    sol = fill(tmp_path, "write_outside", TOKEN=token, TARGETS=json.dumps(targets), HARNESS=HARNESS,
               KOPT_PID=os.getpid())
    res = run_eval(sol)
    strays = [str(p) for d in targets for p in Path(d).glob(f"*{token}*")]
    new_entries = sorted(_git_status() - status)
    assert_contained(res)
    assert not strays, strays
    assert all(token not in e for e in new_entries), new_entries
    assert res["correct"] is True, res  # nothing got out, so it is an honest relu


@needs_jail
def test_reading_an_ssh_key(tmp_path, monkeypatch):
    """kopt hides the secret folders of the home it runs with; this one is the test's."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    secret = "-----BEGIN OPENSSH PRIVATE KEY----- kopt-test-" + secrets.token_hex(16)
    key = home / ".ssh" / "id_rsa"
    key.write_text(secret + "\n")
    monkeypatch.setenv("HOME", str(home))
    # an emptied home (allow-list) where the host allows it, else its secret folders hidden
    assert str(home.resolve()) in home_roots() or str(home / ".ssh") in default_hidden()
    res = run_eval(fill(tmp_path, "read_ssh_key", KEY=key, KOPT_PID=os.getpid()))
    assert_contained(res, secret)
    assert res["correct"] is True, res
    assert key.read_text().strip() == secret


@needs_jail
def test_reading_the_run_store(tmp_path, monkeypatch, token):
    """A candidate in `kopt optimize` reads run.sqlite (and its WAL), where the proposer's
    prompt holds a secret, and tries to write into the run dir."""
    run_dir = tmp_path / "run"
    secret = SECRET_PREFIX + secrets.token_hex(12)
    code = fill(tmp_path, "read_store", RUN_DIR=run_dir.resolve(), KOPT_PID=os.getpid(), PREFIX=SECRET_PREFIX,
                TOKEN=token).read_text()

    class Proposer:
        name = "scripted"

        def propose(self, context):
            if context["parent"].parent_ids:
                return []
            return [Candidate(code=code, parent_ids=[context["parent"].id], plan_step="hostile",
                              proposer={"model": "scripted"}, prompt=f"use the key {secret}",
                              completion="here is a kernel")]

    monkeypatch.setattr(optimize, "make_proposer", lambda model, base_url=None, **kw: Proposer())
    # budget 3: the reference, then the hostile child (and a re-measurement, if the search wants one)
    cfg = EvalConfig(**FAST)
    summary = optimize.run_optimize(RELU, budget=3, run_dir=run_dir, quiet=True, eval_cfg=cfg)
    assert 2 <= summary["evaluations"] <= 3, summary
    assert str(run_dir.resolve()) in cfg.hidden_paths, "Search did not hide the run dir from candidates"
    db = sqlite3.connect(run_dir / "run.sqlite")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        hostile = db.execute("SELECT id FROM candidates WHERE plan_step='hostile'").fetchone()[0]
        rows = db.execute("SELECT * FROM evaluations").fetchall()
        mine = [json.loads(r) for (r,) in db.execute("SELECT result FROM evaluations WHERE candidate_id=?",
                                                      (hostile,))]
    finally:
        db.close()
    assert mine, "the hostile candidate was never evaluated"
    for result in mine:
        check_result(result)
        assert_contained(result, secret)
        assert result["correct"] is True, result
    stored = json.dumps(rows)
    assert ESCAPED not in stored and secret not in stored
    for f in run_dir.rglob("*"):
        assert token not in f.name, f"the candidate wrote into the run dir: {f}"
        if f.is_file() and f.suffix in (".md", ".html", ".json", ".py"):
            text = f.read_text(errors="replace")
            assert secret not in text, f"leaked into {f}"
            # .py files are the candidate's own code, which names the marker; the reports quote it
            if f.suffix != ".py" and not f.name.startswith("report."):
                assert ESCAPED not in text, f"leaked into {f}"


@needs_namespaces
def test_reading_the_callers_environment(tmp_path):
    """API keys in kopt's own environment stay out of the worker and out of every output."""
    keys = {name: SECRET_PREFIX + secrets.token_hex(12) for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY",
                                                                       "HF_TOKEN")}
    p, res = eval_in_kopt_process(fill(tmp_path, "read_env", PREFIX=SECRET_PREFIX), env=keys)
    assert p.returncode == 0 and res is not None, p.stderr[-2000:]
    assert_contained(res, *keys.values())
    for value in keys.values():
        assert value not in p.stdout and value not in p.stderr
    assert res["correct"] is True, res


# -- network and output ----------------------------------------------------------------------------

@needs_namespaces
def test_connecting_to_a_local_server(tmp_path):
    """From child interpreters (no audit hook): plainly, and after joining kopt's network
    namespace through /proc. The in-process socket is test_cheats_rejected's business."""
    with Listener() as srv:
        res = run_eval(fill(tmp_path, "network_escape", PORT=srv.port, KOPT_PID=os.getpid()))
    seen = srv.seen
    assert seen == [], f"the server heard from the candidate: {seen}"
    assert_contained(res)


@needs_jail
def test_unix_socket_on_the_host_from_forward(tmp_path, monkeypatch):
    """Issue 16's escape: forward() reached a path-named unix socket on the host through
    ctypes (no audit event) and sent it the inputs and a credential file from kopt's home."""
    folder = Path(tempfile.mkdtemp(prefix="kopt-sock-", dir="/var/tmp"))  # in the jail's view
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    secret = SECRET_PREFIX + secrets.token_hex(12)
    cred = home / ".mytoken"
    cred.write_text(secret)
    heard: list[bytes] = []
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        folder.chmod(0o755)
        srv.bind(str(folder / "s"))
        (folder / "s").chmod(0o777)
        srv.listen(4)
        srv.settimeout(0.2)
        done = threading.Event()

        def serve():
            while not done.is_set():
                try:
                    conn, _ = srv.accept()
                except OSError:
                    continue
                heard.append(conn.recv(4096))
                conn.close()

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        try:
            res = run_eval(fill(tmp_path, "unix_socket_escape", SOCK=folder / "s", CRED=cred))
        finally:
            done.set()
            t.join(timeout=5)
    finally:
        srv.close()
        shutil.rmtree(folder, ignore_errors=True)
    assert heard == [], f"the host's unix socket heard the candidate: {heard}"
    assert_contained(res, secret)
    assert res["correct"] is True, res


def test_a_gigabyte_to_stdout(tmp_path):
    """kopt keeps a bounded tail of the worker's output, never all of it: measured in a fresh
    kopt process (its own peak, not a high-water mark earlier tests may have set)."""
    started = time.monotonic()
    p, res = eval_in_kopt_process(fill(tmp_path, "stdout_flood"))
    assert p.returncode == 0 and res is not None, p.stderr[-2000:]
    assert time.monotonic() - started < 120
    grew = peak_growth_mib(p)
    assert grew < 256, f"kopt's peak memory grew by {grew:.0f} MiB while the worker wrote 1 GiB"
    assert len(json.dumps(res)) < 64 << 10
    assert res["verdict"] in ("same", "faster", "slower") and res["correct"] is True, res
    assert_contained(res)


# -- timing -------------------------------------------------------------------------------------

def test_sleeping_only_while_timed_is_slower(tmp_path):
    res = run_eval(fill(tmp_path, "timed_sleeper", SLEEP_MS=5))
    assert res["correct"] is True, res
    assert res["verdict"] == "slower", res
    assert res["new_ms"] > res["ref_ms"] and res["speedup"] < 1, res
    assert_contained(res)


# -- kopt doctor -------------------------------------------------------------------------------------

def test_doctor_reports_the_sandbox():
    exe = Path(sys.executable).with_name("kopt")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "kopt.agent.cli.app"]
    p = subprocess.run([*cmd, "doctor", "--json"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    for key in ("sandbox", "jail", "pids cgroup", "namespaces", "worker user", *PROTECTIONS):
        assert isinstance(info.get(key), str) and info[key], (key, info)
    jail = can_jail()
    assert info["jail"] == ("yes" if jail else "no")
    assert info["sandbox"].startswith("jail" if jail else ("namespaces" if namespace_prefix() else "rlimits"))
    features = jail_features()
    for name in PROTECTIONS:  # each protection on exactly where the probe found it working
        on = bool(features and features[1][name]) or (name == "ipc namespace" and "--ipc" in namespace_prefix())
        assert info[name].startswith("on" if on else "off"), (name, info[name])
    cg = Cgroups(8, None)
    try:
        assert info["pids cgroup"].startswith("yes" if cg.path is not None else "no"), info
    finally:
        cg.remove()
