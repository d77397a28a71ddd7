"""Where training runs: one device, or every process of an `accelerate launch`.

With accelerate installed and a launch of several processes, gradients are averaged across
them by accelerate's Accelerator; each process samples its own share of a step's prompts.
Without accelerate (or with one process) it is plain PyTorch on the first GPU or the CPU.
"""
from __future__ import annotations

import os


class Runtime:
    def __init__(self, device: str | None = None):
        import torch

        self.torch = torch
        self.accelerator = None
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            try:
                from accelerate import Accelerator
            except ImportError:
                Accelerator = None
            if Accelerator is not None:
                self.accelerator = Accelerator(cpu=not torch.cuda.is_available())
        if self.accelerator is not None:
            self.device = self.accelerator.device
            self.rank, self.world = self.accelerator.process_index, self.accelerator.num_processes
        else:
            self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
            self.rank, self.world = 0, 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def prepare(self, model, optimizer):
        if self.accelerator is None:
            return model.to(self.device), optimizer
        return self.accelerator.prepare(model, optimizer)

    def unwrap(self, model):
        return self.accelerator.unwrap_model(model) if self.accelerator is not None else model

    def backward(self, loss) -> None:
        if self.accelerator is not None:
            self.accelerator.backward(loss)
        else:
            loss.backward()

    def clip_grad(self, params, max_norm: float) -> None:
        if max_norm <= 0:
            return
        if self.accelerator is not None:
            self.accelerator.clip_grad_norm_(params, max_norm)
        else:
            self.torch.nn.utils.clip_grad_norm_(params, max_norm)

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """The average over processes of each metric (identity on one process)."""
        if self.accelerator is None or not values:
            return values
        keys = sorted(values)
        t = self.torch.tensor([float(values[k]) for k in keys], device=self.device)
        t = self.accelerator.reduce(t, reduction="mean")
        return dict(zip(keys, t.tolist()))

    def wait(self) -> None:
        if self.accelerator is not None:
            self.accelerator.wait_for_everyone()
