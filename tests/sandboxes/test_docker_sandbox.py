"""`--sandbox docker`: the container's limits, the one-line exit 3 without an engine, and --
where an engine answers and the evaluation image is built -- a real evaluation in a container."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kopt.agent.errors import EnvironmentMissing
from kopt.sandboxes.docker_sandbox import DEFAULT_IMAGE, DockerSandbox, container_options, docker_client
from kopt.sandboxes.evaluator import EvalConfig

FIX = Path(__file__).parents[1] / "fixtures"
TASK, SOLUTION = FIX / "tasks" / "relu.py", FIX / "kb" / "relu_torch.py"
IMAGE = os.environ.get("KOPT_DOCKER_IMAGE", DEFAULT_IMAGE)


def _engine_and_image() -> str | None:
    """Why the container tests cannot run here, or None when they can."""
    try:
        client = docker_client()
    except EnvironmentMissing as e:
        return str(e)
    try:
        client.images.get(IMAGE)
    except Exception:  # noqa: BLE001
        return f"image {IMAGE} not built (docker build -t {IMAGE} .)"
    return None


def kopt_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("kopt")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "kopt.agent.cli.app"]


def test_container_is_locked_down():
    pytest.importorskip("docker")
    opts = container_options("/tmp/job", EvalConfig(memory_mb=4096), "img", cpus=1.5, pids=256)
    assert opts["network_mode"] == "none" and opts["read_only"] is True
    assert opts["mem_limit"] == opts["memswap_limit"] == "4096m"  # no swap beyond the limit
    assert opts["nano_cpus"] == 1_500_000_000 and opts["pids_limit"] == 256
    assert opts["cap_drop"] == ["ALL"] and "no-new-privileges" in opts["security_opt"]
    assert opts["volumes"] == {"/tmp/job": {"bind": "/job", "mode": "ro"}}
    assert set(opts["tmpfs"]) == {"/tmp"} and "size=" in opts["tmpfs"]["/tmp"]
    assert "device_requests" not in opts  # no GPU for a CPU evaluation


def test_gpus_go_in_through_device_requests():
    pytest.importorskip("docker")
    opts = container_options("/tmp/job", EvalConfig(device="cuda"), "img", gpus=[1])
    (req,) = opts["device_requests"]
    assert req["DeviceIDs"] == ["1"] and req["Capabilities"] == [["gpu"]]
    (every,) = container_options("/tmp/job", EvalConfig(device="cuda"), "img")["device_requests"]
    assert every["Count"] == -1


def test_no_engine_exits_3_with_one_line(tmp_path):
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-such.sock"}
    p = subprocess.run([*kopt_cmd(), "eval", str(TASK), str(SOLUTION), "--sandbox", "docker"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 3, (p.stdout, p.stderr)
    out = (p.stdout + p.stderr).strip()
    assert len(out.splitlines()) == 1 and "Traceback" not in out, out
    assert out.startswith("kopt: ") and "Docker" in out and "--sandbox local" in out


@pytest.mark.skipif(_engine_and_image() is not None, reason=f"no Docker engine or image: {_engine_and_image()}")
def test_evaluation_in_a_container_matches_the_contract():
    res = DockerSandbox(image=IMAGE).evaluate(TASK, SOLUTION, EvalConfig(max_timing_s=3, rounds=5))
    assert res["correct"] is True and res["verdict"] in ("faster", "same", "slower"), res
    assert res["task"] == str(TASK) and res["checks"]["container"]["network"] == "none"
    json.dumps(res)


def _engine() -> str | None:
    """Why no Docker engine answers here, or None when one does."""
    try:
        docker_client()
    except EnvironmentMissing as e:
        return str(e)
    return None


@pytest.mark.skipif(_engine() is not None, reason=f"no Docker engine: {_engine()}")
def test_the_dockerfile_builds(tmp_path):
    """Where an engine answers, the evaluation image builds from the repository's Dockerfile
    (then the container tests above run against it)."""
    root = Path(__file__).resolve().parents[2]
    p = subprocess.run(["docker", "build", "-q", "-t", IMAGE, str(root)], capture_output=True, text=True,
                       timeout=3600)
    assert p.returncode == 0, p.stderr[-2000:]
