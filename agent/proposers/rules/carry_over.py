"""What a rule's solution must keep from the code it read, and a check that it reads no
name it never defines.

A rule writes a whole file from the task's imports, its own helpers and the rewritten class;
the other module-level statements of the code it read are not in it. Two kinds matter:
- an earlier step's helpers (its C++ library, runtime functions, ctypes types such as
  `_P, _I, _F = ...`), when a plan applies a rule to an earlier rule's solution;
- the task's own module-level values its class reads (upstream level2/83's forward reads the
  global `min_value`).
`carry_over` adds the missing ones right before `class ModelNew`; a private name both files
define differently is a collision (two steps' `_LIB`), answered with a reason instead of a
file that calls the wrong library. `isolate` renames an earlier solution's private names so
the next step's own helpers cannot collide with them (a plan does this between its steps).
`undefined_names` is the last guard: a file that would raise NameError is not a candidate.
"""
from __future__ import annotations

import ast
import builtins

_MODEL_NAMES = ("Model", "ModelNew")


def _stored(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def bound_names(stmt: ast.stmt) -> set[str]:
    """The module-level names one top-level statement binds."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    if isinstance(stmt, ast.Assign):
        return set().union(*(_stored(t) for t in stmt.targets))
    if isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
        return _stored(stmt.target)
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in stmt.names}
    return set()


def mutated_names(stmt: ast.stmt) -> set[str]:
    """The module-level names a top-level assignment to an attribute or an item changes
    (`_LIB.f.argtypes = ...`, `_ARGTYPES["x"] = ...`): it binds nothing, but the name it
    changes is wrong without it."""
    targets = stmt.targets if isinstance(stmt, ast.Assign) else \
        [stmt.target] if isinstance(stmt, (ast.AugAssign, ast.AnnAssign)) else []
    roots = set()
    for t in targets:
        if not isinstance(t, (ast.Attribute, ast.Subscript)):
            continue
        while isinstance(t, (ast.Attribute, ast.Subscript)):
            t = t.value
        if isinstance(t, ast.Name):
            roots.add(t.id)
    return roots


def _loaded(node: ast.AST) -> set[str]:
    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return names | {g for n in ast.walk(node) if isinstance(n, (ast.Global, ast.Nonlocal)) for g in n.names}


def carry_over(source: str, code: str) -> tuple[str | None, str]:
    """(`code` with what it needs from `source` added, "") or (None, why it cannot be)."""
    body = ast.parse(source).body
    defs = [(s, bound_names(s)) for s in body
            if not isinstance(s, (ast.Import, ast.ImportFrom)) and bound_names(s)
            and not bound_names(s) & set(_MODEL_NAMES)]
    # an earlier step's `_LIB.f.argtypes = ...` goes with its `_LIB` (without it ctypes could not
    # pass a float, nor read a double back: every two-step plan after such a rule failed)
    changes = [s for s in body if mutated_names(s)]
    tree = ast.parse(code)
    now = {name: ast.unparse(s) for s in tree.body for name in bound_names(s)}
    for stmt, names in defs:
        clash = sorted(n for n in names if n.startswith("_") and n in now and now[n] != ast.unparse(stmt))
        if clash:
            return None, (f"this code already defines {', '.join(clash)} (an earlier step's C++ library or "
                          f"helpers) and this rule writes another; apply it through a plan, which keeps each "
                          f"step's names apart, or first")
    # an earlier step's private helpers, all of them; the task's values only as far as they are read
    keep = [i for i, (_, names) in enumerate(defs) if any(n.startswith("_") for n in names) and not names & now.keys()]
    wanted = _loaded(tree) | set().union(*(_loaded(defs[i][0]) for i in keep))
    grew = True
    while grew:
        grew = False
        kept = set().union(*(defs[i][1] for i in keep))
        for stmt in changes:
            if mutated_names(stmt) <= kept:
                wanted |= _loaded(stmt)
        for i, (stmt, names) in enumerate(defs):
            if i not in keep and names & wanted and not names & now.keys():
                keep.append(i)
                wanted |= _loaded(stmt)
                grew = True
    if not keep:
        return code, ""
    kept = set().union(*(defs[i][1] for i in keep))
    chosen = [defs[i][0] for i in keep] + [s for s in changes if mutated_names(s) <= kept]
    order = {id(s): k for k, s in enumerate(body)}
    block = "\n\n".join(ast.unparse(s) for s in sorted(chosen, key=lambda s: order[id(s)])) + "\n"
    head, sep, tail = code.partition("\nclass ModelNew")
    if not sep:
        return None, "the rule's solution has no class ModelNew"
    return head + "\n" + block + "\n" + sep + tail, ""


def isolate(code: str, tag: str) -> str:
    """`code` with every private module-level name `_x` renamed `_{tag}_x` (references, `global`
    statements and definitions alike; a function's own parameter of that name is left alone)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code
    private = {n for s in tree.body for n in bound_names(s)
               if n.startswith("_") and not n.startswith("__") and not isinstance(s, (ast.Import, ast.ImportFrom))}
    private |= {g for n in ast.walk(tree) if isinstance(n, ast.Global) for g in n.names
                if g.startswith("_") and not g.startswith("__")}  # a module global a function creates
    if not private:
        return code
    new = {n: f"_{tag}{n}" for n in private}

    class Rename(ast.NodeTransformer):
        def __init__(self):
            self.shadowed: list[set[str]] = [set()]

        def _function(self, node):
            a = node.args
            params = {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs + [a.vararg, a.kwarg] if x}
            self.shadowed.append(self.shadowed[-1] | params)
            self.generic_visit(node)
            self.shadowed.pop()
            return node

        def visit_FunctionDef(self, node):
            if node in tree.body and node.name in new:
                node.name = new[node.name]
            return self._function(node)

        visit_AsyncFunctionDef = visit_FunctionDef
        visit_Lambda = _function

        def visit_ClassDef(self, node):
            if node in tree.body and node.name in new:
                node.name = new[node.name]
            self.generic_visit(node)
            return node

        def visit_Name(self, node):
            if node.id in new and node.id not in self.shadowed[-1]:
                node.id = new[node.id]
            return node

        def visit_Global(self, node):
            node.names = [new.get(n, n) for n in node.names]
            return node

    return ast.unparse(Rename().visit(tree)) + "\n"


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


def _scope_binds(nodes: list[ast.AST]) -> set[str]:
    """The names these nodes bind in their own scope (not inside a nested function or class,
    whose own name they do bind)."""
    bound: set[str] = set()
    todo = list(nodes)
    while todo:
        n = todo.pop()
        if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
            bound.add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(n.name)
            continue
        elif isinstance(n, ast.Lambda):
            continue
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            bound |= bound_names(n)
        elif isinstance(n, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and n.name:
            bound.add(n.name)
        elif isinstance(n, ast.MatchMapping) and n.rest:
            bound.add(n.rest)
        todo.extend(ast.iter_child_nodes(n))
    return bound


def _unbound_reads(node: ast.AST, visible: set[str], out: set[str]) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            a = child.args
            params = {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs + [a.vararg, a.kwarg] if x}
            body = child.body if isinstance(child.body, list) else [child.body]
            _unbound_reads(child, visible | params | _scope_binds(body), out)
        elif isinstance(child, ast.ClassDef):  # its body's names are not visible in its methods
            inner = visible | _scope_binds(child.body)
            for stmt in child.body:
                _unbound_reads(ast.Module([stmt], []), visible if isinstance(stmt, _SCOPES) else inner, out)
        elif isinstance(child, ast.Name) and isinstance(child.ctx, ast.Load) and child.id not in visible:
            out.add(child.id)
        else:
            _unbound_reads(child, visible, out)


def undefined_names(code: str) -> list[str]:
    """Names the file reads that nothing visible from where they are read binds (a local,
    a parameter of that function or an enclosing one, a module-level name, a builtin):
    each would raise NameError when that line runs. A parameter of `__init__` is not
    visible in `forward` (upstream level2/83's `min_value` is read there as a global)."""
    tree = ast.parse(code)
    module = set(dir(builtins)) | {"__file__", "__name__", "__builtins__"} | _scope_binds(tree.body)
    module |= {g for n in ast.walk(tree) if isinstance(n, ast.Global) for g in n.names}
    out: set[str] = set()
    _unbound_reads(tree, module, out)
    return sorted(out)
