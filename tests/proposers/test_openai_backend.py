"""The openai/ backend against a real HTTP server on 127.0.0.1 (no fakes in kopt)."""
from __future__ import annotations

import pytest

pytest.importorskip("openai")

from kopt.agent.core import Candidate  # noqa: E402
from kopt.agent.errors import UserInputError  # noqa: E402
from kopt.agent.proposers.backends.openai_compat import OpenAIChat  # noqa: E402
from kopt.agent.proposers.llm_proposer import LLMProposer, ProposerUnavailable  # noqa: E402
from tests.support.chat_server import ChatServer  # noqa: E402

PARENT = "import torch\nclass ModelNew(torch.nn.Module):\n    def forward(self, x):\n        return torch.relu(x)\n"
GOOD = ("```python\nimport torch\nclass ModelNew(torch.nn.Module):\n    def forward(self, x):\n"
        "        return x.clamp_min(0)\n```")
EDIT = ("<<<<<<< SEARCH\n        return torch.relu(x)\n=======\n        return x.clamp(min=0)\n>>>>>>> REPLACE")
BAD_EDIT = "<<<<<<< SEARCH\n        return torch.sigmoid(x)\n=======\n        return x\n>>>>>>> REPLACE"
PLAN = "1. replace relu with clamp\n2. fuse"


def context():
    return {"task_source": "class Model: pass", "parent": Candidate(code=PARENT), "parent_results": [],
            "lessons": ""}


def proposer(url, **kw):
    return LLMProposer(OpenAIChat("tiny", base_url=url, api_key="k", timeout=kw.pop("timeout", 10),
                                  max_retries=kw.pop("max_retries", 2)), samples=1, **kw)


def test_good_answer_becomes_candidate_with_usage():
    with ChatServer(lambda body, n: (200, PLAN if n == 1 else GOOD, 0)) as srv:
        p = proposer(srv.url)
        [c] = p.propose(context())
    assert "clamp_min" in c.code and c.plan_step == "replace relu with clamp"
    assert c.proposer["plan"] == ["replace relu with clamp", "fuse"]
    assert c.proposer["tokens_in"] > 0 and c.proposer["tokens_out"] > 0
    assert p.ledger.calls == 2 and p.ledger.tokens_in == c.proposer["tokens_in"]
    # the ledger's per-call record: the prompt as counted here and as the server counted it
    assert [e["tokens_in"] for e in p.ledger.log] == [len(" ".join(m["content"] for m in r["messages"]).split())
                                                      for r in srv.requests]
    assert all(e["prompt_tokens"] > 0 for e in p.ledger.log) and c.proposer["prompt_tokens"]
    assert srv.requests[1]["messages"][-1]["content"].count("replace relu with clamp") == 1


def test_search_replace_edit_is_applied():
    with ChatServer(lambda body, n: (200, PLAN if n == 1 else EDIT, 0)) as srv:
        [c] = proposer(srv.url).propose(context())
    assert "x.clamp(min=0)" in c.code and c.proposer["edit"] == "search/replace"


def test_edit_that_does_not_apply_goes_back_to_the_model():
    answers = {1: PLAN, 2: BAD_EDIT, 3: EDIT}
    with ChatServer(lambda body, n: (200, answers[n], 0)) as srv:
        [c] = proposer(srv.url).propose(context())
    retry_prompt = srv.requests[2]["messages"][-1]["content"]
    assert "does not match the current code" in retry_prompt
    assert c.proposer["edit_errors"] and "x.clamp(min=0)" in c.code


def test_malformed_code_is_retried_then_abandoned():
    with ChatServer(lambda body, n: (200, PLAN if n == 1 else "no code here, sorry", 0)) as srv:
        assert proposer(srv.url, edit_retries=1).propose(context()) == []
    assert len(srv.requests) == 3
    assert "no code found" in srv.requests[2]["messages"][-1]["content"]


def test_429_then_success_is_retried():
    answers = {1: (429, "slow down", 0), 2: (200, PLAN, 0), 3: (200, GOOD, 0)}
    with ChatServer(lambda body, n: answers[n]) as srv:
        [c] = proposer(srv.url).propose(context())
    assert len(srv.requests) == 3 and "clamp_min" in c.code


def test_500s_until_give_up():
    with ChatServer(lambda body, n: (500, "boom", 0)) as srv:
        with pytest.raises(ProposerUnavailable, match="gave up"):
            proposer(srv.url, max_retries=1).propose(context())
    assert len(srv.requests) == 2


def test_slow_answer_past_timeout():
    with ChatServer(lambda body, n: (200, PLAN, 3)) as srv:
        with pytest.raises(ProposerUnavailable, match="Timeout"):
            proposer(srv.url, timeout=0.5, max_retries=0).propose(context())


def test_401_and_404_are_one_line_user_errors():
    with ChatServer(lambda body, n: (401, "bad key", 0)) as srv:
        with pytest.raises(UserInputError, match="401"):
            proposer(srv.url).propose(context())
    with ChatServer(lambda body, n: (404, "no such model", 0)) as srv:
        with pytest.raises(UserInputError, match="not found"):
            proposer(srv.url).propose(context())


def test_whitespace_drift_is_applied_with_a_note_in_the_edit_log():
    drift = ("<<<<<<< SEARCH\ndef forward(self, x):\n    return torch.relu(x)\n=======\ndef forward(self, x):\n"
             "    return x.clamp(min=0)\n>>>>>>> REPLACE")
    with ChatServer(lambda body, n: (200, PLAN if n == 1 else drift, 0)) as srv:
        [c] = proposer(srv.url).propose(context())
    assert "        return x.clamp(min=0)" in c.code and c.proposer["edit"] == "search/replace"
    assert "ignoring whitespace" in c.proposer["edit_notes"][0] and not c.proposer["edit_errors"]
