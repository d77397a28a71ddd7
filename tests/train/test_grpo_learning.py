"""GRPOTrainer learns: a ~100k-parameter Llama built here, on a prompt-conditional task with a noisy
reward (kopt.rl_finetune.toy), ends with the greedy choice optimal for clearly more prompts than
the same training on shuffled rewards. (The other advantage baselines and every recipe are checked
on three more toy tasks x three seeds in test_grpo_recipes_learning.py.)"""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from kopt.rl_finetune import GRPOConfig, GRPOTrainer  # noqa: E402
from kopt.rl_finetune.toy import ToyTask, toy_model, toy_tokenizer  # noqa: E402

STEPS = 100


@pytest.fixture(autouse=True)
def one_thread():
    """A ~100k-parameter model is fastest on one thread, and stays fast on a loaded machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def trained_fraction(task: ToyTask, reward_fn, advantage: str, out) -> tuple[float, list[dict]]:
    tok = toy_tokenizer(task)
    model = toy_model(tok, seed=task.seed)
    cfg = GRPOConfig(max_steps=STEPS, prompts_per_step=task.kernels, group_size=8, advantage=advantage, lr=3e-3,
                     max_new_tokens=1, output_dir=str(out), log_every=STEPS, seed=task.seed)
    trainer = GRPOTrainer(model, reward_fn, task.prompts, cfg, tokenizer=tok)
    history = trainer.train()
    return task.optimal_fraction(trainer.model, tok), history


def test_grpo_beats_a_shuffled_reward_control(tmp_path):
    advantage = "group"
    task = ToyTask(kernels=8, configs=8, seed=1)
    chance = 1 / task.configs
    assert task.optimal_fraction(toy_model(toy_tokenizer(task), seed=1), toy_tokenizer(task)) <= 0.25
    learned, history = trained_fraction(task, task.reward, advantage, tmp_path / "trained")
    control, _ = trained_fraction(task, task.shuffled_reward(seed=3), advantage, tmp_path / "control")
    # 8 kernels: the trained policy must pick the best configuration for at least 3 more kernels than the
    # control (here it gets 5-8 of 8, the control 0-1) and for at least 3x as many as a uniform guess
    assert learned - control >= 0.375, (learned, control)
    assert learned >= 3 * chance, learned
    first = sum(m["reward"] for m in history[:10]) / 10
    last = sum(m["reward"] for m in history[-10:]) / 10
    assert last > first + 0.5  # the reward itself rose, not only the greedy choice
    assert len(history) == STEPS and all(m["completions"] == 8 * 8 for m in history)


def test_knapsack_kl_and_several_updates_per_step(tmp_path):
    """The other switches on a short run: the knapsack budget never spends more than the fixed one, beta>0 keeps
    a reference and logs a KL that grows from 0 as the policy moves, several updates per step clip."""
    task = ToyTask(kernels=8, configs=8, seed=2)
    tok = toy_tokenizer(task)
    cfg = GRPOConfig(max_steps=12, prompts_per_step=4, group_size=4, lr=1e-2, max_new_tokens=2, budget="knapsack",
                     beta=0.05, updates_per_step=2, loss_agg="sequence", output_dir=str(tmp_path), log_every=100,
                     seed=2)
    history = GRPOTrainer(toy_model(tok, seed=2), task.reward, task.prompts, cfg, tokenizer=tok).train()
    assert all(m["completions"] <= 4 * 4 for m in history)
    assert history[0]["kl"] == pytest.approx(0.0, abs=1e-6) and history[-1]["kl"] > 1e-4
    assert any(m["clip_frac"] > 0 for m in history)
    assert (tmp_path / "metrics.csv").read_text().count("\n") == 13 and (tmp_path / "config.json").is_file()


@pytest.mark.parametrize("loss_agg", ["token-mean", "sequence"])
def test_micro_batches_give_the_same_update_as_the_whole_batch(loss_agg, tmp_path):
    tok = toy_tokenizer(ToyTask(kernels=4, configs=4))
    params = []
    for micro in (0, 5):
        task = ToyTask(kernels=4, configs=4, seed=0)  # the same reward noise for both
        cfg = GRPOConfig(max_steps=1, prompts_per_step=4, group_size=4, max_new_tokens=3, seed=0, max_grad_norm=0,
                         micro_batch_size=micro, loss_agg=loss_agg, output_dir=str(tmp_path / str(micro)))
        trainer = GRPOTrainer(toy_model(tok, seed=0), task.reward, task.prompts, cfg, tokenizer=tok)
        trainer.optimizer = torch.optim.SGD(trainer.params, lr=1.0)  # the step is the gradient itself
        trainer.train_step()
        params.append(torch.cat([p.detach().flatten() for p in trainer.model.parameters()]))
    start = torch.cat([p.detach().flatten() for p in toy_model(tok, seed=0).parameters()])
    assert not torch.allclose(params[0], start)
    assert torch.allclose(params[0], params[1], atol=1e-6, rtol=1e-4)
