"""The pure pieces of GRPO on hand-checked inputs: advantages, rollout budgets, the clipped
surrogate, the KL estimate and loss aggregation."""
from __future__ import annotations

import math
import statistics

import pytest

from kopt.rl_finetune.advantages import batch_advantages, group_advantages, median_advantages
from kopt.rl_finetune.budget import PassRates, fixed_allocation, informative_value, knapsack_allocation
from kopt.rl_finetune.config import GRPOConfig

# -- advantages ------------------------------------------------------------------------------------------------


def test_group_advantages_are_standardised():
    a = group_advantages([1.0, 2.0, 3.0, 6.0])
    assert statistics.fmean(a.values) == pytest.approx(0.0, abs=1e-9)
    assert statistics.pstdev(a.values) == pytest.approx(1.0, rel=1e-4)
    assert a.values[3] > a.values[2] > a.values[1] > a.values[0]
    assert all(a.keep)


@pytest.mark.parametrize("fn", [group_advantages, median_advantages])
@pytest.mark.parametrize("rewards", [[0.3] * 5, [0.0] * 4, [-1.0] * 9, [2.5]])
def test_all_equal_rewards_give_zero_advantage(fn, rewards):
    assert fn(rewards).values == [0.0] * len(rewards)


def test_median_baseline_and_mad_scale_on_an_odd_group():
    r = [0.0, 1.0, 2.0, 3.0, 100.0]  # one outlier: median 2, MAD 1
    a = median_advantages(r)
    scale = 1.4826 * 1.0
    assert a.values[:4] == pytest.approx([(x - 2.0) / scale for x in r[:4]], rel=1e-5)
    assert a.keep == [True, True, False, True, True]  # the median sample carries no signal
    assert a.values[2] == 0.0
    # the outlier does not shrink everyone else's advantage, unlike mean/std
    g = group_advantages(r)
    assert abs(a.values[3]) > 10 * abs(g.values[3] - g.values[2])


def test_median_of_an_even_group_excludes_nobody():
    a = median_advantages([0.0, 1.0, 3.0, 4.0])
    assert all(a.keep)
    assert a.values[1] < 0 < a.values[2]


def test_median_ties_exclude_exactly_one_sample():
    a = median_advantages([1.0, 1.0, 1.0, 0.0, 5.0])
    assert a.keep.count(False) == 1
    # more than half tie at the median: MAD is 0, the scale falls back to the mean absolute deviation
    assert a.values[4] == pytest.approx((5.0 - 1.0) / ((0 + 0 + 0 + 1 + 4) / 5), rel=1e-5)
    assert a.values[3] < 0


def test_batch_advantages_rejects_nan_rewards():
    with pytest.raises(ValueError, match="non-finite"):
        batch_advantages([[1.0, math.nan, 0.0]], "group")


def test_config_checks_names_against_the_registries():
    with pytest.raises(ValueError, match="advantage"):
        GRPOConfig(advantage="mean")
    with pytest.raises(ValueError, match="budget"):
        GRPOConfig(budget="greedy")
    assert GRPOConfig(advantage="median", group_size=8).samples_per_prompt == 9
    assert "clip" in GRPOConfig.help()["clip_eps"]


# -- budgets ---------------------------------------------------------------------------------------------------


def test_informative_value_vanishes_at_the_extremes():
    assert informative_value(0.0, 16) == 0.0 and informative_value(1.0, 16) == 0.0
    assert informative_value(0.5, 8) > informative_value(0.5, 2) > 0
    assert informative_value(0.5, 4) > informative_value(0.1, 4)


def test_knapsack_respects_the_total_and_starves_solved_and_hopeless_prompts():
    rates = [0.0, 1.0, 0.5, 0.2, 0.999, 0.001]
    alloc = knapsack_allocation(rates, total=48, min_each=2)
    assert sum(alloc) <= 48
    assert alloc[0] == alloc[1] == 2  # p = 0 or 1: nothing to learn, the minimum only
    assert alloc[4] == alloc[5] == 2
    assert alloc[2] > 8 and alloc[3] > 8  # uncertain prompts take the freed rollouts
    assert sum(alloc) == 48  # and the budget is used while a rollout is worth anything


def test_knapsack_spends_nothing_extra_when_every_prompt_is_decided():
    assert knapsack_allocation([0.0, 1.0, 1.0], total=30, min_each=3) == [3, 3, 3]


def test_knapsack_caps_and_minimum():
    alloc = knapsack_allocation([0.5, 0.0, 0.0, 0.0], total=40, min_each=2, max_each=12)
    assert alloc == [12, 2, 2, 2]
    with pytest.raises(ValueError):
        knapsack_allocation([0.5] * 5, total=8, min_each=2)
    assert knapsack_allocation([], total=10) == []


