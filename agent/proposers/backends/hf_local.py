"""A local transformers causal LM (`hf:<path-or-id>`): the model `kopt train` fine-tunes, a folder
holding a peft LoRA adapter on top of its base model included.

`generate_batch` samples n completions for each of several prompts in one `generate` call and
keeps the exact prompt and completion token ids, which GRPO needs to score log-probabilities
without a lossy decode/re-encode round trip.
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from kopt.agent.errors import EnvironmentMissing, UserInputError
from kopt.agent.proposers.llm_proposer import ChatResult, ProposerUnavailable


@dataclass
class HFSample(ChatResult):
    prompt_ids: list[int] = field(default_factory=list)
    completion_ids: list[int] = field(default_factory=list)


def _imports():
    try:
        import torch
        import transformers
    except ImportError:
        raise EnvironmentMissing("hf: models need torch and transformers: pip install 'kopt[torch,train]'") from None
    return torch, transformers


class HFChat:
    def __init__(self, path: str, device: str = "auto", dtype: str = "auto", temperature: float = 0.7,
                 top_p: float = 0.95, max_new_tokens: int = 1024, seed: int | None = None,
                 base_model: str | None = None, trust_remote_code: bool = False):
        self.torch, self.transformers = _imports()
        self.name = f"hf:{path}"
        self.temperature, self.top_p, self.max_new_tokens, self.seed = temperature, top_p, max_new_tokens, seed
        self.device = ("cuda" if self.torch.cuda.is_available() else "cpu") if device == "auto" else device
        if self.device.startswith("cuda") and not self.torch.cuda.is_available():
            raise EnvironmentMissing(f"{self.name}: device {self.device} asked for but torch sees no CUDA GPU")
        self.calls = 0
        self.model, self.tokenizer = self._load(path, dtype, base_model, trust_remote_code)
        self.model.to(self.device).eval()
        tok = self.tokenizer
        tok.padding_side = "left"  # decoder-only: prompts end where generation starts
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token or tok.unk_token
            if tok.pad_token_id is None:
                raise UserInputError(f"{self.name}: the tokenizer has no pad, eos or unk token to pad a batch with")
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) | {tok.eos_token_id}
        self.eos_ids.discard(None)

    def _load(self, path: str, dtype: str, base_model: str | None, trust_remote_code: bool):
        folder = Path(path).expanduser()
        adapter = None
        if folder.exists():
            if (folder / "adapter_config.json").is_file():
                adapter = folder
                base_model = base_model or json.loads((folder / "adapter_config.json").read_text()).get(
                    "base_model_name_or_path")
                if not base_model:
                    raise UserInputError(f"{folder}/adapter_config.json names no base model: pass base_model=")
            elif not (folder / "config.json").is_file():
                raise UserInputError(f"{folder} is not a transformers model folder (no config.json or "
                                     f"adapter_config.json): point hf: at a saved model or LoRA adapter")
        elif path.startswith(("/", ".", "~")) or path.count("/") > 1:
            raise UserInputError(f"hf:{path}: no such folder")
        model_src = base_model if adapter else str(folder if folder.exists() else path)
        tok_src = str(adapter) if adapter and (adapter / "tokenizer_config.json").is_file() else model_src
        tf = self.transformers
        if dtype == "auto":
            dtype = "auto" if self.device.startswith("cuda") else "float32"
        version = tuple(int(x) for x in tf.__version__.split(".")[:2] if x.isdigit())
        dtype_kw = {"dtype" if version >= (4, 56) else "torch_dtype": dtype}
        try:
            model = tf.AutoModelForCausalLM.from_pretrained(model_src, trust_remote_code=trust_remote_code,
                                                            **dtype_kw)
            tokenizer = tf.AutoTokenizer.from_pretrained(tok_src, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as e:
            raise UserInputError(f"hf:{path}: could not load a causal LM from {model_src}: "
                                 f"{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}"[:300]
                                 ) from None
        if adapter:
            try:
                import peft
            except ImportError:
                raise EnvironmentMissing(f"{adapter} is a LoRA adapter and peft is not installed: "
                                         f"pip install 'kopt[train]'") from None
            model = peft.PeftModel.from_pretrained(model, str(adapter))
        return model, tokenizer

    def render(self, messages: list[dict]) -> str:
        tok = self.tokenizer
        if not getattr(tok, "chat_template", None):
            return "".join(f"{m['role']}: {m['content']}\n\n" for m in messages) + "assistant:"
        try:
            return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except Exception:  # noqa: BLE001 - jinja's TemplateError: some templates refuse a system turn
            if not messages or messages[0]["role"] != "system" or len(messages) < 2:
                raise
            first = {"role": messages[1]["role"], "content": f"{messages[0]['content']}\n\n{messages[1]['content']}"}
            return tok.apply_chat_template([first, *messages[2:]], tokenize=False, add_generation_prompt=True)

    def count_tokens(self, messages: list[dict]) -> int:
        """The prompt's exact length in this model's tokens (the proposer's budget uses it)."""
        return len(self.tokenizer(self.render(messages), add_special_tokens=False)["input_ids"])

    def complete(self, messages: list[dict]) -> ChatResult:
        return self.generate_batch([messages], n=1)[0][0]

    def generate_batch(self, conversations: list[list[dict]], n: int = 1) -> list[list[HFSample]]:
        """n sampled completions per conversation, grouped per conversation in input order."""
        torch, tok = self.torch, self.tokenizer
        texts = [self.render(m) for m in conversations]
        enc = tok(texts, return_tensors="pt", padding=True,
                  add_special_tokens=not getattr(tok, "chat_template", None)).to(self.device)
        kw = {"max_new_tokens": self.max_new_tokens, "num_return_sequences": n, "pad_token_id": tok.pad_token_id}
        if self.temperature > 0:
            kw.update(do_sample=True, temperature=self.temperature, top_p=self.top_p)
        else:
            kw.update(do_sample=False)
        rng = contextlib.nullcontext()
        if self.seed is not None:
            cuda = self.device.startswith("cuda")
            rng = torch.random.fork_rng(devices=[torch.device(self.device).index or 0] if cuda else [])
        try:
            with rng, torch.inference_mode():
                if self.seed is not None:
                    torch.manual_seed(self.seed + self.calls)
                out = self.model.generate(**enc, **kw)
        except torch.cuda.OutOfMemoryError:
            raise ProposerUnavailable(f"{self.name}: out of GPU memory generating {len(texts)}x{n} completions of "
                                      f"up to {self.max_new_tokens} tokens: lower max_new_tokens or n") from None
        self.calls += 1
        width = enc["input_ids"].shape[1]
        groups = []
        for i in range(len(texts)):
            prompt_ids = enc["input_ids"][i][enc["attention_mask"][i].bool()].tolist()
            group = []
            for j in range(n):
                ids = self._until_eos(out[i * n + j, width:].tolist())
                group.append(HFSample(tok.decode(ids, skip_special_tokens=True), len(prompt_ids), len(ids), 0.0,
                                      prompt_ids, ids))
            groups.append(group)
        return groups

    def _until_eos(self, ids: list[int]) -> list[int]:
        """The completion up to and including its first end-of-sequence token; after it comes padding."""
        for k, t in enumerate(ids):
            if t in self.eos_ids:
                return ids[: k + 1]
        return ids
