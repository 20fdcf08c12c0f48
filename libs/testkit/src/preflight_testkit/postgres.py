"""A throwaway PostgreSQL cluster for tests: a temporary directory, a free port, 127.0.0.1 only.

:class:`LocalPostgres` runs ``initdb`` and ``pg_ctl`` from the newest
``/usr/lib/postgresql/<version>/bin`` (or ``$PREFLIGHT_PG_BIN``, or ``PATH``). PostgreSQL refuses
to run as root, so when the current user is root every server command runs as the ``postgres``
OS user (``runuser -u postgres --``) and the cluster's directory belongs to that user.
Authentication is ``trust`` for the ``postgres`` superuser over TCP on loopback; the Unix socket
lives inside the cluster's directory. Durability is traded for speed (``fsync=off``): the
cluster is meant to be thrown away.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final, Self

from preflight_common.ports import free_port

if TYPE_CHECKING:
    from psycopg.sql import Composed

__all__ = ["LocalPostgres", "PostgresError", "find_pg_bin"]

HOST: Final = "127.0.0.1"
SUPERUSER: Final = "postgres"
DEFAULT_DATABASE: Final = "preflight"
OS_USER: Final = "postgres"
_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresError(RuntimeError):
    """A PostgreSQL command failed; the message carries its output or the server log's tail."""


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name)) or (0,)


def find_pg_bin() -> Path | None:
    """Return the directory with ``initdb`` and ``pg_ctl``, or None if PostgreSQL is not installed.

    ``$PREFLIGHT_PG_BIN`` wins; then the newest ``/usr/lib/postgresql/*/bin``; then ``PATH``.
    """
    candidates: list[Path] = []
    env = os.environ.get("PREFLIGHT_PG_BIN")
    if env:
        candidates.append(Path(env))
    candidates.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True))
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    return None


