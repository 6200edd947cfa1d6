"""The import graph inside nncore is acyclic and never reaches the package root.

Every module's source is parsed (``ast``) and every import counts, also those
inside functions: a cycle hidden behind a function-level import still makes
two modules depend on each other. Calls go one way (kernels <- backends <-
network / optim / training / apps), and ``import nncore`` from inside the
package would make each module depend on all of them.
"""

import ast
import pathlib

import nncore

ROOT = "nncore"


def _modules():
    """``{module name: source path}`` of the package's Python modules."""
    base = pathlib.Path(nncore.__file__).parent
    mods = {}
    for path in base.rglob("*.py"):
        parts = list(path.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join([ROOT] + parts)] = path
    # compiled modules (built .so/.pyd, or the .pyx source before a build):
    # nodes without edges
    for pattern in ("*.so", "*.pyd", "*.pyx"):
        for path in base.rglob(pattern):
            mods.setdefault(".".join([ROOT] + list(path.relative_to(base).parts[:-1])
                                     + [path.name.split(".")[0]]), None)
    return mods


def _targets(node, module, is_package, known):
    """Modules of the package that one import statement loads."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name == ROOT or a.name.startswith(ROOT + ".")]
    if node.level:
        package = module if is_package else module.rsplit(".", 1)[0]
        if node.level > 1:
            package = package.rsplit(".", node.level - 1)[0]
        base = f"{package}.{node.module}" if node.module else package
    elif node.module and (node.module == ROOT or node.module.startswith(ROOT + ".")):
        base = node.module
    else:
        return []
    # "from pkg import name" loads pkg.name when it is a module, else pkg itself
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]


def _graph():
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        edges = set()
        if path is not None:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            is_package = path.name == "__init__.py"
            for node in ast.walk(tree):       # every import, also inside functions
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    edges.update(_targets(node, name, is_package, mods))
        edges.discard(name)                   # a module naming itself is not a cycle
        graph[name] = edges
    return graph


def _find_cycle(graph):
    """One cycle as a list of module names, or None."""
    state = {}
    stack = []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_sees_function_level_imports():
    graph = _graph()
    assert "nncore.network" in graph and "nncore.backend._numpy" in graph
    assert "nncore.training" in graph["nncore.network"]     # Network.fit imports it inside
    assert "nncore.backend" in graph["nncore.network"]


def test_nothing_inside_imports_the_package_root():
    offenders = sorted(name for name, edges in _graph().items()
                       if name != ROOT and ROOT in edges)
    assert not offenders, f"these modules import the nncore root: {offenders}"


def test_import_graph_is_acyclic():
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
