"""The middle of analyzerd is sans-IO: parsers never import event loops, HTTP or databases."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "analyzerd"
PURE = [*sorted((PACKAGE / "archive").glob("*.py")), *sorted((PACKAGE / "analysis").glob("*.py")),
        *sorted((PACKAGE / "catalogers").glob("*.py")), *sorted((PACKAGE / "secrets").glob("*.py")),
        PACKAGE / "oci.py", PACKAGE / "reference.py", PACKAGE / "model.py", PACKAGE / "errors.py"]
FORBIDDEN = {"asyncio", "aiohttp", "aiofiles", "aiosqlite", "sqlite3", "socket", "uvloop", "os", "io"}
# rpmdb.sqlite is read from bytes with sqlite3's in-memory deserialize(): no file is opened
ALLOWED = {"rpmdb.py": {"sqlite3"}}


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
            top = name.split(".")[0]
            assert top not in FORBIDDEN - ALLOWED.get(path.name, set()), f"{path.name} imports {name}"
