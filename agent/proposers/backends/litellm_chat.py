"""Any provider litellm speaks (`litellm/<provider>/<model>`: anthropic, bedrock, vertex_ai, groq,
hosted_vllm, openai-compatible servers...), priced from litellm's own cost table.

The retry loop is ours rather than litellm's `num_retries`: that one hands a failed call to
tenacity, which litellm does not depend on (without it every failure, a 401 included, comes back
as "tenacity import failed"), and with it retries 401s and 404s as well.
"""
from __future__ import annotations

import os
import random
import time

from kopt.agent.errors import EnvironmentMissing, UserInputError
from kopt.agent.proposers.llm_proposer import ChatResult, ProposerUnavailable

RETRYABLE = ("RateLimitError", "InternalServerError", "ServiceUnavailableError", "BadGatewayError", "Timeout",
             "APIConnectionError")


def import_litellm():
    """litellm fetches its price table from GitHub at import (and, offline, keeps retrying in a
    background thread that warns on stderr) unless told to use the copy it ships, which is
    reproducible and needs no network."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError:
        raise EnvironmentMissing("the litellm package is not installed: pip install 'kopt[llm]'") from None
    litellm.suppress_debug_info = True
    return litellm


class LiteLLMChat:
    def __init__(self, model: str, api_base: str | None = None, api_key: str | None = None,
                 base_url: str | None = None, temperature: float = 0.7, max_tokens: int = 4096,
                 timeout: float = 120.0, num_retries: int = 4, backoff: float = 1.0, backoff_max: float = 30.0):
        self.litellm = import_litellm()
        self.name = f"litellm/{model}"
        self.model, self.api_base, self.api_key = model, api_base or base_url, api_key
        self.temperature, self.max_tokens, self.timeout = temperature, max_tokens, timeout
        self.num_retries, self.backoff, self.backoff_max = num_retries, backoff, backoff_max
        try:
            self.litellm.get_llm_provider(model, api_base=self.api_base)
        except Exception:  # noqa: BLE001 - litellm raises several types for an unknown provider
            raise UserInputError(f"litellm does not know the provider in --model {self.name}: use "
                                 f"litellm/<provider>/<model>, e.g. litellm/anthropic/claude-sonnet-4-5") from None

    def complete(self, messages: list[dict]) -> ChatResult:
        resp = self._call(messages)
        text = (resp.choices[0].message.content or "") if resp.choices else ""
        usage = getattr(resp, "usage", None)
        tin, tout = (usage.prompt_tokens or 0, usage.completion_tokens or 0) if usage else (0, 0)
        return ChatResult(text, tin, tout, self._cost(resp))

    def _call(self, messages: list[dict]):
        import openai  # a litellm dependency

        lt = self.litellm
        retryable = tuple(getattr(lt, n) for n in RETRYABLE if hasattr(lt, n))
        for attempt in range(self.num_retries + 1):
            try:
                return lt.completion(model=self.model, messages=messages, temperature=self.temperature,
                                     max_tokens=self.max_tokens, timeout=self.timeout, api_base=self.api_base,
                                     api_key=self.api_key, num_retries=0, max_retries=0, drop_params=True)
            except retryable as e:
                if attempt == self.num_retries:
                    raise self._gave_up(e, f" after {attempt} retries") from None
                time.sleep(self._delay(attempt, e))
            except (lt.AuthenticationError, lt.PermissionDeniedError):
                raise UserInputError(f"{self.name}: the provider refused the credentials (401/403): set its API "
                                     f"key (e.g. OPENAI_API_KEY, ANTHROPIC_API_KEY)") from None
            except lt.NotFoundError:
                raise UserInputError(f"model {self.model!r} not found by the provider (404): check --model and "
                                     f"--base-url") from None
            except (lt.ContextWindowExceededError, lt.ContentPolicyViolationError) as e:
                raise ProposerUnavailable(f"{self.name}: {type(e).__name__}: {e}"[:300]) from None
            except lt.BadRequestError as e:
                raise UserInputError(f"{self.name}: the provider rejected the request (400): "
                                     f"{_first_line(e)}"[:300]) from None
            except openai.APIError as e:  # the base of all of litellm's exceptions
                raise self._gave_up(e, "") from None
        raise AssertionError("unreachable")

    def _gave_up(self, e: Exception, after: str) -> ProposerUnavailable:
        return ProposerUnavailable(f"{self.name}: gave up{after}: {type(e).__name__}: {_first_line(e)}"[:300])

    def _delay(self, attempt: int, e: Exception) -> float:
        """Exponential backoff with jitter; a server's Retry-After wins when it says more."""
        delay = min(self.backoff_max, self.backoff * 2 ** attempt) * (0.5 + random.random() / 2)
        try:
            delay = max(delay, min(self.backoff_max, float(e.response.headers["retry-after"])))
        except (AttributeError, KeyError, TypeError, ValueError):
            pass
        return delay

    def _cost(self, resp) -> float:
        try:
            return float(self.litellm.completion_cost(completion_response=resp) or 0.0)
        except Exception:  # noqa: BLE001 - a model missing from the price table costs "unknown", i.e. 0
            return float((getattr(resp, "_hidden_params", None) or {}).get("response_cost") or 0.0)


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [""])[0]
