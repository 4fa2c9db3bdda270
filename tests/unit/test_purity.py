"""The middle of analyzerd is sans-IO: parsers never import event loops, HTTP or databases."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "analyzerd"
PURE = [*sorted((PACKAGE / "archive").glob("*.py")), *sorted((PACKAGE / "analysis").glob("*.py")),
        PACKAGE / "oci.py", PACKAGE / "reference.py", PACKAGE / "model.py", PACKAGE / "errors.py"]
FORBIDDEN = {"asyncio", "aiohttp", "aiofiles", "aiosqlite", "sqlite3", "socket", "uvloop", "os", "io"}


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_io_imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"
