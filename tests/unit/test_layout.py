"""The package layout: each stage imports only the stages below it, and no modules import in a
cycle.

Read from the source (every `import`, eager or inside a function), so a violation fails here before
it becomes a circular import at run time. The rules are the ones each subpackage's docstring states.
"""

from __future__ import annotations

import ast
from pathlib import Path

import assistant

PACKAGE = Path(assistant.__file__).resolve().parent
ROOT_MODULES = {"config", "errors", "files", "models", "devices", "calibration", "prompts"}

# What each stage may import besides itself and the root modules.
ALLOWED = {
    "": set(),
    "text": set(),
    "embed": {"text"},
    "index": {"embed", "text"},
    "ingest": {"index", "embed", "text"},
    "llm": {"text"},
    "grounding": {"llm", "index", "embed", "text"},
    "answer": {"grounding", "llm", "ingest", "index", "embed", "text"},
    "chat": {"answer", "grounding", "llm", "ingest", "index", "embed", "text"},
    "evals": {"chat", "answer", "grounding", "llm", "ingest", "index", "embed", "text"},
    "server": {"evals", "chat", "answer", "grounding", "llm", "ingest", "index", "embed", "text"},
}
ALLOWED["cli"] = {"server", *ALLOWED["server"]}  # the command line starts the server too


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The assistant modules `path` imports, as dotted names."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("assistant"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("assistant"):
                continue
            for alias in node.names:  # `from assistant.llm import loader` names a module
                candidate = f"{node.module}.{alias.name}"
                is_module = (PACKAGE.parent / (candidate.replace(".", "/") + ".py")).exists()
                found.add(candidate if is_module else node.module)
    return found


def stage(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 2 and parts[1] in ROOT_MODULES | {"__main__"}:
        return ""
    return parts[1] if len(parts) > 1 else ""


def graph() -> dict[str, set[str]]:
    return {module_name(path): imports(path) for path in PACKAGE.rglob("*.py")}


def test_every_module_belongs_to_a_known_stage() -> None:
    unknown = sorted(module for module in graph() if stage(module) not in ALLOWED)
    assert unknown == [], f"modules outside the stages this test knows: {unknown}"


def test_stages_import_only_lower_stages() -> None:
    violations = []
    for module, targets in graph().items():
        if module in {"assistant", "assistant.__main__"}:
            continue  # the package's front door re-exports; `python -m assistant` runs the CLI
        own = stage(module)
        for target in targets:
            other = stage(target)
            if other not in {"", own} and other not in ALLOWED[own]:
                violations.append(f"{module} imports {target}")
    assert violations == []


def test_no_import_cycles_between_modules() -> None:
    edges = graph()
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        for target in sorted(edges.get(module, ())):
            if target in path:
                cycles.append([*path[path.index(target) :], target])
            elif target in edges and target not in done:
                visit(target, [*path, target])
        done.add(module)

    done: set[str] = set()
    for module in sorted(edges):
        if module not in done:
            visit(module, [module])
    assert [cycle for cycle in cycles if "assistant" not in cycle] == []
