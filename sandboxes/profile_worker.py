"""Run in a child process by `task_context.reference_profile`: profiles one KernelBench
task's reference `Model` with torch.profiler on a device and prints one JSON line.

    python -m kopt.sandboxes.profile_worker TASK_FILE cpu|cuda

It is its own process so that the task's code (trusted, but arbitrary) and the profiler never
run in kopt's process; the parent applies limits and a timeout.
"""
from __future__ import annotations

import json
import sys
import time
import types

GEMM_OPS = ("aten::addmm", "aten::mm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear",
            "aten::conv", "aten::_conv", "aten::convolution", "aten::_convolution", "aten::mkldnn_convolution",
            "aten::cudnn_convolution", "aten::conv_transpose", "aten::_nnpack", "aten::slow_conv")


def _load(path: str):
    mod = types.ModuleType("kopt_profiled_task")
    mod.__file__ = path
    with open(path) as f:
        exec(compile(f.read(), path, "exec"), mod.__dict__)
    return mod


def _self_ms(event, device: str) -> float:
    if device == "cuda":
        us = getattr(event, "self_device_time_total", None) or getattr(event, "self_cuda_time_total", 0)
    else:
        us = event.self_cpu_time_total
    return us / 1000.0


def profile(path: str, device: str, calls: int = 3) -> dict:
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    mod = _load(path)
    torch.manual_seed(0)
    model = mod.Model(*mod.get_init_inputs()).to(device).eval()
    inputs = [x.to(device) if isinstance(x, torch.Tensor) else x for x in mod.get_inputs()]
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    with torch.no_grad():
        out = model(*inputs)
        sync()
        t0 = time.perf_counter()
        for _ in range(calls):
            model(*inputs)
        sync()
        wall_ms = (time.perf_counter() - t0) / calls * 1000
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
        with torch_profile(activities=activities) as prof:
            for _ in range(calls):
                model(*inputs)
            sync()
    events = [e for e in prof.key_averages() if _self_ms(e, device) > 0]
    total = sum(_self_ms(e, device) for e in events) or 1.0
    rows = sorted(({"op": e.key, "ms": _self_ms(e, device) / calls, "share": _self_ms(e, device) / total,
                    "calls": max(1, e.count // calls)} for e in events), key=lambda r: -r["ms"])
    outs = out if isinstance(out, (tuple, list)) else [out]
    nbytes = sum(t.numel() * t.element_size() for t in [*inputs, *outs] if isinstance(t, torch.Tensor))
    info = {"ops": rows[:12], "wall_ms": wall_ms, "io_bytes": nbytes, "threads": torch.get_num_threads(),
            "gemm_share": sum(r["share"] for r in rows if r["op"].startswith(GEMM_OPS)),
            "shapes": [list(t.shape) for t in inputs if isinstance(t, torch.Tensor)]}
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        info["gpu"] = {"name": p.name, "cc": f"{p.major}.{p.minor}", "sms": p.multi_processor_count,
                       "memory_gb": round(p.total_memory / 2**30, 1)}
    return info


if __name__ == "__main__":
    print(json.dumps(profile(sys.argv[1], sys.argv[2])))
