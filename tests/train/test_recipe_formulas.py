"""The GRPO recipes' formulas on small hand-checked inputs (rl_finetune/recipes), edge cases
included: all-equal rewards, pass rates of 0 and 1, empty groups, a single finished rollout."""
from __future__ import annotations

import itertools
import math
import random
import statistics

import pytest

from kopt.rl_finetune.recipes.baselines import component_dicts_to_groups, gdpo_advantages, remax_advantages
from kopt.rl_finetune.recipes.components import split_rewards
from kopt.rl_finetune.recipes.downsample import (
    d3s_keep_fraction,
    d3s_sample_keep,
    d3s_token_mask,
    max_variance_subset,
)
from kopt.rl_finetune.recipes.flawed import flaws_of, penalise_flawed
from kopt.rl_finetune.recipes.hints import StaticHints, StoreHints, best_solutions, hint_fraction, hint_prefix
from kopt.rl_finetune.recipes.off_policy import effective_sample_size, ess_step_scale, truncated_importance_weights
from kopt.rl_finetune.recipes.partial import Partial, PartialGroup, PartialRollouts, prune_doomed
from kopt.rl_finetune.recipes.selection import (
    GDROWeights,
    ReplayBuffer,
    difficulty_bin,
    dots_select,
    sqrt_allocation,
    thompson_scores,
    vade_select,
    weighted_sample,
)

# -- ReMax and GDPO --------------------------------------------------------------------------------------------


def test_remax_baseline_is_the_greedy_reward():
    a = remax_advantages([1.0, 0.0, 2.0], greedy_reward=1.0, pooled=False)  # the paper's form
    assert a.values == [0.0, -1.0, 1.0] and all(a.keep)


def test_remax_pools_the_greedy_reward_into_the_group_baseline():
    # samples 1, 0, 2 and greedy 1: mean 1, population std sqrt(0.5)
    a = remax_advantages([1.0, 0.0, 2.0], greedy_reward=1.0)
    assert a.values == pytest.approx([0.0, -2 ** 0.5, 2 ** 0.5]) and all(a.keep)
    # a greedy answer far from the samples moves the baseline by a share, not all the way
    far = remax_advantages([0.0, 0.1, 0.2], greedy_reward=-1.5).values
    assert min(far) > 0 and far[2] - far[0] == pytest.approx(0.2 / statistics.pstdev([0, .1, .2, -1.5]))


def test_remax_gives_signal_when_the_group_ties_but_greedy_differs():
    assert remax_advantages([0.0] * 3, greedy_reward=0.0).values == [0.0] * 3
    assert remax_advantages([0.0] * 3, greedy_reward=1.0, pooled=False).values == [-1.0] * 3
    tied = remax_advantages([0.0] * 3, greedy_reward=1.0).values
    assert tied == pytest.approx([-1 / 3 ** 0.5] * 3)  # all pushed down: greedy did better
    assert remax_advantages([], greedy_reward=1.0).values == []
    with pytest.raises(ValueError):
        remax_advantages([1.0], greedy_reward=math.nan)


def test_gdpo_normalises_each_component_in_its_group_then_the_batch():
    groups = [{"correct": [1.0, 0.0], "speed": [10.0, 10.0]},   # z: [1, -1] + [0, 0]
              {"correct": [0.0, 0.0], "speed": [1.0, 3.0]}]     # z: [0, 0] + [-1, 1]
    adv = gdpo_advantages(groups)
    flat = [v for a in adv for v in a.values]
    assert flat == pytest.approx([1.0, -1.0, -1.0, 1.0], abs=1e-5)


def test_gdpo_gives_a_small_scale_component_an_equal_say():
    # correct/fast pairs: (1, 100) (0, 300) (0, 100) (1, 300); summed rewards rank by speed alone
    g = {"correct": [1.0, 0.0, 0.0, 1.0], "speed": [100.0, 300.0, 100.0, 300.0]}
    v = gdpo_advantages([g])[0].values
    assert v[0] == pytest.approx(v[1], abs=1e-6)  # correct-but-slow ties incorrect-but-fast
    assert v[3] > v[0] > v[2]
    assert statistics.fmean(v) == pytest.approx(0.0, abs=1e-9)
    assert statistics.pstdev(v) == pytest.approx(1.0, rel=1e-4)


