"""The hf: backend on a tiny random Llama and a tokenizer built here (no weights downloaded)."""
from __future__ import annotations

import sys

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from kopt.agent.core import Candidate  # noqa: E402
from kopt.agent.errors import EnvironmentMissing, UserInputError  # noqa: E402
from kopt.agent.proposers.backends.hf_local import HFChat  # noqa: E402
from kopt.agent.proposers.factory import make_proposer  # noqa: E402
from kopt.agent.proposers.llm_proposer import LLMProposer, plan_messages  # noqa: E402

TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} </s> {% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")
PLAN = "1. replace relu with clamp\n2. fuse"
GOOD = ("```python\nimport torch\nclass ModelNew(torch.nn.Module):\n    def forward(self, x):\n"
        "        return x.clamp_min(0)\n```")
MESSAGES = [{"role": "system", "content": "you optimize code"}, {"role": "user", "content": "make relu fast"}]


def context():
    return {"task_source": "class Model: pass", "parent": Candidate(code="import torch\n"), "parent_results": [],
            "lessons": ""}


def tiny_model(folder, chat_template=TEMPLATE):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    special = ["<unk>", "<pad>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]
    corpus = [PLAN, GOOD, "make relu fast you optimize code", *(m["content"] for m in plan_messages(context()))]
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=special))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                                bos_token="<s>", eos_token="</s>")
    if chat_template:
        fast.chat_template = chat_template
    cfg = transformers.LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024,
                                   pad_token_id=fast.pad_token_id, bos_token_id=fast.bos_token_id,
                                   eos_token_id=fast.eos_token_id)
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(cfg).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("tiny-llama"))


def test_complete_returns_text_and_token_counts(model_dir):
    chat = HFChat(str(model_dir), max_new_tokens=8, seed=1)
    assert chat.device in ("cpu", "cuda") and chat.name == f"hf:{model_dir}"
    assert chat.render(MESSAGES).endswith("<|assistant|>")
    r = chat.complete(MESSAGES)
    assert isinstance(r.text, str) and r.cost == 0.0
    assert r.tokens_in == len(chat.tokenizer(chat.render(MESSAGES), add_special_tokens=False)["input_ids"])
    assert 1 <= r.tokens_out <= 8 and r.tokens_out == len(r.completion_ids)
    again = HFChat(str(model_dir), max_new_tokens=8, seed=1).complete(MESSAGES)
    assert again.completion_ids == r.completion_ids  # same seed, same samples


def test_generate_batch_gives_n_samples_per_prompt(model_dir):
    chat = HFChat(str(model_dir), max_new_tokens=6, temperature=1.0, seed=0)
    short = [{"role": "user", "content": "fuse"}]
    groups = chat.generate_batch([MESSAGES, short], n=3)
    assert [len(g) for g in groups] == [3, 3]
    assert groups[0][0].prompt_ids != groups[1][0].prompt_ids
    assert groups[1][0].tokens_in < groups[0][0].tokens_in  # padding is not counted
    for g in groups:
        for s in g:
            assert isinstance(s.text, str) and 1 <= s.tokens_out <= 6
            assert s.completion_ids[-1] in chat.eos_ids or s.tokens_out == 6
    # the batch agrees with one prompt alone under greedy decoding (left padding is masked)
    greedy = HFChat(str(model_dir), max_new_tokens=6, temperature=0)
    [[a], [b]] = greedy.generate_batch([MESSAGES, short])
    assert a.completion_ids == greedy.complete(MESSAGES).completion_ids
    assert b.completion_ids == greedy.complete(short).completion_ids


def test_plain_rendering_without_chat_template(tmp_path):
    chat = HFChat(str(tiny_model(tmp_path, chat_template=None)), max_new_tokens=4)
    assert chat.render(MESSAGES) == "system: you optimize code\n\nuser: make relu fast\n\nassistant:"
    assert chat.complete(MESSAGES).tokens_out >= 1


def test_lora_adapter_folder_loads_on_its_base(model_dir, tmp_path):
    peft = pytest.importorskip("peft")
    base = transformers.AutoModelForCausalLM.from_pretrained(model_dir)
    lora = peft.get_peft_model(base, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                     init_lora_weights=False))
    lora.save_pretrained(tmp_path)
    assert not (tmp_path / "config.json").exists()
    chat = HFChat(str(tmp_path), max_new_tokens=4, seed=0)
    assert isinstance(chat.model, peft.PeftModel)
    plain = HFChat(str(model_dir))
    ids = plain.tokenizer(plain.render(MESSAGES), return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        assert not torch.allclose(chat.model(ids).logits, plain.model(ids).logits)
    assert chat.complete(MESSAGES).tokens_out >= 1


def test_llm_proposer_runs_end_to_end(model_dir):
    p = make_proposer(f"hf:{model_dir}", max_new_tokens=12, seed=0)
    assert isinstance(p, LLMProposer)
    p.samples, p.edit_retries = 1, 1
    cands = p.propose(context())
    assert isinstance(cands, list) and p.ledger.calls >= 2 and p.ledger.cost == 0.0
    assert p.ledger.tokens_in > 0 and p.ledger.tokens_out > 0


def test_bad_paths_are_user_errors(tmp_path):
    with pytest.raises(UserInputError, match="no such folder"):
        HFChat(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match="not a transformers model folder"):
        HFChat(str(tmp_path / "empty"))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{}")
    with pytest.raises(UserInputError, match="could not load"):
        HFChat(str(tmp_path / "broken"))


def test_missing_transformers_is_environment_missing(monkeypatch, model_dir):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(EnvironmentMissing, match="pip install"):
        HFChat(str(model_dir))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_gpu_is_environment_missing(model_dir):
    with pytest.raises(EnvironmentMissing, match="no CUDA"):
        HFChat(str(model_dir), device="cuda")


def test_llm_proposer_samples_in_one_batched_generation(model_dir):
    """samples=3 on a local model: the three first answers come from one generate() call."""
    p = make_proposer(f"hf:{model_dir}", max_new_tokens=8, seed=0)
    p.samples, p.edit_retries = 3, 0
    before = p.chat.calls
    p.propose(context())
    # one call for the plan, one batched call for the three first answers, no retries
    assert p.chat.calls - before == 2
    assert p.ledger.calls == 4  # the plan plus three answers, each accounted
