"""The package's shape: stage folders whose imports point down, no circles, short functions.

These rules keep the pipeline readable in the tree (see the README's "How the code is laid
out" and DESIGN.md). They read the source with :mod:`ast`, so they see an import wherever
it is written: at the top of a module, inside a function, or under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "huggingtweets"

# From the bottom up: a module may import its own folder or a lower one, never a higher one.
# Modules of one folder may import each other as long as no circle forms (checked below).
LAYERS = [  # the README's "How the code is laid out" lists them in this order
    ["core"],
    ["collect"],
    ["model"],
    ["prepare"],
    ["generate"],
    ["train"],
    ["evaluate"],
    ["card"],
    ["publish"],
    ["pipeline"],  # the flows over the stages
    ["update"],
    ["sweep"],
    ["demo"],
    ["serve"],
    ["cli", "__main__", "__init__"],  # the command and the package's face
]
LAYER_OF = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}
WEB_AND_CLI_LIBRARIES = {"click", "fastapi", "gradio", "uvicorn", "starlette", "rich"}
# The library below the front-ends never imports these (rich draws the CLI's terminal).
FRONT_ENDS = {"cli", "serve"}
# What a command module (cli/<command>.py) may import from the CLI: the shared module and
# the terminal; never another command or the group that lists them.
CLI_SHARED = {"huggingtweets.cli.common", "huggingtweets.cli.console", "huggingtweets.cli.options"}
MAX_FUNCTION_LINES = 80
MAX_TOP_LEVEL_MODULES = 12


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> Iterator[str]:
    """Every module or package ``name`` imports (absolute names, relative ones resolved)."""
    path = MODULES[name]
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from package import submodule` imports the submodule
            submodules = [f"{target}.{alias.name}" for alias in node.names]
            found = [sub for sub in submodules if sub in MODULES]
            yield from found or [target]


def internal_edges() -> dict[str, set[str]]:
    """Module -> the huggingtweets modules it imports (a package's __init__ is the package)."""
    edges: dict[str, set[str]] = {}
    for name in MODULES:
        targets = set()
        for target in imports_of(name):
            while target and target not in MODULES:  # `from pkg.mod import name`: the module
                target = target.rpartition(".")[0]
            # importing a module runs its packages' __init__ first; that is not an edge
            if target and target != name and not name.startswith(target + "."):
                targets.add(target)
        edges[name] = targets
    return edges


def top_part(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_module_sits_in_a_layer() -> None:
    unplaced = sorted({top_part(name) for name in MODULES} - set(LAYER_OF))
    assert unplaced == [], f"add these to LAYERS in {Path(__file__).name}: {unplaced}"


def test_imports_point_down() -> None:
    upward = [
        f"{name} imports {target}"
        for name, targets in internal_edges().items()
        for target in sorted(targets)
        if LAYER_OF[top_part(target)] > LAYER_OF[top_part(name)]
    ]
    assert upward == []


def test_the_library_imports_no_front_end_and_no_web_or_cli_framework() -> None:
    offending = []
    for name in MODULES:
        if top_part(name) in FRONT_ENDS | {"__main__", "__init__"}:
            continue
        for target in imports_of(name):
            root = target.split(".")[0]
            if root in WEB_AND_CLI_LIBRARIES or (
                top_part(target) in FRONT_ENDS and root == "huggingtweets"
            ):
                offending.append(f"{name} imports {target}")
    assert offending == []


def test_the_server_does_not_import_the_cli() -> None:
    offending = [
        f"{name} imports {target}"
        for name, targets in internal_edges().items()
        if top_part(name) == "serve"
        for target in targets
        if top_part(target) == "cli"
    ]
    assert offending == []


def test_commands_import_only_the_common_cli_modules() -> None:
    offending = [
        f"{name} imports {target}"
        for name, targets in internal_edges().items()
        if top_part(name) == "cli" and name not in {"huggingtweets.cli", "huggingtweets.cli.main"}
        for target in targets
        if top_part(target) == "cli" and target not in CLI_SHARED
    ]
    assert offending == []


def test_no_module_imports_another_modules_private_names() -> None:
    """A name with a leading underscore is its module's own: what another module needs is
    public (and so stays importable when the module is split)."""
    private = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("huggingtweets"):
                private += [
                    f"{name} imports {node.module}.{alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_") and not alias.name.startswith("__")
                ]
    assert private == []


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``edges`` (depth-first search), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_circles_between_modules() -> None:
    assert find_cycle(internal_edges()) is None


def test_no_import_circles_between_stage_folders() -> None:
    folders: dict[str, set[str]] = {}
    for name, targets in internal_edges().items():
        folders.setdefault(top_part(name), set()).update(
            top_part(target) for target in targets if top_part(target) != top_part(name)
        )
    folders.pop("__init__", None)  # the package's face re-exports every stage
    assert find_cycle(folders) is None


def test_the_cycle_finder_finds_a_circle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def long_functions() -> list[str]:
    found = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found.append(f"{name}.{node.name}: {lines} lines")
    return found


def test_no_function_is_longer_than_a_reader_can_hold() -> None:
    assert long_functions() == []


def test_the_tree_reads_as_the_pipeline() -> None:
    top_level = sorted(p.name for p in PACKAGE.glob("*.py"))
    folders = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    assert len(top_level) <= MAX_TOP_LEVEL_MODULES, top_level
    stages = {"collect", "prepare", "train", "evaluate", "card", "publish", "generate", "serve"}
    assert stages <= set(folders), folders


@pytest.mark.parametrize("folder", sorted(p.name for p in PACKAGE.iterdir() if p.is_dir()))
def test_the_readme_names_each_folder(folder: str) -> None:
    if folder == "__pycache__" or not (PACKAGE / folder / "__init__.py").exists():
        pytest.skip("not a package")
    readme = (PACKAGE.parents[1] / "README.md").read_text(encoding="utf-8")
    start = readme.index("src/huggingtweets/\n")
    tree = readme[start : readme.index("```", start)]  # the layout's code block only
    assert re.search(rf"^  {folder}/ +\S", tree, re.M), f"README's layout tree lacks {folder}/"
