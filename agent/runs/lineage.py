"""The candidates as a graph: parent -> child, the edge labelled with the plan step."""
from __future__ import annotations

from kopt.agent.core import Candidate


def build_graph(cands: dict[str, Candidate]):
    import networkx as nx

    g = nx.DiGraph()
    for c in cands.values():
        g.add_node(c.id, step=c.plan_step, model=c.proposer.get("model", ""))
    for c in cands.values():
        for p in c.parent_ids:
            if p in cands:
                g.add_edge(p, c.id, step=c.plan_step, skills=",".join(c.skills))
    return g


def layers(g) -> dict[str, tuple[int, int]]:
    """(depth, position-in-layer) for drawing: roots at depth 0."""
    import networkx as nx

    depth: dict[str, int] = {}
    for node in nx.topological_sort(g):
        preds = list(g.predecessors(node))
        depth[node] = 1 + max(depth[p] for p in preds) if preds else 0
    pos, count = {}, {}
    for node in sorted(depth, key=lambda n: (depth[n], n)):
        d = depth[node]
        pos[node] = (d, count.get(d, 0))
        count[d] = count.get(d, 0) + 1
    return pos