def test_gdpo_weights_scale_components():
    g = {"correct": [1.0, 0.0, 0.0, 1.0], "speed": [100.0, 300.0, 100.0, 300.0]}
    v = gdpo_advantages([g], weights={"correct": 2.0})[0].values
    assert v[0] > v[1]


@pytest.mark.parametrize("groups", [[], [{}], [{"a": [0.3, 0.3, 0.3]}], [{"a": [1.0]}, {"a": [2.0]}]])
def test_gdpo_edge_cases_give_zeros(groups):
    adv = gdpo_advantages(groups)
    assert len(adv) == len(groups)
    assert all(v == 0.0 for a in adv for v in a.values)


def test_gdpo_rejects_ragged_or_non_finite_components():
    with pytest.raises(ValueError, match="different lengths"):
        gdpo_advantages([{"a": [1.0, 2.0], "b": [1.0]}])
    with pytest.raises(ValueError, match="non-finite"):
        gdpo_advantages([{"a": [1.0, math.inf]}])


def test_reward_dicts_reshape_into_groups_and_split_into_totals():
    raw = [{"correct": 1.0, "speed": 0.5}, {"correct": 0.0}, {"correct": 1.0, "speed": 0.2, "flawed": True}]
    parts = split_rewards(raw)
    assert parts.totals == pytest.approx([1.5, 0.0, 1.2])
    assert parts.flawed == [False, False, True]
    groups = component_dicts_to_groups(parts.components, [2, 1])
    assert groups == [{"correct": [1.0, 0.0], "speed": [0.5, 0.0]}, {"correct": [1.0], "speed": [0.2]}]
    plain = split_rewards([0.5, 1])
    assert plain.totals == [0.5, 1.0] and plain.components is None and plain.flawed == [False, False]
    with pytest.raises(ValueError):
        split_rewards([{"speed": math.nan}])
    with pytest.raises(ValueError):
        component_dicts_to_groups(parts.components, [1, 1])


# -- prompt selection and rollout allocation ------------------------------------------------------------------


def test_difficulty_bins():
    assert [difficulty_bin(p, 4) for p in (0.0, 0.24, 0.25, 0.5, 0.99, 1.0, -0.1, 1.5)] == [0, 0, 1, 2, 3, 3, 0, 3]
    with pytest.raises(ValueError):
        difficulty_bin(0.5, 0)


def test_weighted_sample_is_distinct_and_proportional():
    rng = random.Random(0)
    assert sorted(weighted_sample([1, 0, 2, 0], 2, rng)) == [0, 2]  # zero weights only when needed
    assert sorted(weighted_sample([1, 0, 2, 0], 4, rng)) == [0, 1, 2, 3]
    assert weighted_sample([], 3, rng) == []
    first = [weighted_sample([1.0, 3.0], 1, rng)[0] for _ in range(4000)]
    assert first.count(1) / 4000 == pytest.approx(0.75, abs=0.03)


def test_gdro_weights_move_toward_the_bin_that_fails():
    w = GDROWeights(bins=2, eta=2.0, ema=0.5, floor=0.0)
    w.update([0.1, 0.9], [0.0, 1.0])  # the hard prompt failed every rollout, the easy one passed every one
    assert w.bin_losses() == pytest.approx([1.0, 0.0])  # bias-corrected after one update
    bw = w.bin_weights()
    assert bw[0] / bw[1] == pytest.approx(math.exp(2.0))
    pw = w.prompt_weights([0.1, 0.2, 0.9])  # two prompts share the hard bin
    assert sum(pw) == pytest.approx(1.0)
    assert pw[0] == pw[1] and pw[0] / pw[2] == pytest.approx(math.exp(2.0) / 2)
    assert GDROWeights.from_dict(w.to_dict()).prompt_weights([0.1, 0.9]) == pytest.approx(w.prompt_weights([0.1, 0.9]))