def test_equal_rates_give_equal_shares():
    alloc = knapsack_allocation([0.5] * 4, total=32, min_each=2)
    assert alloc == [8, 8, 8, 8]
    assert fixed_allocation([0.1, 0.9], total=16) == [8, 8]


def test_pass_rates_start_uncertain_and_follow_evidence():
    pr = PassRates()
    assert pr.estimate(3) == 0.5
    for _ in range(6):
        pr.update(3, 0, 8)
    assert pr.estimate(3) < 0.05
    pr.update(3, 8, 8)
    assert pr.estimate(3) > 0.15  # old failures decay
    assert PassRates.from_dict(pr.to_dict()).estimate(3) == pr.estimate(3)


# -- the objective ---------------------------------------------------------------------------------------------

torch = pytest.importorskip("torch")

from kopt.rl_finetune.losses import clipped_surrogate, grpo_loss, kl_to_reference, sequence_mean, token_mean  # noqa: E402


def test_clipping_cuts_the_gradient_outside_the_trust_region():
    old = torch.zeros(4, 1)
    logp = torch.log(torch.tensor([[1.5], [0.9], [0.5], [1.1]])).requires_grad_()
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0])
    loss, clipped = clipped_surrogate(logp, old, adv, clip_eps=0.2)
    # ratio 1.5 with A>0 is clipped at 1.2; ratio 0.5 with A<0 is clipped at 0.8; the others are not
    assert loss[:, 0].tolist() == pytest.approx([-1.2, -0.9, 0.8, 1.1])
    assert clipped[:, 0].tolist() == [True, False, True, False]
    loss.sum().backward()
    assert logp.grad[0, 0] == 0 and logp.grad[2, 0] == 0
    assert logp.grad[1, 0] == pytest.approx(-0.9) and logp.grad[3, 0] == pytest.approx(1.1)


def test_at_ratio_one_the_gradient_is_the_policy_gradient():
    logp = torch.tensor([[-0.7, -1.2]], requires_grad=True)
    loss, clipped = clipped_surrogate(logp, logp.detach(), torch.tensor([2.0]))
    loss.sum().backward()
    assert not clipped.any()
    assert logp.grad.tolist() == [[-2.0, -2.0]]


def test_kl_estimate_is_zero_at_agreement_and_positive_otherwise():
    logp = torch.log(torch.tensor([[0.5, 0.25]]))
    assert kl_to_reference(logp, logp).abs().max() == 0
    ref = torch.log(torch.tensor([[0.25, 0.5]]))
    kl = kl_to_reference(logp, ref)
    assert (kl > 0).all()
    d = math.log(0.5)  # log(ref/pi) of the first token
    assert float(kl[0, 0]) == pytest.approx(math.exp(d) - d - 1)


def test_kl_estimate_is_unbiased_for_the_true_kl():
    p = torch.tensor([0.7, 0.2, 0.1])
    q = torch.tensor([0.4, 0.4, 0.2])
    true_kl = float((p * (p / q).log()).sum())
    g = torch.Generator().manual_seed(0)
    x = torch.multinomial(p, 200_000, replacement=True, generator=g)
    est = kl_to_reference(p.log()[x], q.log()[x]).mean()
    assert float(est) == pytest.approx(true_kl, rel=0.03)


def test_token_mean_weighs_tokens_and_sequence_mean_weighs_completions():
    per_token = torch.tensor([[1.0, 1.0, 1.0, 1.0], [3.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    assert float(token_mean(per_token, mask)) == pytest.approx(7 / 5)
    assert float(sequence_mean(per_token, mask)) == pytest.approx(2.0)
    empty = torch.zeros(2, 4)
    assert float(token_mean(per_token, empty)) == 0.0 and float(sequence_mean(per_token, empty)) == 0.0


def test_beta_adds_the_kl_and_masked_tokens_do_not_count():
    logp = torch.log(torch.tensor([[0.5, 0.1]]))
    ref = torch.log(torch.tensor([[0.25, 0.9]]))
    mask = torch.tensor([[1.0, 0.0]])
    adv = torch.tensor([0.0])
    loss0, stats = grpo_loss(logp, logp, adv, mask, beta=0.0, ref_logp=ref)
    loss1, _ = grpo_loss(logp, logp, adv, mask, beta=0.5, ref_logp=ref)
    kl_first = float(kl_to_reference(logp, ref)[0, 0])
    assert float(loss0) == 0.0 and stats["kl"] == pytest.approx(kl_first)
    assert float(loss1) == pytest.approx(0.5 * kl_first)
