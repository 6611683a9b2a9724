"""The import layers (issue 15): ``spaces`` is the bottom, ``evaluators`` builds on it, ``search`` on
both; library code never imports a CLI module. Every import counts, also those inside functions."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# package -> packages it must not import
FORBIDDEN = {"spaces": ("evaluators", "search"), "evaluators": ("search",)}


def _imports(path: Path) -> set[str]:
    """Absolute module names ``path`` imports (relative imports stay inside their own package)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def _is_cli(module: str) -> bool:
    return module.split(".")[0] == "search" and module.split(".")[-1].startswith("cli")


def _modules(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_never_import_higher_ones(package: str) -> None:
    offenders = [f"{path.relative_to(ROOT)} imports {name}" for path in _modules(package)
                 for name in sorted(_imports(path)) if name.split(".")[0] in FORBIDDEN[package]]
    assert offenders == []


def test_only_cli_modules_import_cli_modules() -> None:
    offenders = [f"{path.relative_to(ROOT)} imports {name}" for path in _modules("spaces", "evaluators", "search", "bench")
                 if not path.stem.startswith("cli") for name in sorted(_imports(path)) if _is_cli(name)]
    assert offenders == []


def test_the_layer_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from search.cli_search import x\n    import evaluators.flops\n")
    assert _imports(module) == {"search.cli_search", "evaluators.flops"}
