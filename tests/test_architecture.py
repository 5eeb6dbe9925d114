"""The import rules of docs/ARCHITECTURE.md ("Packages and what each may import") hold for every module of harness/.

The table is read from the document itself, so a rule changed in one place and not the other fails here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "harness"
DOC = REPO / "docs" / "ARCHITECTURE.md"
SECTION = "## Packages and what each may import"
NOT_HARNESS_CODE = ("areal_side", "areal_examples")  # run in AReaL's Python, never imported by the harness


def rules() -> Dict[str, Set[str]]:
    """unit -> what it may import: `spec` (a package or module) or `tracking.config` (one module of one)."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index(SECTION):]
    section = section[:section.index("\n## ", len(SECTION))]
    table: Dict[str, Set[str]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`harness/(\w+)(?:\.py|/)`", cells[0]) if len(cells) == 3 else None
        if match:
            table[match.group(1)] = set(re.findall(r"`([\w.]+)`", cells[2]))
    return table


def unit_of(module: str) -> str:
    """harness.store.rundir -> store; harness.cli -> cli; harness -> harness."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "harness"


def type_checking_nodes(tree: ast.AST) -> Set[int]:
    inside: Set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            inside.update(id(sub) for sub in ast.walk(node))
    return inside


def harness_imports(path: Path) -> Iterator[Tuple[int, str]]:
    """(line, imported module) for each runtime import of a harness module in the file, at any depth."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = type_checking_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "harness":
                yield from ((node.lineno, f"harness.{alias.name}") for alias in node.names)
            elif node.module.startswith("harness."):
                yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "harness")


def source_files() -> List[Path]:
    return [path for path in sorted(PACKAGE.rglob("*.py")) if not set(NOT_HARNESS_CODE) & set(path.parts)]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def breaches(table: Dict[str, Set[str]]) -> List[str]:
    found = []
    for path in source_files():
        source = unit_of(module_name(path))
        if source == "harness":
            continue  # the package's face
        for line, target in harness_imports(path):
            unit = unit_of(target)
            if unit == source:
                continue
            within = ".".join(target.split(".")[1:3])
            if unit not in table.get(source, set()) and within not in table.get(source, set()):
                found.append(f"{path.relative_to(REPO)}:{line} imports {target} ({source} may import: "
                             f"{', '.join(sorted(table.get(source, set()))) or 'nothing of the harness'})")
    return found


def test_the_table_names_every_package_and_top_level_module_and_nothing_else():
    code_units = {unit_of(module_name(path)) for path in source_files()} - {"harness"}
    assert set(rules()) == code_units


def test_every_import_is_one_the_table_allows():
    assert breaches(rules()) == []


def test_a_forbidden_import_is_found(tmp_path, monkeypatch):
    """The check is live: an import the table forbids (store importing the report) is caught."""
    table = rules()
    assert "report" not in table["store"]
    bad = PACKAGE / "store" / "rundir.py"
    original = bad.read_text(encoding="utf-8")
    copy = tmp_path / "rundir.py"
    copy.write_text(original + "\nfrom harness.report.load import load_sweep  # noqa\n", encoding="utf-8")
    monkeypatch.setattr(Path, "read_text", lambda self, encoding=None: (copy if self == bad else self)
                        .open(encoding=encoding).read())
    assert any("harness/store/rundir.py" in line and "harness.report.load" in line for line in breaches(table))
