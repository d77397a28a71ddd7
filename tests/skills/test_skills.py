"""The skill library: curated cards validate and cover the issue's topics, retrieval finds
the right family of card for representative targets, recorded success moves a card up
(and with it the order of the `rules` templates), bad cards fail with file/field/fix, and
`kopt skills list/show`."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kopt.agent.cli.app import app
from kopt.skills import prompt_sections as prompt
from kopt.skills.library import CURATED_DIR, CardError, Library, load_card
from kopt.skills.schema import Evidence

ROOT = Path(__file__).resolve().parents[2]
LEVEL2 = ROOT / "benchmarks" / "examples" / "level2_cpu"

ROW_SUM = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return torch.sum(x, dim=self.dim, keepdim=True)


def get_inputs():
    return [torch.randn(256, 8192)]


def get_init_inputs():
    return [1]
'''

CIN_LOOP = '''#include <iostream>
#include <vector>
using namespace std;

int main() {
    int n;
    cin >> n;
    vector<long long> a(n);
    for (int i = 0; i < n; ++i) cin >> a[i];
    long long best = a[0];
    for (int i = 1; i < n; ++i) best = max(best, a[i]);
    cout << best << "\\n";
}
'''


@pytest.fixture()
def lib(tmp_path):
    return Library.load(user_dir=tmp_path / "user", similarity="bm25")


@pytest.fixture()
def fresh_prompt_library(tmp_path, monkeypatch):
    monkeypatch.setenv("KOPT_SKILLS_DIR", str(tmp_path / "user"))
    monkeypatch.setenv("KOPT_SKILLS_SIMILARITY", "bm25")
    prompt._library.cache_clear()
    yield tmp_path / "user"
    prompt._library.cache_clear()


def text_of(card) -> str:
    return " ".join([card.id, card.title, *card.tags]).lower()


def test_curated_cards_cover_the_issue(lib):
    cards = [c for c in lib.cards.values() if c.origin == "curated"]
    assert len(cards) >= 40
    by = Counter((c.type, c.domain) for c in cards)
    assert by[("meta", "any")] >= 4 and by[("operator", "cuda")] >= 8 and by[("operator", "triton")] >= 3
    assert by[("operator", "cpp")] >= 10 and by[("operator", "python")] >= 4
    topics = {"cuda": ["coalesc", "shared-memory", "shuffle", "float4", "launch", "fusion", "atomic", "stream"],
              "triton": ["autotune", "epilogue", "mask"],
              "cpp": ["loop-order", "simd", "openmp", "allocation", "fast-io", "reserve", "algorithm", "flags"],
              "python": ["fus", "contiguous", "in-place", "algebra"],
              "any": ["profile", "hottest", "stress", "one change"]}
    for domain, words in topics.items():
        texts = [text_of(c) for c in cards if c.domain == domain]
        for w in words:
            assert any(w in t for t in texts), f"no {domain} card about {w!r}"
    for c in cards:  # every card says when, how (before/after) and what can go wrong
        assert (c.when.code or c.when.keywords) and c.how.before.strip() and c.how.after.strip() and c.risks


@pytest.mark.parametrize("target,family,domains", [
    ((LEVEL2 / "gemm_gelu_tanh_hardtanh.py").read_text(), "fusion", None),
    (ROW_SUM, "reduction", None),
    (CIN_LOOP, "io", {"cpp"}),
], ids=["gemm-elementwise", "row-reduction", "cin-loop"])
def test_retrieval_picks_the_right_family(lib, target, family, domains):
    top = lib.retrieve(target, k=3)
    assert any(family in c.tags for c in top), [(c.id, c.tags) for c in top]
    if domains:
        assert {c.domain for c in lib.retrieve(target, k=10)} <= domains | {"any"}


def test_target_objects_narrow_the_domains(lib):
    from types import SimpleNamespace

    src = (LEVEL2 / "gemm_gelu_tanh_hardtanh.py").read_text()
    on_cpu = SimpleNamespace(source=src, kind="kernelbench", eval_cfg=SimpleNamespace(device="cpu"))
    assert {c.domain for c in lib.retrieve(on_cpu, k=len(lib.cards))} == {"python", "cpp", "any"}
    program = SimpleNamespace(source=CIN_LOOP, kind="program", language="cpp")
    assert {c.domain for c in lib.retrieve(program, k=len(lib.cards))} == {"cpp", "any"}


def test_cin_target_ranks_an_input_card_first_among_io(lib):
    io = [m.card for m in lib.rank(CIN_LOOP) if "io" in m.card.tags]
    assert "input" in io[0].title.lower() or "input" in io[0].tags


def test_recorded_success_raises_a_card(lib):
    src = (LEVEL2 / "gemm_layernorm_gelu_scale.py").read_text()
    before = {m.card.id: m.score for m in lib.rank(src)}
    for _ in range(3):
        lib.add_evidence("cpu-fuse-norm-epilogue", Evidence(source="test", speedup=3.0, method="eval"))
    after = {m.card.id: m.score for m in lib.rank(src)}
    assert after["cpu-fuse-norm-epilogue"] > before["cpu-fuse-norm-epilogue"]
    assert after["cpu-fuse-elementwise-chain"] == before["cpu-fuse-elementwise-chain"]
    # the evidence went to the user overlay, and a fresh load sees it; the curated file is untouched
    reloaded = Library.load(user_dir=lib.user_dir, similarity="bm25")
    assert len(reloaded.get("cpu-fuse-norm-epilogue").measured()) == 3
    assert not load_card(CURATED_DIR / "cpu-fuse-norm-epilogue.yaml").evidence


def test_aliases_resolve_to_the_card(lib):
    # proposers may record a skill under another name (agent/proposers/rules/program_rules.py does)
    assert lib.get("cpp-no-endl").id == "cpp-buffered-output" and lib.resolve("no-such-skill") is None
    lib.add_evidence("cpp-reserve", Evidence(source="test", speedup=1.3, method="cpu-time"))
    assert (lib.user_dir / "evidence" / "cpp-vector-reserve.yaml").exists()


def test_rules_templates_follow_retrieval(fresh_prompt_library):
    from kopt.agent.proposers.rules.kernelbench_rules import RulesProposer

    src = (LEVEL2 / "gemm_layernorm_gelu_scale.py").read_text()
    first = lambda: RulesProposer().ordered_plans(src)[0][2][0]
    declared = RulesProposer(retrieval=False).ordered_plans(src)[0][2][0]
    scores = {m.card.id: m.score for m in prompt.library().rank(src)}
    expected = max(["cpu-fuse-norm-epilogue", "cpu-fuse-elementwise-chain"], key=scores.get)
    assert first() == expected
    # measured wins recorded for the other template move it to the front
    other = ({"cpu-fuse-norm-epilogue", "cpu-fuse-elementwise-chain"} - {expected}).pop()
    lib = prompt.library()
    for _ in range(4):
        lib.add_evidence(other, Evidence(source="test", speedup=8.0, method="eval"))
    prompt._library.cache_clear()
    assert first() == other
    assert declared == "cpu-fuse-norm-epilogue"


def test_planner_prompt_lists_retrieved_skills(fresh_prompt_library):
    from kopt.agent.core import Candidate
    from kopt.agent.proposers.llm_proposer import plan_messages
    from kopt.skills.prompt_sections import skills_of_step

    src = (LEVEL2 / "gemm_gelu_tanh_hardtanh.py").read_text()
    ctx = {"task_source": src, "parent": Candidate(code=src, plan_step="reference (baseline)",
                                                   proposer={"model": "reference"})}
    text = plan_messages(ctx)[-1]["content"]
    assert ctx["skill_ids"] and all(f"[{i}]" in text for i in ctx["skill_ids"])
    fusion = next(i for i in ctx["skill_ids"] if "fusion" in prompt.library().get(i).tags)
    assert skills_of_step(f"[{fusion}] fuse gelu, scale, tanh and hardtanh [not-a-card]") == [fusion]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


GOOD = (CURATED_DIR / "cpp-vector-reserve.yaml").read_text()


def test_invalid_card_names_file_field_and_fix(tmp_path):
    bad = write(tmp_path / "mine.yaml", GOOD.replace("id: cpp-vector-reserve", "id: mine").replace(
        "domain: cpp", "domain: fortran"))
    with pytest.raises(CardError) as e:
        load_card(bad)
    msg = str(e.value)
    assert str(bad) in msg and "`domain`" in msg and "fix: use one of: cuda, triton, cpp, python, any" in msg
    unquoted = write(tmp_path / "q.yaml", GOOD.replace("id: cpp-vector-reserve", "id: q").replace(
        "  - Reserving far", "  - note: reserving far"))
    with pytest.raises(CardError, match=r"q\.yaml: field `risks\.0`.*fix: quote the text"):
        load_card(unquoted)
    regex = write(tmp_path / "r.yaml", GOOD.replace("id: cpp-vector-reserve", "id: r").replace(
        "'unordered_map<'", "'unordered_map<('"))
    with pytest.raises(CardError, match=r"r\.yaml: field `when\.code`.*does not compile"):
        load_card(regex)


runner = CliRunner()


def test_cli_list_json_counts_and_filters(tmp_path):
    res = runner.invoke(app, ["skills", "list", "--json", "--skills", str(tmp_path)])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert len(rows) == len(list(CURATED_DIR.glob("*.yaml")))
    assert {"id", "type", "domain", "title", "tags", "evidence"} <= set(rows[0])
    meta = json.loads(runner.invoke(app, ["skills", "list", "--json", "--type", "meta", "--skills",
                                          str(tmp_path)]).stdout)
    cpp = json.loads(runner.invoke(app, ["skills", "list", "--json", "--domain", "cpp", "--skills",
                                         str(tmp_path)]).stdout)
    assert meta and all(r["type"] == "meta" for r in meta)
    assert cpp and all(r["domain"] == "cpp" for r in cpp)
    assert len(cpp) == Counter(r["domain"] for r in rows)["cpp"]


def test_cli_show_and_errors(tmp_path):
    res = runner.invoke(app, ["skills", "show", "cpp-fast-io", "--skills", str(tmp_path)])
    assert res.exit_code == 0 and "title: Fast input parsing" in res.stdout and "before:" in res.stdout
    res = runner.invoke(app, ["skills", "show", "no-such-card", "--skills", str(tmp_path)])
    assert res.exit_code == 2 and res.stderr.startswith("kopt: no skill card") and res.stderr.count("\n") == 1
    write(tmp_path / "broken.yaml", GOOD.replace("id: cpp-vector-reserve", "id: broken").replace("type: operator",
                                                                                               "type: trick"))
    res = runner.invoke(app, ["skills", "list", "--skills", str(tmp_path)])
    assert res.exit_code == 2 and res.stderr.count("\n") == 1
    assert "broken.yaml" in res.stderr and "`type`" in res.stderr and "operator, meta" in res.stderr
