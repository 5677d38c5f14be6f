"""The README's layout table names every module of the package, and only modules that exist."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_readme_layout_table_matches_the_package():
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Package layout") :]
    section = section[: section.index("\n## ", 1)]
    table = "\n".join(line for line in section.splitlines() if line.startswith("| `"))
    listed = set(re.findall(r"`([\w/]+\.py)`", table))
    modules = {
        str(p.relative_to(REPO / "lpips_core"))
        for p in (REPO / "lpips_core").rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py", "version.py")
    }
    assert not listed - modules, f"the README lists modules that do not exist: {sorted(listed - modules)}"
    assert not modules - listed, f"the README's layout table omits: {sorted(modules - listed)}"


def _notebook_imports() -> set[tuple[str, str, str]]:
    """(chapter, module, name) of every ``from lpips_core... import name`` in the notebooks."""
    import ast
    import json

    found = set()
    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        for cell in json.loads(notebook.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            lines = "".join(cell["source"]).splitlines()
            code = "\n".join(line for line in lines if not line.lstrip().startswith(("%", "!")))
            for node in ast.walk(ast.parse(code)):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lpips_core"):
                    found.update((notebook.stem, node.module, alias.name) for alias in node.names)
    return found


def test_the_course_imports_only_exported_and_documented_names():
    """What a chapter imports is public: in its module's ``__all__`` (or a module), with a docstring."""
    import importlib
    import importlib.util
    import inspect

    imports = _notebook_imports()
    assert len(imports) > 50  # the parser saw the chapters' imports
    problems = []
    for chapter, module_name, name in sorted(imports):
        module = importlib.import_module(module_name)
        if hasattr(module, "__path__") and importlib.util.find_spec(f"{module_name}.{name}") is not None:
            continue  # a module of a package
        value = getattr(module, name, None)
        if name not in getattr(module, "__all__", ()):
            problems.append(f"{chapter}: {module_name}.{name} is not in {module_name}.__all__")
        elif (inspect.isfunction(value) or inspect.isclass(value)) and not inspect.getdoc(value):
            problems.append(f"{chapter}: {module_name}.{name} has no docstring")
    assert not problems, "\n".join(problems)


def test_no_module_of_the_package_imports_itself_back():
    """No import cycles, counting type-only imports and imports inside functions: a module that
    a lower one names in its hints is above it in fact (``lpips.py`` builds ``fast``; ``fast``
    types against a Protocol). The graph is grimp's, the one import-linter checks the layers on."""
    import grimp

    graph = grimp.build_graph("lpips_core", cache_dir=None)  # includes TYPE_CHECKING imports
    assert len(graph.modules) > 60  # the package was read
    # a package's __init__ may hand on what its own modules define; only module-to-module loops count
    modules = {m for m in graph.modules if not graph.find_children(m)}
    loops = sorted(
        {
            " <-> ".join(sorted((a, b)))
            for a in modules
            for b in graph.find_modules_directly_imported_by(a) & modules
            if graph.chain_exists(importer=b, imported=a)
        }
    )
    assert not loops, "modules that import each other (directly or through others):\n" + "\n".join(loops)
