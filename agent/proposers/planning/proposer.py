"""`kopt optimize TASK --model rules --plan "a; b"` or `--planner MODEL`: the rules coder driven
by a plan. The reference is expanded once into one candidate per applied step, each the child
of the previous one (the search evaluates and verifies every one); steps that do not apply
are kept as no-op records (`results`) for the run's plan.json and the terminal, never raised.

A planner model gets `prompt.plan_prompt` and nothing else: as a plain string for `hf:` (the
format `kopt train --planner` trains on), as the one user message for chat models.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kopt.agent.core import Candidate
from kopt.agent.errors import EnvironmentMissing, UserInputError
from kopt.agent.proposers.backends.litellm_chat import LiteLLMChat
from kopt.agent.proposers.backends.openai_compat import OpenAIChat
from kopt.agent.proposers.planning.plans import PlanStep, render_plan, run_plan
from kopt.agent.proposers.planning.prompt import plan_from_completion, plan_prompt


def hf_planner(folder: str, max_new_tokens: int = 16) -> Callable[[str], str]:
    """A local causal LM (a `kopt train --planner` output, a LoRA adapter folder, or any model)."""
    path = Path(folder)
    if not path.is_dir():
        raise UserInputError(f"--planner hf:{folder}: no such folder (a model saved by `kopt train --planner`)")
    try:  # heavy optional dependencies ([torch,train])
        import torch
        import transformers
    except ImportError:
        raise EnvironmentMissing("--planner hf: needs transformers and torch: "
                                 "pip install 'kopt[torch,train]'") from None
    if (path / "adapter_config.json").exists():
        from peft import AutoPeftModelForCausalLM  # LoRA adapter: its base model loads with it

        model = AutoPeftModelForCausalLM.from_pretrained(path)
    else:
        model = transformers.AutoModelForCausalLM.from_pretrained(path)
    tok = transformers.AutoTokenizer.from_pretrained(path)
    model.eval()

    def ask(prompt: str) -> str:
        ids = torch.tensor([tok(prompt).input_ids])
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id or tok.eos_token_id,
                                 eos_token_id=tok.eos_token_id)
        return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)

    return ask


def chat_planner(model: str, base_url: str | None = None) -> Callable[[str], str]:
    if model.startswith("openai/"):
        chat = OpenAIChat(model.removeprefix("openai/"), base_url=base_url, temperature=0.0, max_tokens=200)
    elif model.startswith("litellm/"):
        chat = LiteLLMChat(model.removeprefix("litellm/"), base_url=base_url, temperature=0.0, max_tokens=200)
    else:
        raise UserInputError(f"unknown --planner {model!r}: use hf:<folder>, openai/<name> or litellm/<name>")
    return lambda prompt: chat.complete([{"role": "user", "content": prompt}]).text


def make_planner(spec: str, base_url: str | None = None) -> Callable[[str], str]:
    return hf_planner(spec.removeprefix("hf:")) if spec.startswith("hf:") else chat_planner(spec, base_url)


class PlanProposer:
    """`rules` with a plan: fixed (`plan`) or asked of `planner` (prompt -> completion)."""

    name = "rules"

    def __init__(self, plan: list[PlanStep] | None = None, planner: Callable[[str], str] | None = None,
                 planner_name: str = ""):
        if not plan and planner is None:
            raise UserInputError("a plan proposer needs --plan or --planner")
        self.plan, self.planner, self.planner_name = plan, planner, planner_name
        self.tokens, self.cost = 0, 0.0
        self.results: list[dict] = []
        self.completion = ""

    def steps_for(self, task_source: str) -> list[PlanStep]:
        if self.plan:
            return self.plan
        self.completion = self.planner(plan_prompt(task_source))
        return plan_from_completion(self.completion)

    def propose(self, context: dict) -> list[Candidate]:
        parent: Candidate = context["parent"]
        if parent.parent_ids:  # the plan is one chain from the reference; its steps are the children
            return []
        steps = self.steps_for(context["task_source"])
        prompt = plan_prompt(context["task_source"]) if self.planner is not None else ""
        results = run_plan(context["task_source"], steps)
        self.results = [r.record() for r in results]
        if not steps:
            self.results = [{"step": "", "status": "no-op", "reason": f"the planner's answer holds no plan: "
                                                                      f"{self.completion.strip()[:200]!r}"}]
        meta = {"model": "rules", "planner": self.planner_name or "user", "plan": render_plan(steps),
                "tokens_in": 0, "tokens_out": 0, "cost": 0.0}
        out, prev = [], parent.id
        for i, r in enumerate(results, 1):
            if r.status != "applied":
                continue
            c = Candidate(code=r.code, parent_ids=[prev], plan_step=f"plan step {i} {r.step.render()}: {r.reason}",
                          skills=r.skills, proposer=dict(meta), prompt=prompt, completion=self.completion)
            out.append(c)
            prev = c.id
        return out
