"""`--sandbox docker`: each evaluation in its own container, through the Docker SDK.

The container is the wall: no network, a read-only root file system, memory, CPU and
process-count limits, every capability dropped, no privilege gain, and a size-capped tmpfs
as the only writable place. The task and solution go in read-only; the `kopt eval --json`
dict comes back on stdout. Inside, kopt's usual evaluator runs (its namespace jail cannot
start without capabilities, so inside the container it falls back to rlimits -- the
container is what isolates). GPUs are handed in through device requests, one evaluation
per GPU when the caller leases them (`--gpus`).

`python -m kopt.sandboxes.docker_sandbox TASK SOLUTION CFG_JSON` is the entry point the
container runs.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from kopt.agent.errors import EnvironmentMissing, KoptError, UserInputError
from kopt.sandboxes.evaluator import EvalConfig, evaluate
from kopt.sandboxes.gpu_timing import GpuLeases, parse_gpus

DEFAULT_IMAGE = "kopt-eval:latest"


def container_options(job_dir: str, cfg: EvalConfig, image: str, gpus: list[int] | None = None,
                      cpus: float = 2.0, pids: int = 512, tmp_mb: int = 4096) -> dict:
    """Keyword arguments for `client.containers.run` (kept pure so the limits are testable)."""
    memory = f"{cfg.memory_mb}m"
    opts = {
        "image": image,
        "command": ["python", "-m", "kopt.sandboxes.docker_sandbox", "/job/task.py", "/job/solution.py",
                    "/job/cfg.json"],
        "volumes": {job_dir: {"bind": "/job", "mode": "ro"}},
        "network_mode": "none",
        "read_only": True,
        "tmpfs": {"/tmp": f"rw,exec,nosuid,size={tmp_mb}m"},
        "working_dir": "/tmp",
        "environment": {"HOME": "/tmp", "TMPDIR": "/tmp", "KOPT_CACHE_DIR": "/tmp/kopt-cache",
                        "PYTHONDONTWRITEBYTECODE": "1"},
        "mem_limit": memory, "memswap_limit": memory,
        "nano_cpus": int(cpus * 1e9),
        "pids_limit": pids,
        "cap_drop": ["ALL"],
        # an unprivileged uid even for an image without USER, and SysV IPC of its own; Docker's
        # default seccomp profile already refuses the keyring calls and vsock sockets
        "user": "10001:10001",
        "ipc_mode": "private",
        "security_opt": ["no-new-privileges"],
        "detach": True,
    }
    if cfg.device == "cuda":
        import docker.types

        ids = [str(g) for g in gpus] if gpus else None
        opts["device_requests"] = [docker.types.DeviceRequest(device_ids=ids, count=None if ids else -1,
                                                              capabilities=[["gpu"]])]
    return opts


def docker_client():
    """A client whose engine answers, or EnvironmentMissing with one line on what to do."""
    try:
        import docker
    except ImportError:
        raise EnvironmentMissing("--sandbox docker needs the Docker SDK: pip install 'kopt[dist]'") from None
    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as e:  # noqa: BLE001 - any failure to reach the engine is the same answer
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise EnvironmentMissing(f"--sandbox docker: no Docker engine answers ({why[:160]}); start Docker or use "
                                 f"--sandbox local") from None
    return client


class DockerSandbox:
    """`evaluate(task, solution, cfg)` in a fresh container; same dict as the local evaluator."""

    name = "docker"

    def __init__(self, image: str = DEFAULT_IMAGE, gpus: list[int] | None = None, cpus: float = 2.0,
                 pids: int = 512, timeout_s: float | None = None):
        self.client = docker_client()
        self.image, self.gpus, self.cpus, self.pids, self.timeout_s = image, gpus, cpus, pids, timeout_s
        try:
            self.client.images.get(image)
        except Exception:  # noqa: BLE001 - docker.errors.ImageNotFound and friends
            raise EnvironmentMissing(f"Docker image {image} not found: build it in the kopt checkout with "
                                     f"`docker build -t {image} .`") from None

    def evaluate(self, task: Path, solution: Path, cfg: EvalConfig) -> dict:
        job = Path(tempfile.mkdtemp(prefix="kopt-docker-"))
        try:
            shutil.copyfile(task, job / "task.py")
            shutil.copyfile(solution, job / "solution.py")
            # a leased GPU is handed in by a device request; inside, it is the only one
            (job / "cfg.json").write_text(cfg.model_copy(update={"gpu": None}).model_dump_json())
            job.chmod(0o755)
            for f in job.iterdir():
                f.chmod(0o644)
            result = self._run(job, cfg)
        except OSError as e:
            raise UserInputError(f"cannot stage the evaluation: {e}") from None
        finally:
            shutil.rmtree(job, ignore_errors=True)
        result["task"], result["solution"] = str(task), str(solution)
        result.setdefault("checks", {})["container"] = {"image": self.image, "network": "none",
                                                        "read_only_root": True, "pids_limit": self.pids,
                                                        "memory_mb": cfg.memory_mb, "cpus": self.cpus}
        return result

    def _run(self, job: Path, cfg: EvalConfig) -> dict:
        gpus = [cfg.gpu] if cfg.gpu is not None else self.gpus
        opts = container_options(str(job), cfg, self.image, gpus, self.cpus, self.pids)
        container = self.client.containers.run(**opts)
        timeout = self.timeout_s or cfg.setup_timeout_s + cfg.max_timing_s * 4 + 600
        try:
            try:
                status = container.wait(timeout=timeout)
            except Exception:  # noqa: BLE001 - requests' ReadTimeout: the container overran
                container.kill()
                return {"verdict": "timeout", "reason": f"the evaluation container ran past {timeout:.0f}s",
                        "compiled": False, "correct": False, "checks": {}}
            out = container.logs(stdout=True, stderr=False).decode(errors="replace")
            err = container.logs(stdout=False, stderr=True).decode(errors="replace")
        finally:
            container.remove(force=True)
        code = status.get("StatusCode", 1)
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            pass
        last = (err.strip().splitlines() or [f"exit code {code}"])[-1]
        if code == 2:
            raise UserInputError(last.removeprefix("kopt: "))
        if code == 3:
            raise EnvironmentMissing(f"inside the container: {last.removeprefix('kopt: ')}")
        if code == 137:
            last = "killed (memory limit of the container?)"
        raise EnvironmentMissing(f"the evaluation container failed ({last[:300]}); check the image {self.image}")


def evaluator_for(sandbox: str, gpus: str | None, local_evaluate):
    """The evaluation function `--sandbox` and `--gpus` ask for: the local evaluator or a
    container per evaluation, each leasing one of the GPUs when some are named."""

    try:
        ids = parse_gpus(gpus)
    except ValueError as e:
        raise UserInputError(str(e)) from None
    if sandbox == "local":
        fn = local_evaluate
    elif sandbox == "docker":
        fn = DockerSandbox(gpus=ids or None).evaluate
    else:
        raise UserInputError(f"unknown sandbox {sandbox!r}: use --sandbox local or --sandbox docker")
    return GpuLeases(fn, ids) if ids else fn


def main(argv: list[str] | None = None) -> int:
    """Inside the container: evaluate and print the result as one JSON line."""

    task, solution, cfg_file = (argv or sys.argv[1:])[:3]
    try:
        cfg = EvalConfig.model_validate_json(Path(cfg_file).read_text())
        result = evaluate(Path(task), Path(solution), cfg)
    except KoptError as e:
        print(f"kopt: {e}", file=sys.stderr)
        return e.exit_code
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
