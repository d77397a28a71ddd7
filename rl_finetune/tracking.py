"""`kopt train --report-to`: the trainer's logged metrics sent to the experiment trackers that
`accelerate` wraps (TensorBoard, Weights & Biases, MLflow), as TRL's `report_to` does.

A trainer callback: it gets each logged metrics dict; only numbers are sent.
"""
from __future__ import annotations

from pathlib import Path

from kopt.agent.errors import EnvironmentMissing

REPORT_TO = ("none", "tensorboard", "wandb", "mlflow")
PACKAGE = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


class Tracker:
    """Logs to one accelerate tracker under `run_dir/<name>` (TensorBoard, MLflow) or its service."""

    def __init__(self, name: str, run_dir: Path, config: dict, run_name: str = "kopt-train"):
        import importlib.util

        from accelerate import tracking

        if importlib.util.find_spec(PACKAGE[name]) is None:
            raise EnvironmentMissing(f"--report-to {name} needs the {PACKAGE[name]} package: pip install "
                                     f"{PACKAGE[name]}")
        cls = tracking.LOGGER_TYPE_TO_CLASS[name]
        logging_dir = str(Path(run_dir) / name)
        self.tracker = cls(run_name) if name == "wandb" else cls(run_name, logging_dir=logging_dir)
        if hasattr(self.tracker, "start"):  # accelerate >= 1.x starts trackers lazily
            self.tracker.start()
        self.tracker.store_init_configuration(_flat(config))

    def __call__(self, metrics: dict) -> None:
        numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        self.tracker.log(numbers, step=int(metrics.get("step", 0)))

    def close(self) -> None:
        self.tracker.finish()


def make_tracker(name: str, run_dir: Path, config: dict) -> Tracker | None:
    return None if name == "none" else Tracker(name, run_dir, config)


def _flat(config: dict, prefix: str = "") -> dict:
    """Nested sections as "section.key" scalars (what trackers' hyper-parameter tables take)."""
    out = {}
    for k, v in config.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out
