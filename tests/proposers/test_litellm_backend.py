"""The litellm/ backend against a real HTTP server on 127.0.0.1 (provider `openai` with api_base)."""
from __future__ import annotations

import importlib.util
import sys

import pytest

if importlib.util.find_spec("litellm") is None:  # not importorskip: kopt's import sets litellm's offline price table
    pytest.skip("litellm is not installed", allow_module_level=True)

from kopt.agent.errors import EnvironmentMissing, UserInputError  # noqa: E402
from kopt.agent.proposers.backends.litellm_chat import LiteLLMChat, import_litellm  # noqa: E402
from kopt.agent.proposers.factory import make_proposer  # noqa: E402
from kopt.agent.proposers.llm_proposer import LLMProposer, ProposerUnavailable  # noqa: E402
from tests.proposers.test_openai_backend import GOOD, PLAN, context  # noqa: E402
from tests.support.chat_server import ChatServer  # noqa: E402

MESSAGES = [{"role": "user", "content": "make it fast"}]


def chat(url, model="openai/tiny", **kw):
    kw.setdefault("num_retries", 2)
    return LiteLLMChat(model, api_base=url, api_key="k", timeout=kw.pop("timeout", 10), backoff=0.01, **kw)


def test_good_answer_with_usage_and_litellm_price():
    with ChatServer(lambda body, n: (200, PLAN if n == 1 else GOOD, 0)) as srv:
        p = LLMProposer(chat(srv.url, "openai/gpt-4o-mini"), samples=1)
        [c] = p.propose(context())
    assert "clamp_min" in c.code and c.plan_step == "replace relu with clamp"
    assert srv.requests[0]["model"] == "gpt-4o-mini" and len(srv.requests) == 2
    assert p.name == "litellm/openai/gpt-4o-mini"
    price = import_litellm().model_cost["gpt-4o-mini"]
    want = p.ledger.tokens_in * price["input_cost_per_token"] + p.ledger.tokens_out * price["output_cost_per_token"]
    assert p.ledger.tokens_in > 0 and p.ledger.tokens_out > 0
    assert p.ledger.cost == pytest.approx(want) and want > 0


def test_model_missing_from_price_table_costs_zero():
    with ChatServer(lambda body, n: (200, "hello there", 0)) as srv:
        r = chat(srv.url).complete(MESSAGES)
    assert r.text == "hello there" and r.tokens_out == 2 and r.cost == 0.0


def test_429_then_success_is_retried():
    answers = {1: (429, "slow down", 0), 2: (200, "done", 0)}
    with ChatServer(lambda body, n: answers[n]) as srv:
        r = chat(srv.url).complete(MESSAGES)
    assert r.text == "done" and len(srv.requests) == 2


def test_500s_until_give_up():
    with ChatServer(lambda body, n: (500, "boom", 0)) as srv:
        with pytest.raises(ProposerUnavailable, match="gave up after 2 retries: InternalServerError"):
            chat(srv.url).complete(MESSAGES)
    assert len(srv.requests) == 3


def test_slow_answer_past_timeout():
    with ChatServer(lambda body, n: (200, "late", 2)) as srv:
        with pytest.raises(ProposerUnavailable, match="Timeout"):
            chat(srv.url, timeout=0.3, num_retries=0).complete(MESSAGES)


def test_401_and_404_are_one_line_user_errors_without_retries():
    with ChatServer(lambda body, n: (401, "bad key", 0)) as srv:
        with pytest.raises(UserInputError, match="401"):
            chat(srv.url).complete(MESSAGES)
    assert len(srv.requests) == 1
    with ChatServer(lambda body, n: (404, "no such model", 0)) as srv:
        with pytest.raises(UserInputError, match="not found"):
            chat(srv.url).complete(MESSAGES)
    assert len(srv.requests) == 1


def test_unknown_provider_is_a_user_error_before_any_call():
    with pytest.raises(UserInputError, match="litellm/<provider>/<model>"):
        make_proposer("litellm/tiny")
    assert make_proposer("litellm/openai/tiny").name == "litellm/openai/tiny"


def test_missing_litellm_is_environment_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "litellm", None)
    with pytest.raises(EnvironmentMissing, match=r"kopt\[llm\]"):
        LiteLLMChat("openai/tiny")