def test_gdro_floor_and_unseen_bins():
    assert GDROWeights(bins=3).bin_weights() == pytest.approx([1 / 3] * 3)  # nothing seen: uniform
    w = GDROWeights(bins=2, floor=1.0)
    w.update([0.0], [0.0])
    assert w.prompt_weights([0.0, 0.9, 0.95]) == pytest.approx([1 / 3] * 3)
    assert w.prompt_weights([]) == []


def test_sqrt_allocation_hand_checked():
    # scores sqrt(p(1-p)): 0.5, 0.5, 0, 0 -> the 4 spare rollouts split evenly between the informative two
    assert sqrt_allocation([0.5, 0.5, 0.0, 1.0], 12, min_each=2) == [4, 4, 2, 2]
    # scores 0.5 and 0.3 share 8 spare rollouts 5:3
    assert sqrt_allocation([0.5, 0.1], 12, min_each=2) == [7, 5]
    # GDRO weights enter under the root: weight 4 doubles the share
    assert sqrt_allocation([0.5, 0.5], 10, min_each=2, weights=[4.0, 1.0]) == [6, 4]


def test_sqrt_allocation_spends_the_whole_budget():
    rng = random.Random(1)
    for _ in range(200):
        n = rng.randint(1, 7)
        ps = [rng.choice([0.0, 1.0, rng.random()]) for _ in range(n)]
        total = rng.randint(2 * n, 12 * n)
        alloc = sqrt_allocation(ps, total, min_each=2, max_each=total)
        assert sum(alloc) == total and min(alloc) >= 2
    assert sqrt_allocation([0.0, 1.0, 0.0], 9, min_each=2) == [3, 3, 3]  # nothing informative: evenly
    assert sqrt_allocation([0.5, 0.5, 0.0, 0.0], 16, min_each=2, max_each=4) == [4, 4, 4, 4]
    assert sqrt_allocation([], 5) == []
    with pytest.raises(ValueError):
        sqrt_allocation([0.5, 0.5], 3, min_each=2)


def test_thompson_scores_prefer_uncertain_or_balanced_prompts():
    rng = random.Random(0)
    counts = [(0.0, 40.0), (20.0, 20.0), (40.0, 0.0)]
    draws = [thompson_scores(counts, rng) for _ in range(300)]
    assert statistics.fmean(d[1] for d in draws) == pytest.approx(0.25, abs=0.01)
    assert statistics.fmean(d[0] for d in draws) < 0.05 and statistics.fmean(d[2] for d in draws) < 0.05
    picks = [vade_select(counts + [(0.0, 0.0)], 2, rng) for _ in range(300)]
    assert sum(1 in p for p in picks) > 250
    assert sum(0 in p for p in picks) < 30  # hopeless prompts are rarely drawn, but not never
    assert vade_select([], 3, rng) == []


def test_dots_targets_the_middle_difficulty():
    rng = random.Random(0)
    assert sorted(dots_select([0.0, 0.5, 1.0, 0.45], 2, rng, temperature=0.02)) == [1, 3]
    assert sorted(dots_select([0.0, 1.0], 5, rng)) == [0, 1]
    with pytest.raises(ValueError):
        dots_select([0.5], 1, rng, temperature=0.0)


def test_replay_buffer_keeps_recent_informative_groups():
    buf = ReplayBuffer(capacity=2, max_age=2, max_uses=1)
    assert not buf.add(0, prompt=0, payload="tie", rewards=[1.0, 1.0])  # no contrast: nothing to replay
    assert not buf.add(0, prompt=0, payload="single", rewards=[1.0])
    assert buf.add(0, 1, "a", [0.0, 1.0]) and buf.add(1, 2, "b", [0.0, 1.0]) and buf.add(2, 3, "c", [1.0, 0.0])
    assert len(buf) == 2  # capacity: "a" fell out
    assert [r.payload for r in buf.take(step=2, n=1, exclude=[3])] == ["b"]
    assert [r.payload for r in buf.take(step=2, n=5)] == ["c"]  # "b" was used up
    assert buf.take(step=3, n=5) == []
    buf.add(3, 1, "d", [0.0, 2.0])
    assert buf.take(step=6, n=1) == []  # too old


