"""A real, throwaway PostgreSQL server for the test session.

Usage from any test package's ``conftest.py``::

    from tests._postgres import postgres_server, postgres_url  # noqa: F401  (pytest fixtures)

and then in a test module::

    def test_something(postgres_url: str) -> None:   # SQLAlchemy URL, postgresql+psycopg://...
        ...

``postgres_server`` is session-scoped and every conftest that imports it shares one server process.
``postgres_url`` gives each test a fresh empty schema (connections see only it, through ``search_path``)
and drops it afterwards; a test that needs a whole database calls ``postgres_server.create_database()``.
Outside pytest, use ``PostgresServer`` directly (it is a context manager).

The server lives in a temporary directory, listens on a free port on 127.0.0.1 and trusts local
connections; durability is switched off because the data is thrown away. PostgreSQL refuses to run as
root, so under root the server commands run as the ``postgres`` system user via ``runuser``.
Missing binaries are a test failure, not a skip: the suite promises to run on PostgreSQL.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import TupleRow

SUPERUSER = "postgres"
_SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")
_START_ATTEMPTS = 3
_COMMAND_TIMEOUT_S = 120


class PostgresNotAvailable(RuntimeError):
    """PostgreSQL cannot be started here (binaries or system user missing)."""


def find_postgres_bindir() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``.

    Tries ``pg_config --bindir``, then Debian's ``/usr/lib/postgresql/<version>/bin`` (newest first), then
    wherever ``initdb`` is on PATH.
    """
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if result.returncode == 0:
            candidates.append(Path(result.stdout.strip()))
    versioned = glob.glob("/usr/lib/postgresql/*/bin")
    candidates.extend(Path(path) for path in sorted(versioned, key=_version_key, reverse=True))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)

    for bindir in candidates:
        if all((bindir / name).is_file() for name in _SERVER_BINARIES):
            return bindir
    looked = ", ".join(str(path) for path in candidates) or "nothing found by pg_config, glob or PATH"
    raise PostgresNotAvailable(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found "
        f"(looked in: {looked}). Install them, e.g. `apt-get install -y postgresql`."
    )


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PostgresServer:
    """One PostgreSQL server in a temporary directory: ``start()``, ``create_database()``, ``stop()``."""

    host = "127.0.0.1"

    def __init__(self, bindir: Path | None = None) -> None:
        self.bindir = bindir if bindir is not None else find_postgres_bindir()
        self.port = 0
        self._root: Path | None = None
        self._run_as: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self._run_as = pwd.getpwnam(SUPERUSER)
            except KeyError as error:
                raise PostgresNotAvailable(
                    "running as root, and PostgreSQL refuses root: a 'postgres' system user is needed "
                    "to run the test server (the postgresql package creates it)"
                ) from error

    # --- lifecycle ---------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._root is not None

    def start(self) -> None:
        if self._root is not None:
            return
        # /tmp rather than the default temp dir: the postgres user must be able to reach it.
        root = Path(tempfile.mkdtemp(prefix="logpond-pg-", dir="/tmp"))
        root.chmod(0o755)
        if self._run_as is not None:
            os.chown(root, self._run_as.pw_uid, self._run_as.pw_gid)
        self._root = root
        try:
            self._initdb()
            self._start_server()
        except BaseException:
            self._cleanup()
            raise
        atexit.register(self.stop)  # backstop if the session dies before its fixture finalizers run

    def stop(self) -> None:
        if self._root is None:
            return
        # "immediate" skips the shutdown checkpoint: nothing here is worth keeping.
        self._command("pg_ctl", "-D", str(self._data_dir), "-m", "immediate", "-w", "stop", check=False)
        self._cleanup()

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- databases ---------------------------------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL (psycopg 3 driver) of a database on this server."""
        self._require_running()
        return f"postgresql+psycopg://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        """libpq connection string, for psycopg or psql."""
        self._require_running()
        return f"host={self.host} port={self.port} user={SUPERUSER} dbname={database}"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its SQLAlchemy URL (about 0.3 s: prefer create_schema)."""
        _check_identifier(name)
        with self._admin_connection() as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting anyone still connected to it."""
        _check_identifier(name)
        with self._admin_connection() as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def create_schema(self, name: str, database: str = "postgres") -> str:
        """Create an empty schema and return a URL whose connections see only it (via ``search_path``).

        For code that uses unqualified table names this is as good as a fresh database, at a hundredth of
        the cost. Connections also carry ``application_name=<name>`` so ``drop_schema`` can end them.
        """
        _check_identifier(name)
        with self._admin_connection(database) as connection:
            connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        return f"{self.url(database)}?options=-csearch_path%3D{name}&application_name={name}"

    def drop_schema(self, name: str, database: str = "postgres") -> None:
        """Drop a schema and everything in it, first ending connections that still use it."""
        _check_identifier(name)
        with self._admin_connection(database) as connection:
            # A leaked idle-in-transaction connection would otherwise block the DROP forever.
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))

    # --- internals ---------------------------------------------------------------------------------------

    @property
    def _data_dir(self) -> Path:
        self._require_running()
        assert self._root is not None
        return self._root / "data"

    def _require_running(self) -> None:
        if self._root is None:
            raise RuntimeError("the PostgreSQL test server is not running; call start() first")

    def _admin_connection(self, database: str = "postgres") -> psycopg.Connection[TupleRow]:
        # CREATE/DROP DATABASE cannot run inside a transaction block.
        return psycopg.connect(self.dsn(database), autocommit=True)

    def _initdb(self) -> None:
        self._command(
            "initdb",
            "-D",
            str(self._data_dir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )

    def _start_server(self) -> None:
        assert self._root is not None
        log = self._root / "server.log"
        for attempt in range(_START_ATTEMPTS):
            # Another process may grab the port between our probe and the server's bind: retry on a new one.
            self.port = _free_port()
            options = [
                f"-p {self.port}",
                f"-h {self.host}",
                f"-k {shlex.quote(str(self._root))}",
                # Test data is disposable: trade durability for speed.
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=200",
            ]
            result = self._command(
                "pg_ctl",
                "-D",
                str(self._data_dir),
                "-l",
                str(log),
                "-w",
                "-t",
                "60",
                "-o",
                " ".join(options),
                "start",
                check=False,
            )
            if result.returncode == 0:
                return
            if attempt == _START_ATTEMPTS - 1:
                server_log = log.read_text(errors="replace")[-4000:] if log.exists() else "(no server log)"
                raise RuntimeError(
                    f"PostgreSQL test server did not start:\n{result.stdout}{result.stderr}\n{server_log}"
                )

    def _command(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bindir / program), *args]
        if self._run_as is not None:
            argv = ["runuser", "-u", self._run_as.pw_name, "--", *argv]
        result = subprocess.run(
            argv,
            cwd=self._root,  # the postgres user may not be allowed into our working directory
            capture_output=True,
            text=True,
            timeout=_COMMAND_TIMEOUT_S,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{program} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
        return result

    def _cleanup(self) -> None:
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
        self._root = None
        self.port = 0


def _check_identifier(name: str) -> None:
    # Also what keeps names safe inside the URLs built above.
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise ValueError(f"test database and schema names are lowercase identifiers (max 63): {name!r}")


# --- one server shared by every conftest that imports the fixtures -----------------------------------------

_shared_lock = threading.Lock()
_shared_server: PostgresServer | None = None
_shared_users = 0
_database_numbers = itertools.count(1)


def acquire_shared_server() -> PostgresServer:
    """The session's server, started on first use; pair every call with ``release_shared_server()``."""
    global _shared_server, _shared_users
    with _shared_lock:
        if _shared_server is None:
            server = PostgresServer()
            server.start()
            _shared_server = server
        _shared_users += 1
        return _shared_server


def release_shared_server() -> None:
    """Stop the shared server once its last user lets go."""
    global _shared_server, _shared_users
    with _shared_lock:
        _shared_users -= 1
        if _shared_users == 0 and _shared_server is not None:
            _shared_server.stop()
            _shared_server = None


def database_name_for(test_name: str) -> str:
    """A database or schema name unique within the session that still says which test it belongs to."""
    readable = re.sub(r"[^a-z0-9]+", "_", test_name.lower()).strip("_")
    return f"t{next(_database_numbers)}_{readable}"[:63]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A running PostgreSQL server for the whole session; fails (never skips) when PostgreSQL is missing."""
    try:
        server = acquire_shared_server()
    except PostgresNotAvailable as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield server
    finally:
        release_shared_server()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, empty schema (see ``create_schema``), dropped after the test.

    A test that needs a whole database of its own can call ``postgres_server.create_database()``.
    """
    name = database_name_for(request.node.name)
    url = postgres_server.create_schema(name)
    try:
        yield url
    finally:
        postgres_server.drop_schema(name)
