"""Rewards from kopt's measurements, their export, and the built-in GRPO trainer (architecture §8).

Importing this package is cheap: torch, transformers and peft load when a trainer is built.
"""
from kopt.rl_finetune.config import GRPOConfig
from kopt.rl_finetune.trainer import GRPOTrainer

__all__ = ["GRPOConfig", "GRPOTrainer"]