class LocalPostgres:
    """A PostgreSQL cluster created by :meth:`start` and removed, files and all, by :meth:`stop`.

    After :meth:`start`: the server listens on ``127.0.0.1:port``, database ``preflight``
    exists, :attr:`url` is its SQLAlchemy URL (``postgresql+psycopg://postgres@127.0.0.1:PORT/
    preflight``) and :meth:`create_database` makes more. Usable as a context manager.
    """

    def __init__(
        self,
        *,
        bin_dir: Path | str | None = None,
        port: int | None = None,
        base_dir: Path | str | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        found = Path(bin_dir) if bin_dir is not None else find_pg_bin()
        if found is None:
            raise PostgresError("no PostgreSQL server binaries (initdb, pg_ctl) found")
        self.bin_dir = found
        self.port = port
        self._base_dir = Path(base_dir) if base_dir is not None else None
        self.startup_timeout = startup_timeout
        self.root: Path | None = None
        """The cluster's directory (data/, the socket, server.log) while it exists."""
        self._as_postgres = os.geteuid() == 0
        self._running = False

    # -- properties ------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory; RuntimeError before :meth:`start`."""
        return self._root() / "data"

    @property
    def log_path(self) -> Path:
        """The server's log file."""
        return self._root() / "server.log"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``preflight`` database."""
        return self.url_for(DEFAULT_DATABASE)

    def url_for(self, database: str) -> str:
        """SQLAlchemy URL (psycopg 3 driver) of ``database`` on this server."""
        if self.port is None:
            raise RuntimeError("the server has no port yet: call start() first")
        return f"postgresql+psycopg://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def conninfo(self, database: str = DEFAULT_DATABASE) -> str:
        """libpq connection string of ``database`` (for psycopg or psql directly)."""
        if self.port is None:
            raise RuntimeError("the server has no port yet: call start() first")
        return f"host={HOST} port={self.port} user={SUPERUSER} dbname={database}"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Create the cluster, start the server, wait until it accepts connections, create
        the ``preflight`` database. Raises :class:`PostgresError` on failure (after cleaning up).
        """
        if self._running:
            return
        root = Path(tempfile.mkdtemp(prefix="preflight-pg-", dir=self._base_dir))
        self.root = root
        try:
            if self._as_postgres:
                try:
                    owner = pwd.getpwnam(OS_USER)
                except KeyError:
                    raise PostgresError(
                        f"running as root, but there is no '{OS_USER}' OS user to run PostgreSQL as"
                    ) from None
                os.chown(root, owner.pw_uid, owner.pw_gid)
                root.chmod(0o700)
            self._run(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            )
            self._configure()
            self._start_server()
            self.create_database(DEFAULT_DATABASE)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server (fast shutdown, then immediate) and delete the cluster's directory."""
        root = self.root
        if root is None:
            return
        if self._running or (root / "data" / "postmaster.pid").exists():
            for mode in ("fast", "immediate"):
                result = self._run(
                    "pg_ctl", "stop", "-D", str(root / "data"), "-m", mode, "-w", "-t", "30", check=False
                )
                if result.returncode == 0:
                    break
            self._running = False
        shutil.rmtree(root, ignore_errors=True)
        self.root = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- databases -------------------------------------------------------------------------

    def create_database(self, name: str) -> str:
        """Create an empty database ``name`` and return its SQLAlchemy URL.

        ``name`` must be a lower-case SQL identifier (``[a-z_][a-z0-9_]*``, at most 63
        characters); ValueError otherwise. Raises psycopg's error if it already exists.
        """
        from psycopg import sql

        self._execute_admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self._checked_name(name))))
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, disconnecting whoever is still connected."""
        from psycopg import sql

        statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        self._execute_admin(statement.format(sql.Identifier(self._checked_name(name))))

    # -- internals -------------------------------------------------------------------------

    def _root(self) -> Path:
        if self.root is None:
            raise RuntimeError("the cluster does not exist: call start() first")
        return self.root

    @staticmethod
    def _checked_name(name: str) -> str:
        if not _DB_NAME.fullmatch(name):
            raise ValueError(f"invalid database name {name!r}: use [a-z_][a-z0-9_]*, up to 63 chars")
        return name

    def _execute_admin(self, statement: Composed) -> None:
        import psycopg  # imported late: starting the server does not need it

        with psycopg.connect(self.conninfo("postgres"), autocommit=True, connect_timeout=10) as conn:
            conn.execute(statement)

    def _command(self, tool: str, *args: str) -> list[str]:
        command = [str(self.bin_dir / tool), *args]
        if self._as_postgres:
            return ["runuser", "-u", OS_USER, "--", *command]
        return command

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self._command(tool, *args),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            cwd=self._root(),
        )
        if check and result.returncode != 0:
            output = (result.stdout + result.stderr).strip()[-4000:]
            raise PostgresError(f"{tool} failed (exit {result.returncode}):\n{output}{self._log_tail()}")
        return result

    def _configure(self) -> None:
        settings = {
            "listen_addresses": f"'{HOST}'",
            "unix_socket_directories": f"'{self._root()}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "shared_buffers": "64MB",
            "log_min_messages": "warning",
        }
        lines = [f"{key} = {value}" for key, value in settings.items()]
        # Appending keeps the file's owner (the postgres OS user when running as root).
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# throwaway test cluster\n" + "\n".join(lines) + "\n")

    def _start_server(self) -> None:
        # A port picked here may be taken before the server binds it: retry with another.
        fixed = self.port is not None
        for attempt in range(1 if fixed else 3):
            port = self.port if self.port is not None else free_port()
            result = self._run(
                "pg_ctl",
                "start",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_path),
                "-o",
                f"-p {port}",
                "-w",
                "-t",
                str(int(self.startup_timeout)),
                check=False,
            )
            if result.returncode == 0:
                self.port = port
                self._running = True
                self._wait_accepting()
                return
            log = self._log_tail()
            if not fixed and attempt < 2 and "could not bind" in log:
                continue
            output = (result.stdout + result.stderr).strip()[-2000:]
            raise PostgresError(f"PostgreSQL did not start on port {port}:\n{output}{log}")

    def _wait_accepting(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            result = self._run(
                "pg_isready", "-h", HOST, "-p", str(self.port), "-U", SUPERUSER, "-t", "2", check=False
            )
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise PostgresError(
                    f"PostgreSQL on port {self.port} does not accept connections{self._log_tail()}"
                )
            time.sleep(0.1)

    def _log_tail(self, lines: int = 30) -> str:
        if self.root is None:
            return ""
        with contextlib.suppress(OSError):
            text = (self.root / "server.log").read_text(encoding="utf-8", errors="replace")
            tail = "\n".join(text.splitlines()[-lines:])
            if tail:
                return f"\n--- last lines of {self.root / 'server.log'} ---\n{tail}"
        return ""
