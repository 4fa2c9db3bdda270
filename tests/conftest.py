import os
import subprocess
import sys

import pytest

from analyzerd.testing import LocalPostgres, LocalRegistry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """A real Distribution registry on 127.0.0.1, for the whole session."""
    reg = LocalRegistry(str(tmp_path_factory.mktemp("registry"))).start()
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL cluster on 127.0.0.1, for the whole session."""
    with LocalPostgres() as cluster:
        yield cluster


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / "analyzerd.db")


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """A new, empty database of each kind (a SQLite path, a PostgreSQL URL): tests that take
    it run once on each backend."""
    if request.param == "sqlite":
        return str(tmp_path / "analyzerd.db")
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture
def cli_database(db_path):
    """The database `cli` uses; a module overrides it with `database` to run on both backends."""
    return db_path


@pytest.fixture
def cli(cli_database, tmp_path):
    """Run `analyzerd` as a user would: a subprocess with its own database."""

    def run(*args, check=True, timeout=120, env=None):
        environment = dict(os.environ, ANALYZERD_DB=cli_database, TMPDIR=str(tmp_path))
        environment.update(env or {})
        proc = subprocess.run([sys.executable, "-m", "analyzerd", *args], capture_output=True,
                              text=True, timeout=timeout, env=environment, cwd=ROOT)
        if check and proc.returncode != 0:
            raise AssertionError(f"analyzerd {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
        return proc

    return run


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite the golden files under tests/data/golden instead of comparing (review the diff)")


@pytest.fixture
def update_golden(request):
    return request.config.getoption("--update-golden")
