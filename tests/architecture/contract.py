"""An import contract for a package tree, read from the source (AST), never by importing it:
which modules exist, what each imports (at module level and inside functions), and the rules
kopt's layout keeps -- layers point down, no module-level import cycles, kopt-internal imports
at module top, small modules, one module per basename. `tests/architecture/test_import_contract.py`
applies it to kopt and to small synthetic trees (so a broken rule is seen to fail)."""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    in_function: bool


@dataclass
class Contract:
    roots: dict[str, Path]  # dotted package -> its folder
    layers: list[tuple[str, ...]]  # highest first; each a tuple of dotted prefixes (the longest match wins)
    internal: str = "kopt"  # imports under this name are the tree's own
    exclude: tuple[str, ...] = ()  # dotted prefixes that are not product modules (scripts, data)
    max_lines: int = 450
    long_modules: dict[str, str] = field(default_factory=dict)  # dotted -> who owns shrinking it
    lazy_importers: dict[str, str] = field(default_factory=dict)  # dotted -> who owns hoisting its imports
    _imports: dict = field(default_factory=dict, repr=False)  # read once per tree

    def modules(self) -> dict[str, Path]:
        out = {}
        for dotted, folder in self.roots.items():
            for path in sorted(folder.rglob("*.py")):
                parts = list(path.relative_to(folder).with_suffix("").parts)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                name = ".".join([dotted, *parts])
                if not any(name == e or name.startswith(e + ".") for e in self.exclude):
                    out[name] = path
        return out

    def imports(self) -> list[Import]:
        key = (self.internal, tuple(self.modules()))
        if key not in self._imports:
            self._imports[key] = self._read_imports()
        return self._imports[key]

    def _read_imports(self) -> list[Import]:
        mods = self.modules()
        out = []
        for name, path in mods.items():
            tree = ast.parse(path.read_text(), filename=str(path))
            package = name if path.name == "__init__.py" else name.rpartition(".")[0]
            nested = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                      for n in ast.walk(f) if n is not f}
            for node in ast.walk(tree):
                for target in _targets(node, package, mods):
                    if target == self.internal or target.startswith(self.internal + "."):
                        out.append(Import(name, target, node.lineno, id(node) in nested))
        return out

    def layer(self, module: str) -> int | None:
        """0 for the highest layer; None for a module no layer names."""
        best = None
        for i, prefixes in enumerate(self.layers):
            for p in prefixes:
                if (module == p or module.startswith(p + ".")) and (best is None or len(p) > len(best[1])):
                    best = (i, p)
        return best[0] if best else None

    # -- the rules ---------------------------------------------------------------------------
    def upward(self) -> list[str]:
        out = []
        for imp in self.imports():
            a, b = self.layer(imp.importer), self.layer(imp.imported)
            if a is not None and b is not None and b < a:
                out.append(f"{imp.importer}:{imp.line} imports {imp.imported}, a higher layer")
        return out

    def unlayered(self) -> list[str]:
        return sorted(m for m in self.modules() if self.layer(m) is None and not m.endswith(tuple(self.roots)))

    def function_imports(self) -> list[str]:
        return [f"{i.importer}:{i.line} imports {i.imported} inside a function" for i in self.imports()
                if i.in_function and i.importer not in self.lazy_importers]

    def cycles(self) -> list[list[str]]:
        """Strongly connected components (more than one module) of the module-level import graph;
        importing a.b.c runs a/__init__ and a/b/__init__ first, so those count as imported too."""
        mods = self.modules()
        graph: dict[str, set[str]] = {m: set() for m in mods}
        for imp in self.imports():
            if imp.in_function:
                continue
            parts = imp.imported.split(".")
            for i in range(1, len(parts) + 1):
                dst = ".".join(parts[:i])
                if dst in mods and dst != imp.importer and not imp.importer.startswith(dst + "."):
                    graph[imp.importer].add(dst)
        return [sorted(c) for c in _strongly_connected(graph) if len(c) > 1]

    def too_long(self) -> list[str]:
        out = []
        for name, path in self.modules().items():
            n = len(path.read_text().splitlines())
            if n > self.max_lines and name not in self.long_modules:
                out.append(f"{name}: {n} lines (at most {self.max_lines}): split it along its jobs")
        return out

    def stale_exceptions(self) -> list[str]:
        """Listed exceptions that no longer apply: the lists can only shrink."""
        mods, lazy = self.modules(), {i.importer for i in self.imports() if i.in_function}
        out = [f"{m}: no longer over {self.max_lines} lines; drop it from the long-module list"
               for m in self.long_modules
               if m not in mods or len(mods[m].read_text().splitlines()) <= self.max_lines]
        out += [f"{m}: imports nothing inside functions any more; drop it from the lazy list"
                for m in self.lazy_importers if m not in lazy]
        return out

    def same_basename(self) -> list[str]:
        seen: dict[str, list[str]] = {}
        for name, path in self.modules().items():
            if path.name != "__init__.py":
                seen.setdefault(path.name, []).append(name)
        return [f"{base}: {', '.join(sorted(names))}" for base, names in sorted(seen.items()) if len(names) > 1]


def _targets(node: ast.AST, package: str, mods: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = package.split(".")
        base = base[:len(base) - node.level + 1]
        module = ".".join(base + ([node.module] if node.module else []))
    else:
        module = node.module or ""
    # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod
    subs = [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in mods]
    return subs if len(subs) == len(node.names) else [module, *subs]


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (a deep import chain must not hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                out.append(comp)
    return out
