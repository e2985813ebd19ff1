"""The package's layout: every dfnb module imports only dfnb modules of lower-numbered notebooks (or of its own
notebook), so there is no import cycle, and the ground floor (notebooks 00-09) imports nothing above it. Imports
are read from the source (module level and inside functions alike); the checkpoint registry names model classes by
import path on purpose, and resolves them only when a checkpoint of that type is loaded."""
import ast, re
from pathlib import Path
import dfnb

PKG = Path(dfnb.__file__).parent

def _notebook_number(path: Path):
    m = re.search(r"File to edit: \.\./nbs/(\d+)_", path.read_text())
    return int(m.group(1)) if m else None

def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1: out.add(node.module.split(".")[0] if node.module else "")
            elif node.module and node.module.startswith("dfnb."): out.add(node.module.split(".")[1])
            elif node.module == "dfnb": out.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[1] for a in node.names if a.name.startswith("dfnb."))
    return {m for m in out if m and (PKG / f"{m}.py").exists()}

MODULES = {p.stem: p for p in PKG.glob("*.py") if not p.stem.startswith("_")}
NUM = {m: _notebook_number(p) for m, p in MODULES.items()}
GRAPH = {m: _imports(p) - {m} for m, p in MODULES.items()}

def test_every_module_comes_from_a_numbered_notebook():
    assert all(n is not None for n in NUM.values()), NUM

def test_imports_point_down():
    bad = [(m, i, NUM[m], NUM[i]) for m, deps in GRAPH.items() for i in deps if NUM[i] > NUM[m]]
    assert not bad, f"modules importing from higher-numbered notebooks: {bad}"

def test_ground_floor_imports_only_ground_floor():
    bad = [(m, i) for m, deps in GRAPH.items() if NUM[m] < 10 for i in deps if NUM[i] >= 10]
    assert not bad, bad

def test_no_cycles():
    seen, stack = set(), []
    def visit(m):
        if m in stack: raise AssertionError(f"import cycle: {' -> '.join(stack[stack.index(m):] + [m])}")
        if m in seen: return
        stack.append(m)
        for d in GRAPH[m]: visit(d)
        stack.pop(); seen.add(m)
    for m in GRAPH: visit(m)

def test_package_docstring_lists_every_module():
    doc = dfnb.__doc__ or ""
    missing = [m for m in MODULES if f"`dfnb.{m}`" not in doc]
    assert not missing, f"the package docstring does not list {missing}"