# -- D^3S ------------------------------------------------------------------------------------------------------


def test_max_variance_subset_hand_checked_and_exhaustive():
    assert max_variance_subset([0.0, 1.0, 2.0, 3.0, 10.0], 2) == [0, 4]
    assert max_variance_subset([0.0, 1.0, 2.0, 3.0, 10.0], 3) == [0, 1, 4]
    assert max_variance_subset([1.0, 2.0], 5) == [0, 1]
    assert max_variance_subset([1.0, 2.0], 0) == []
    rng = random.Random(3)
    for _ in range(100):
        vals = [rng.gauss(0, 1) for _ in range(rng.randint(2, 7))]
        k = rng.randint(1, len(vals))
        best = max(statistics.pvariance([vals[i] for i in c]) for c in itertools.combinations(range(len(vals)), k))
        got = statistics.pvariance([vals[i] for i in max_variance_subset(vals, k)])
        assert got == pytest.approx(best, abs=1e-12)


def test_d3s_sample_keep():
    keep = d3s_sample_keep([[0.0, 0.0, 0.0], [-1.0, 0.1, 0.2, 1.5], [0.7]], keep_fraction=0.5)
    assert keep == [[True] * 3, [True, False, False, True], [True]]
    # var{-1, 0.1, 1.5} = 1.047 beats var{-1, 0.2, 1.5} = 1.042
    assert d3s_sample_keep([[-1.0, 0.1, 0.2, 1.5]], keep_fraction=0.25, min_keep=3) == [[True, True, False, True]]
    assert d3s_sample_keep([], 0.5) == []
    with pytest.raises(ValueError):
        d3s_sample_keep([[1.0]], 0.0)


