"""Any OpenAI-compatible chat-completions server (vLLM, SGLang, Ollama, hosted APIs)."""
from __future__ import annotations

import os

from kopt.agent.errors import EnvironmentMissing, UserInputError
from kopt.agent.proposers.backends.pricing import price_of
from kopt.agent.proposers.llm_proposer import ChatResult, ProposerUnavailable


class OpenAIChat:
    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None,
                 temperature: float = 0.7, max_tokens: int = 4096, timeout: float = 120.0, max_retries: int = 4):
        try:
            import openai
        except ImportError:
            raise EnvironmentMissing("the openai package is not installed: pip install 'kopt[llm]'") from None
        self.openai = openai
        self.name = f"openai/{model}"
        self.model, self.temperature, self.max_tokens = model, temperature, max_tokens
        self.client = openai.OpenAI(base_url=base_url or os.environ.get("OPENAI_BASE_URL"),
                                    api_key=api_key or os.environ.get("OPENAI_API_KEY") or "not-needed",
                                    timeout=timeout, max_retries=max_retries)

    def complete(self, messages: list[dict]) -> ChatResult:
        o = self.openai
        try:
            resp = self.client.chat.completions.create(model=self.model, messages=messages,
                                                       temperature=self.temperature, max_tokens=self.max_tokens)
        except o.AuthenticationError:
            raise UserInputError(f"the server refused the API key for {self.model} (401): set OPENAI_API_KEY") from None
        except o.NotFoundError:
            raise UserInputError(f"model {self.model!r} not found on the server (404): check --model and "
                                 f"--base-url") from None
        except o.BadRequestError as e:
            raise ProposerUnavailable(f"{self.name}: the server rejected the request (400): {e}"[:300]) from None
        except (o.APITimeoutError, o.APIConnectionError, o.RateLimitError, o.InternalServerError,
                o.APIStatusError) as e:
            raise ProposerUnavailable(f"{self.name}: gave up after retries: {type(e).__name__}: {e}"[:300]) from None
        text = resp.choices[0].message.content or "" if resp.choices else ""
        usage = resp.usage
        tin, tout = (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)
        return ChatResult(text, tin, tout, price_of(self.model, tin, tout))
