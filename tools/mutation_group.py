"""Rewrite a scratch copy's [tool.mutmut] for one group of modules, each mutant run with that
group's own unit tests (fast: the catalogers' 4,651 mutants take about 9 minutes on 2 cores).
Usage: python tools/mutation_group.py GROUP PYPROJECT (tools/mutation.sh GROUP calls it)."""

from __future__ import annotations

import re
import sys

#: group: (modules to mutate, the tests that exercise them in this process)
GROUPS: dict[str, tuple[list[str], list[str]]] = {
    "catalogers": (
        [f"analyzerd/catalogers/{name}.py" for name in ("dpkg", "apk", "rpm", "rpmdb", "python", "npm", "gem", "java")],
        [f"tests/unit/{name}.py" for name in ("test_os_catalogers", "test_rpmdb", "test_python_cataloger",
                                               "test_npm_cataloger", "test_gem_cataloger", "test_java_cataloger",
                                               "test_image_packages")]),
    "archive": (
        ["analyzerd/archive/tar.py", "analyzerd/archive/decompress.py", "analyzerd/archive/whiteout.py"],
        ["tests/unit/test_tar.py", "tests/unit/test_tar_differential.py", "tests/unit/test_decompress.py",
         "tests/unit/test_squash.py", "tests/unit/test_layer.py"]),
    "analysis": (
        ["analyzerd/analysis/"],
        ["tests/unit/test_layer.py", "tests/unit/test_dispatch.py", "tests/unit/test_image_packages.py",
         "tests/unit/test_image_secrets.py"]),
    "secrets": (["analyzerd/secrets/scanner.py"],
                ["tests/unit/test_secret_scanner.py", "tests/unit/test_secret_redaction.py",
                 "tests/unit/test_secret_rules.py", "tests/unit/test_image_secrets.py"]),
    "registry": (["analyzerd/registry/"],
                 ["tests/unit/test_registry_auth_policy.py", "tests/unit/test_challenge.py",
                  "tests/integration/test_registry_client_in_process.py",
                  "tests/integration/test_registry_auth_policy.py"]),
    "cache": (["analyzerd/cache.py"], ["tests/integration/test_cache.py", "tests/integration/test_private_files.py"]),
    "jobs": (["analyzerd/jobqueue.py", "analyzerd/worker.py"],
             ["tests/unit/test_worker_lease.py", "tests/unit/test_worker_run.py", "tests/integration/test_store.py"]),
}


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


def main() -> None:
    group, pyproject = sys.argv[1], sys.argv[2]
    if group not in GROUPS:
        sys.exit(f"no mutation group {group!r}: one of {', '.join(GROUPS)}")
    sources, tests = GROUPS[group]
    with open(pyproject, encoding="utf-8") as f:
        text = f.read()
    for key, value in (("source_paths", sources), ("pytest_add_cli_args_test_selection", tests)):
        text, count = re.subn(rf"(?ms)^{key} = \[.*?\]", f"{key} = {_toml_list(value)}", text, count=1)
        if count != 1:
            sys.exit(f"{pyproject}: no [tool.mutmut] {key} to replace")
    with open(pyproject, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