def test_d3s_token_mask_keeps_the_largest_adv_times_entropy():
    torch = pytest.importorskip("torch")
    adv = torch.tensor([1.0, -2.0])
    ent = torch.tensor([[1.0, 0.9, 5.0], [0.6, 0.1, 0.2]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    # scores: [[1.0, 0.9, masked], [1.2, 0.2, 0.4]] -> the top 2 of 5 real tokens
    out = d3s_token_mask(adv, ent, mask, keep_fraction=0.4)
    assert out.tolist() == [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]
    assert d3s_token_mask(adv, ent, mask, 1.0) is mask
    assert d3s_token_mask(adv, ent, torch.zeros_like(mask), 0.5).sum() == 0


def test_d3s_schedule_relaxes_to_keep_everything():
    assert d3s_keep_fraction(0, 11) == 0.5 and d3s_keep_fraction(10, 11) == 1.0
    assert d3s_keep_fraction(5, 11) == pytest.approx(0.75)
    assert d3s_keep_fraction(0, 1) == 1.0


# -- APRIL partial rollouts and pruning -----------------------------------------------------------------------


def _group(prompt, born, finished):
    return PartialGroup(prompt, born, [Partial(prompt, born, [1], finished=f) for f in finished])


def test_partial_rollouts_over_provision_and_carry_everything_unused():
    pr = PartialRollouts(over_provision=1.5)
    assert pr.groups_to_start(4) == 6
    groups = [_group(0, 1, [True, True]), _group(1, 0, [True, True]), _group(2, 1, [True, False]),
              _group(3, 1, [False, False]), _group(4, 0, [True, True]), _group(5, 1, [True, True])]
    batch = pr.settle(groups, target=2)
    assert [g.prompt for g in batch] == [1, 4]  # finished, oldest first
    assert sorted(g.prompt for g in pr.carried) == [0, 2, 3, 5]  # nothing discarded
    assert pr.groups_to_start(4) == 2


def test_a_single_finished_rollout_group_is_trained_and_the_rest_resume():
    pr = PartialRollouts(over_provision=2.0)
    groups = [_group(0, 0, [True]), _group(1, 0, [False]), _group(2, 0, [False])]
    batch = pr.settle(groups, target=4)
    assert [g.prompt for g in batch] == [0]
    assert [g.prompt for g in pr.carried] == [1, 2]
    assert pr.settle([], target=3) == [] and pr.carried == []
    with pytest.raises(ValueError):
        PartialRollouts(over_provision=0.5)


def test_prune_doomed_finishes_rollouts_that_can_no_longer_pass():
    rs = [Partial(0, 0, [5, 9]), Partial(0, 0, [5, 1]), Partial(1, 0, []), Partial(1, 0, [9], finished=True)]
    seen = []

    def doomed(prompt, text):
        seen.append((prompt, text))
        return "9" in text.split()

    n = prune_doomed(rs, ["p0", "p1"], doomed, decode=lambda toks: " ".join(map(str, toks)))
    assert n == 1 and (rs[0].finished, rs[0].pruned) == (True, True)
    assert not rs[1].finished and not rs[2].finished and not rs[3].pruned
    assert seen == [("p0", "5 9"), ("p0", "5 1")]  # finished and empty rollouts are not checked


# -- hints ------------------------------------------------------------------------------------------------------


def test_hint_fraction_anneals_with_pass_rate_and_time():
    assert hint_fraction(0.0) == 0.5 and hint_fraction(0.05) == 0.5  # never more than max_share
    assert hint_fraction(0.0, max_share=1.0) == 1.0
    assert hint_fraction(0.3) == 0.0 and hint_fraction(1.0) == 0.0
    assert hint_fraction(0.175, max_share=1.0) == pytest.approx(0.5)
    assert hint_fraction(0.0, step=40, max_steps=100) == 0.5  # held for the first half of training
    assert hint_fraction(0.0, step=75, max_steps=100, max_share=1.0) == pytest.approx(0.5)
    assert hint_fraction(0.0, step=100, max_steps=100) == 0.0


def test_hint_prefix_never_gives_the_whole_answer():
    assert hint_prefix([1, 2, 3, 4], 0.5) == [1, 2]
    assert hint_prefix([1, 2, 3], 0.5) == [1]
    assert hint_prefix([1, 2, 3], 1.0) == [1, 2]
    assert hint_prefix("abcd", 1.0) == "abc"
    assert hint_prefix([1, 2], 0.0) == [] and hint_prefix([], 1.0) == [] and hint_prefix([7], 1.0) == []


def test_static_hints_key_text_and_chat_prompts():
    chat = [{"role": "user", "content": "speed up"}]
    from kopt.rl_finetune.kernel_prompts import prompt_key

    src = StaticHints({"p": "c1 c2", prompt_key(chat): "```python\n..."})
    assert src.best_answer("p") == "c1 c2" and src.best_answer(chat).startswith("```")
    assert src.best_answer("other") is None


def test_store_hints_pick_the_fastest_verified_solution(tmp_path):
    from kopt.agent.core import Candidate, Evaluation
    from kopt.agent.runs.store import Store

    task = tmp_path / "task.py"
    task.write_text("# task\n")
    store = Store.open_run_dir(tmp_path / "run1")
    store.start_run("r1", "optimize", str(task), {})
    fast, faster_but_wrong, slow = Candidate(code="fast"), Candidate(code="wrong"), Candidate(code="slow")
    for c in (fast, faster_but_wrong, slow):
        store.add_candidate("r1", c)
    for cid, res in [(fast.id, {"verdict": "faster", "correct": True, "speedup": 2.0}),
                     (fast.id, {"verdict": "faster", "correct": True, "speedup": 1.6}),
                     (faster_but_wrong.id, {"verdict": "incorrect", "correct": False, "speedup": 9.0}),
                     (slow.id, {"verdict": "faster", "correct": True, "speedup": 1.5})]:
        store.add_evaluation("r1", Evaluation(cid, res))
    store.close()
    assert best_solutions([tmp_path]) == {str(task.resolve()): "fast"}
    hints = StoreHints([tmp_path / "run1"], task_of=lambda p: task if p == "mine" else None)
    assert hints.best_answer("mine") == "fast" and hints.best_answer("other") is None
    fenced = StoreHints([tmp_path], task_of=lambda p: task, template="```python\n{code}\n```")
    assert fenced.best_answer("any") == "```python\nfast\n```"


# -- off-policy correction --------------------------------------------------------------------------------------


def test_truncated_importance_weights():
    torch = pytest.importorskip("torch")
    now = torch.log(torch.tensor([[0.5, 0.2, 0.3]]))
    behaviour = torch.log(torch.tensor([[0.1, 0.4, 0.3]]))
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    w = truncated_importance_weights(now, behaviour, mask, cap=2.0)
    assert w[0].tolist() == pytest.approx([2.0, 0.5, 0.0])  # ratio 5 capped at 2; masked token 0
    seq = truncated_importance_weights(now, behaviour, mask, cap=10.0, per_sequence=True)
    assert seq.tolist() == pytest.approx([2.5])  # 5 x 0.5
    assert not truncated_importance_weights(now.requires_grad_(), behaviour, mask).requires_grad
    with pytest.raises(ValueError):
        truncated_importance_weights(now, behaviour, mask, cap=0)


def test_effective_sample_size_and_step_scale():
    assert effective_sample_size([1.0, 1.0, 1.0, 1.0]) == pytest.approx(4.0)
    assert effective_sample_size([1.0, 0.0, 0.0, 0.0]) == pytest.approx(1.0)
    assert effective_sample_size([2.0, 1.0]) == pytest.approx(9 / 5)
    assert effective_sample_size([]) == 0.0 and effective_sample_size([0.0, -1.0]) == 0.0
    assert ess_step_scale([1.0] * 8) == 1.0
    assert ess_step_scale([1.0] + [0.0] * 99) == 0.1  # floored, never zero
    assert ess_step_scale([2.0, 1.0]) == pytest.approx(0.9)
    assert ess_step_scale([]) == 1.0


# -- flawed positives -------------------------------------------------------------------------------------------


def test_flaws_of_an_evaluation():
    assert flaws_of({"verdict": "faster", "kernel": "cuda", "checks": {}}) == []
    f = flaws_of({"kernel": "torch", "checks": {"warnings": ["uses torch.matmul"]}})
    assert f == ["kernel: torch (no custom kernel of its own)", "warning: uses torch.matmul"]
    assert flaws_of({"kernel": "torch"}, custom_kernel_expected=False) == []


def test_penalise_flawed_only_touches_rewarded_flagged_completions():
    r = penalise_flawed([1.3, 1.3, 0.1, 0.0], [True, False, True, False], penalty=0.5, pass_threshold=0.2)
    assert r == pytest.approx([0.8, 1.3, 0.1, 0.0])
    assert penalise_flawed([1.0], [True], penalty=0.0) == [1.0]
    assert penalise_flawed([], [], 0.5) == []
    with pytest.raises(ValueError):
        penalise_flawed([1.0], [True, False], 0.5)
    with pytest.raises(ValueError):
        penalise_flawed([1.0], [True], -0.1)


# -- the config names ---------------------------------------------------------------------------------------------


def test_recipe_switches_are_validated_by_name():
    from kopt.rl_finetune.config import GRPOConfig

    cfg = GRPOConfig(advantage="remax", reward_norm="sum", prompt_sampling="dots", budget="gdro", downsample="d3s",
                     partial_rollouts=True, hints=True, hint_source={"p": "a"}, off_policy="vcpo",
                     flawed_penalty=0.5)
    assert cfg.to_dict()["prompt_sampling"] == "dots"
    for bad in ({"advantage": "critic"}, {"reward_norm": "max"}, {"prompt_sampling": "random"}, {"budget": "sqrt"},
                {"downsample": "top"}, {"off_policy": "is"}, {"flawed_penalty": -1.0}, {"d3s_keep": 0.0},
                {"over_provision": 0.5}, {"replay_fraction": 1.0}, {"is_cap": 0.0},
                {"reward_norm": "gdpo", "advantage": "median"}):
        with pytest.raises(ValueError):
            GRPOConfig(**bad)
