"""kopt train's additions: log-probabilities of only the chosen tokens (same values and
gradients as a full log_softmax), and --report-to tensorboard writing event files offline."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def test_selective_log_softmax_matches_the_full_one():
    from kopt.rl_finetune.rollouts import selective_log_softmax

    torch.manual_seed(0)
    logits = (torch.randn(3, 7, 101) * 4).requires_grad_()
    targets = torch.randint(0, 101, (3, 7))
    full = torch.log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    mine = selective_log_softmax(logits, targets)
    assert mine.shape == (3, 7) and torch.allclose(mine, full, atol=1e-5)
    g_full, = torch.autograd.grad(full.sum(), logits)
    g_mine, = torch.autograd.grad(mine.sum(), logits)
    assert torch.allclose(g_mine, g_full, atol=1e-5)


def test_selective_log_softmax_keeps_no_second_vocabulary_tensor():
    """What autograd saves for backward: the full log_softmax keeps a [B, T, V] output besides the
    logits; the selective one keeps nothing that large besides one row at a time."""
    from kopt.rl_finetune.rollouts import selective_log_softmax

    logits = torch.randn(4, 6, 1000, requires_grad=True)
    targets = torch.randint(0, 1000, (4, 6))
    sizes = []

    def pack(t):
        sizes.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        torch.log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1))
    full_saved = sum(s for s in sizes if s >= 6 * 1000)
    sizes.clear()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        selective_log_softmax(logits, targets)
    big = [s for s in sizes if s >= 4 * 6 * 1000]
    assert full_saved >= 4 * 6 * 1000 and not big, (full_saved, big)


def test_report_to_tensorboard_writes_event_files(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed: pip install tensorboard")
    from kopt.rl_finetune.tracking import make_tracker

    tracker = make_tracker("tensorboard", tmp_path, {"grpo": {"lr": 1e-5, "advantage": "group"}})
    for step in (1, 2):
        tracker({"step": step, "reward": 0.1 * step, "verdicts": "x"})
    tracker.close()
    events = list((tmp_path / "tensorboard").rglob("events.out.tfevents.*"))
    assert events and sum(e.stat().st_size for e in events) > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert [e.value for e in acc.Scalars("reward")] == pytest.approx([0.1, 0.2])
    assert make_tracker("none", tmp_path, {}) is None


def test_bf16_loads_the_weights_in_bfloat16(tmp_path):
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    from kopt.agent.cli.train_cmd import _load_bf16

    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel({"<unk>": 0, "<pad>": 1, "a": 2}, unk_token="<unk>"))
    transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                         eos_token="<pad>").save_pretrained(tmp_path)
    cfg = transformers.LlamaConfig(vocab_size=3, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                   num_attention_heads=2, num_key_value_heads=2)
    transformers.LlamaForCausalLM(cfg).save_pretrained(tmp_path)
    model, tokenizer = _load_bf16(str(tmp_path))
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert tokenizer.pad_token == "<pad>"
