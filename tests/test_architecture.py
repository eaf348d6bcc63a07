"""The package's shape, as docs/architecture.md draws it: floors of modules, each importing only from its own floor
or below (imports inside functions included), no import cycles, nothing importing the command line but __main__,
no module over MAX_MODULE_LINES, no function over MAX_FUNCTION_LINES (but the network's constructor), every link of
the README and docs/ pointing at a file or heading that exists. Read from the sources with `ast`, never imported."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Lowest first. A module imports only from its floor or below; a package (alexlab.data) is one room with its modules.
FLOORS = {
    "ground": ["errors", "files", "metrics", "config_groups", "record", "signals", "masking", "cpu"],
    "parts": ["model", "data", "stats", "info", "optuna_storage", "distributed", "slurm", "wandb_runs"],
    "run": ["module", "callbacks", "checkpoints", "loggers", "terminal", "csv_log"],
    "tasks": ["job", "train", "sweep", "twins", "report", "bench", "dashboard"],
    "top": ["overrides", "messages", "cli", "__main__", "hydra_plugins"],
}
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 500, 80
LONG_ON_PURPOSE = {("alexlab/model/alexnet.py", "__init__")}  # the whole network, one readable block


def sources() -> list[Path]:
    return sorted([*(ROOT / "alexlab").rglob("*.py"), *(ROOT / "hydra_plugins").rglob("*.py")])


def room(module: str) -> str:
    """The room a dotted module name is in: alexlab.data.folders -> data, hydra_plugins.x.y -> hydra_plugins."""
    parts = module.split(".")
    return parts[0] if parts[0] == "hydra_plugins" else parts[1] if len(parts) > 1 else "alexlab"


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The alexlab and hydra_plugins modules `path` imports, at its top or inside any function."""
    found = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, or as many packages up as it has dots
                parents = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parents + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name.split(".")[0] in ("alexlab", "hydra_plugins")}
    return found


def room_graph() -> dict[str, set[str]]:
    """room -> the rooms it imports (itself left out)."""
    graph: dict[str, set[str]] = {}
    for path in sources():
        mine = room(module_name(path))
        graph.setdefault(mine, set())
        graph[mine] |= {room(name) for name in imports(path)} - {mine, "alexlab"}
    return graph


def floor_of(name: str) -> int:
    for level, (_, rooms) in enumerate(FLOORS.items()):
        if name in rooms:
            return level
    raise AssertionError(f"{name} is on no floor: add it to FLOORS and docs/architecture.md")


def test_every_room_is_on_a_floor_and_imports_only_from_its_floor_or_below():
    graph = room_graph()
    upward = [f"{a} ({list(FLOORS)[floor_of(a)]}) imports {b} ({list(FLOORS)[floor_of(b)]})"
              for a, targets in graph.items() for b in targets if floor_of(b) > floor_of(a)]  # fmt: skip
    assert not upward, "imports that go up a floor:\n" + "\n".join(sorted(upward))


def test_no_module_imports_the_command_line_but_main():
    importers = [module_name(p) for p in sources() if any(room(name) == "cli" for name in imports(p))]
    assert importers == ["alexlab.__main__"], importers


def test_there_is_no_import_cycle_between_modules():
    """Module by module (a package's __init__ is a module of its own), imports inside functions included."""
    names = {module_name(p): p for p in sources()}
    graph = {}
    for name, path in names.items():
        targets = set()
        for imported in imports(path):  # `from alexlab.data import X`: X may be a module of the package
            targets |= {imported if imported in names else imported.rpartition(".")[0]}
        graph[name] = {t for t in targets if t in names and t != name}
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*stack[stack.index(target) :], target]))
            elif target not in state:
                visit(target, [*stack, target])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_module_and_no_function_is_too_long():
    long_modules, long_functions = [], []
    for path in sources():
        text = path.read_text()
        relative = str(path.relative_to(ROOT))
        if len(text.splitlines()) > MAX_MODULE_LINES:
            long_modules.append(f"{relative}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES and (relative, node.name) not in LONG_ON_PURPOSE:
                    long_functions.append(f"{relative}:{node.lineno} {node.name}: {length} lines")
    assert not long_modules and not long_functions, "\n".join(long_modules + long_functions)


def test_no_class_is_defined_inside_a_function():
    nested = []
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                nested += [f"{path.relative_to(ROOT)}:{n.lineno} {n.name} in {node.name}" for n in ast.walk(node)
                           if isinstance(n, ast.ClassDef)]  # fmt: skip
    assert not nested, "\n".join(nested)


def anchor(heading: str) -> str:
    """A markdown heading's anchor as GitHub makes it: lower case, punctuation out, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def headings(path: Path) -> set[str]:
    return {anchor(line.lstrip("#")) for line in path.read_text().splitlines() if line.startswith("#")}


MARKDOWN = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@pytest.mark.parametrize("page", MARKDOWN, ids=[str(p.relative_to(ROOT)) for p in MARKDOWN])
def test_every_link_of_the_readme_and_docs_points_at_something_that_exists(page):
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"[a-z]+://|mailto:", target):
            continue
        file, _, fragment = target.partition("#")
        destination = (page.parent / file).resolve() if file else page
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif fragment and destination.suffix == ".md" and fragment not in headings(destination):
            broken.append(f"{target}: no such heading")
    assert not broken, f"{page.relative_to(ROOT)}:\n" + "\n".join(broken)
