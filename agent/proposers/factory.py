"""The proposer `--model` names: `rules` (the built-in rule set of the target's kind), an
OpenAI-compatible server, LiteLLM, or a local Hugging Face model."""
from __future__ import annotations

from kopt.agent.errors import UserInputError
from kopt.agent.proposers.backends.hf_local import HFChat
from kopt.agent.proposers.backends.litellm_chat import LiteLLMChat
from kopt.agent.proposers.backends.openai_compat import OpenAIChat
from kopt.agent.proposers.llm_proposer import LLMProposer
from kopt.agent.proposers.rules.kernelbench_rules import RulesProposer
from kopt.agent.proposers.rules.program_rules import ProgramRulesProposer
from kopt.agent.proposers.rules.repo_rules import RepoRulesProposer

# a target kind (`Target.kind`) -> its built-in rule set, what `--model rules` proposes with
RULE_SETS = {"kernelbench": RulesProposer, "program": ProgramRulesProposer, "repo": RepoRulesProposer}


def make_proposer(model: str | None, base_url: str | None = None, kind: str = "kernelbench",
                  max_prompt_tokens: int | None = None, **kw):
    """The proposer for `--model`; `rules` picks the rule set of the target's kind (`Target.kind`,
    `RULE_SETS`). `kw` goes to the chat backend; `max_prompt_tokens` (`--max-prompt-tokens`) to
    the LLM proposer."""
    model = model or "rules"
    llm_kw = {} if max_prompt_tokens is None else {"max_prompt_tokens": max_prompt_tokens}
    if model == "rules":
        if kind not in RULE_SETS:
            raise ValueError(f"no built-in rule set for target kind {kind!r}; add one to RULE_SETS")
        return RULE_SETS[kind]()
    if model.startswith("openai/"):
        return LLMProposer(OpenAIChat(model.removeprefix("openai/"), base_url=base_url, **kw), **llm_kw)
    if model.startswith("litellm/"):
        return LLMProposer(LiteLLMChat(model.removeprefix("litellm/"), base_url=base_url, **kw), **llm_kw)
    if model.startswith("hf:"):
        return LLMProposer(HFChat(model.removeprefix("hf:"), **kw), **llm_kw)
    raise UserInputError(f"unknown --model {model!r}: use rules, openai/<name>, litellm/<provider>/<name> or hf:<path>")


def model_label(model: str | None) -> str:
    model = model or "rules"
    if model == "rules":
        return "rules (built-in skill-rule proposer, no LLM)"
    return model
