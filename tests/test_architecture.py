"""The package's import graph has no cycles (docs/design.md: modules import their own floor or lower),
and the model code does not import the weight plumbing above it."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "spgg_jax"


def _graph() -> dict[str, set[str]]:
    mods = {}
    for p in PKG.rglob("*.py"):
        name = ".".join(p.relative_to(PKG.parent).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = p

    def resolve(m: str) -> str:
        while m and m not in mods:
            m = m.rsplit(".", 1)[0] if "." in m else ""
        return m

    def absolute(m: str, p: Path, node: ast.ImportFrom) -> str:
        """The module a (possibly relative: ``from .x import y``) ImportFrom in ``m`` names."""
        if not node.level:
            return node.module or ""
        base = m if p.name == "__init__.py" else m.rsplit(".", 1)[0]
        for _ in range(node.level - 1):
            base = base.rsplit(".", 1)[0]
        return f"{base}.{node.module}" if node.module else base

    g = {m: set() for m in mods}
    for m, p in mods.items():  # every import, module-level or inside a function
        for node in ast.walk(ast.parse(p.read_text())):
            module = absolute(m, p, node) if isinstance(node, ast.ImportFrom) else ""
            if isinstance(node, ast.ImportFrom) and module.startswith("spgg_jax"):
                for a in node.names:
                    t = resolve(f"{module}.{a.name}") or resolve(module)
                    if t and t != m and not m.startswith(t + "."):  # a package's own __init__ is not a cycle
                        g[m].add(t)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    t = resolve(a.name) if a.name.startswith("spgg_jax") else ""
                    if t and t != m and not m.startswith(t + "."):
                        g[m].add(t)
    return g


def _cycles(g: dict[str, set[str]]) -> list[list[str]]:
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in g:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_the_model_code_does_not_import_the_weight_plumbing():
    """``spgg_jax.models.weights`` sits on top of the model code: it imports ``models.config`` and
    ``models.tokenizer``, never the other way (only the ``spgg_jax.models`` package re-exports its
    HF loader)."""
    weights = "spgg_jax.models.weights"
    inside = lambda m: m == weights or m.startswith(weights + ".")  # noqa: E731
    back = sorted((m, t) for m, ts in _graph().items() if m.startswith("spgg_jax.models.") and not inside(m)
                  for t in ts if inside(t))
    assert back == []


def test_the_cycle_check_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_relative_imports_are_followed():
    g = _graph()
    assert "spgg_jax.tasks.sandbox.layers" in g["spgg_jax.tasks.sandbox.runner"]
    assert "spgg_jax.tasks.sandbox.api" in g["spgg_jax.tasks.sandbox"]
