"""A real single-node Apache Kafka broker (KRaft, combined broker+controller) run locally.

The broker runs from the Maven Central jars pinned in ``deploy/local/kafka/pom.xml``; they are
fetched once into ``<repo>/.cache/kafka/lib`` by :func:`ensure_jars`. :class:`LocalKafka`
formats a data directory, writes ``server.properties`` and launches
``java -cp '<lib>/*' kafka.Kafka server.properties`` as a child process, listening on
127.0.0.1 only. Topics are never auto-created: whoever uses a topic creates it first.

Command line (the embedded stack)::

    python -m preflight_common.localkafka up --run-dir run/kafka [--port 9092]
    python -m preflight_common.localkafka status --run-dir run/kafka
    python -m preflight_common.localkafka down --run-dir run/kafka

``up`` starts the broker detached, waits until it serves requests and prints
``bootstrap: 127.0.0.1:PORT``; run again while the broker runs, it only prints the address.
``down`` stops exactly the process that ``up`` started and waits until it has exited.

The broker always authenticates and authorizes: its only listener speaks SASL (SCRAM-SHA-512
for Preflight's principals, PLAIN for its administrator), KRaft's ``StandardAuthorizer``
refuses whatever no ACL allows (``allow.everyone.if.no.acl.found=false``), and the
administrator ``admin`` is the only super user. The administrator's password is generated
at the first start into ``<run_dir>/admin.password`` (mode 0600) and stays in files:
``server.properties`` (mode 0600) and never on a command line or in an environment.
With ``tls`` (:class:`BrokerTLS`) the broker also listens for TLS clients that present a
certificate signed by the given CA (``ssl.client.auth=required``): the principal is the
certificate subject's CN (``User:<CN>``), so the same ACLs apply as to a SASL user of that name.
:meth:`LocalKafka.admin_settings` gives the administrator's client settings; principals and
ACLs are created by ``preflight-topics`` (``preflight_common.topics``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from preflight_common.config import KafkaSettings, read_or_create_secret
from preflight_common.ports import free_ports

__all__ = [
    "DEFAULT_JVM_OPTS",
    "BrokerTLS",
    "KafkaStartError",
    "LocalKafka",
    "ensure_jars",
    "find_repo_root",
    "pinned_kafka_version",
    "read_broker_state",
]

POM_RELPATH: Final = Path("deploy/local/kafka/pom.xml")
"""Where the pinned broker jars are declared, relative to the repository root."""

LIB_RELPATH: Final = Path(".cache/kafka/lib")
"""Where :func:`ensure_jars` puts the jars, relative to the repository root."""

MARKER_NAME: Final = ".preflight-kafka-version"
"""Marker written into the lib directory once every jar is in place."""

NODE_ID: Final = 1
HOST: Final = "127.0.0.1"

DEFAULT_HEAP: Final = "512m"
DEFAULT_JVM_OPTS: Final[tuple[str, ...]] = (
    "-Xms64m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
"""JVM options besides the heap: a small serial-GC JVM using only the C1 compiler, which
starts in about half the time of the distribution's defaults (G1, tiered C2) and needs less
memory. A class-data-sharing archive is added on top (see ``_cds_archive``)."""

ADMIN_USER: Final = "admin"
ADMIN_PASSWORD_FILE: Final = "admin.password"  # noqa: S105 (a file name)
PID_FILE: Final = "kafka.pid"
STATE_FILE: Final = "broker.json"
CONFIG_FILE: Final = "server.properties"
LOG4J_FILE: Final = "log4j2.properties"

_KAFKA_MAIN: Final = "kafka.Kafka"
_STORAGE_MAIN: Final = "kafka.tools.StorageTool"
_PR_SET_PDEATHSIG: Final = 1


class KafkaStartError(RuntimeError):
    """The broker (or fetching its jars) failed; the message carries the tail of its log."""


SSL_PRINCIPAL_RULES: Final = "RULE:^(.*,)?CN=([^,]+)(,.*)?$/$2/,DEFAULT"
"""``ssl.principal.mapping.rules`` of the TLS listener: a client certificate whose subject's CN
is ``preflight-intake`` (whatever else the subject holds: ``O=…,CN=preflight-intake`` in the
broker's RFC 2253 form) is principal ``User:preflight-intake``, the name the bus's ACLs use."""


@dataclass(frozen=True)
class BrokerTLS:
    """The files of the broker's TLS listener, both PEM.

    ``keystore`` holds the broker's private key (PKCS#8, unencrypted) and its certificate
    chain (a certificate valid for 127.0.0.1); ``client_ca`` the CA that signs the client
    certificates the listener accepts (and that clients verify the broker against).
    """

    keystore: Path
    client_ca: Path


# --------------------------------------------------------------------------------------------
# jars


def find_repo_root(start: Path | str | None = None) -> Path:
    """Return the repository root: the nearest directory holding ``deploy/local/kafka/pom.xml``.

    Looks at ``$PREFLIGHT_REPO_ROOT`` first, then upwards from ``start`` (default: the current
    directory), then upwards from this file. Raises :class:`FileNotFoundError` if none has it.
    """
    candidates: list[Path] = []
    env = os.environ.get("PREFLIGHT_REPO_ROOT")
    if env:
        candidates.append(Path(env))
    candidates.append(Path(start) if start is not None else Path.cwd())
    candidates.append(Path(__file__).resolve().parent)
    for candidate in candidates:
        candidate = candidate.resolve()
        for directory in (candidate, *candidate.parents):
            if (directory / POM_RELPATH).is_file():
                return directory
    raise FileNotFoundError(f"no {POM_RELPATH} above any of {[str(c) for c in candidates]}")


def pinned_kafka_version(repo_root: Path | str) -> str:
    """Return the Kafka version pinned by ``<kafka.version>`` in the repository's pom.xml."""
    text = (Path(repo_root) / POM_RELPATH).read_text(encoding="utf-8")
    match = re.search(r"<kafka\.version>\s*([^<\s]+)\s*</kafka\.version>", text)
    if match is None:
        raise ValueError(f"{POM_RELPATH} has no <kafka.version> property")
    return match.group(1)


def _marker_text(pom: Path, version: str) -> str:
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    return f"kafka={version}\npom-sha256={digest}\n"


def _jars_ready(lib: Path, marker: str, version: str) -> bool:
    try:
        current = (lib / MARKER_NAME).read_text(encoding="utf-8")
    except OSError:
        return False
    return current == marker and (lib / f"kafka_2.13-{version}.jar").is_file()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_jars(repo_root: Path | str, *, mvn: str | None = None) -> Path:
    """Make sure the pinned broker jars are in ``<repo_root>/.cache/kafka/lib``; return that path.

    Runs ``mvn dependency:copy-dependencies`` on ``deploy/local/kafka/pom.xml`` unless the lib
    directory already carries a marker for the same Kafka version and pom contents. The copy
    goes to a temporary directory that replaces the lib directory only when complete, under a
    file lock, so concurrent callers neither fetch twice nor see a half-filled directory.
    Raises :class:`KafkaStartError` (with Maven's output) if the fetch fails.
    """
    root = Path(repo_root).resolve()
    pom = root / POM_RELPATH
    version = pinned_kafka_version(root)
    marker = _marker_text(pom, version)
    lib = root / LIB_RELPATH
    if _jars_ready(lib, marker, version):
        return lib
    with _file_lock(lib.parent / ".fetch.lock"):
        if _jars_ready(lib, marker, version):
            return lib
        executable = mvn or shutil.which("mvn")
        if executable is None:
            raise KafkaStartError("Maven (mvn) is not on PATH; it is needed to fetch the Kafka jars")
        staging = Path(tempfile.mkdtemp(prefix=".lib-", dir=lib.parent))
        try:
            command = [
                executable,
                "-q",
                "-B",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={staging}",
            ]
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                output = (result.stdout + result.stderr).strip()[-4000:]
                raise KafkaStartError(
                    f"fetching the Kafka {version} jars failed (exit {result.returncode}):\n{output}"
                )
            if not (staging / f"kafka_2.13-{version}.jar").is_file():
                raise KafkaStartError(f"Maven finished but kafka_2.13-{version}.jar is missing")
            (staging / MARKER_NAME).write_text(marker, encoding="utf-8")
            staging.chmod(0o755)
            if lib.exists():
                shutil.rmtree(lib)
            staging.rename(lib)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return lib


# --------------------------------------------------------------------------------------------
# processes


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _port_accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return False
    # The state letter follows the parenthesised command name.
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _pid_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _wait_pid_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.05)
    return not _pid_alive(pid)


def parent_death_hook() -> Callable[[], None] | None:
    """Return a pre-exec hook making the child get SIGKILL when its parent exits, if supported.

    libc is loaded here, in the parent, so the hook does nothing but one system call.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the call above
            os._exit(1)

    return hook


def _random_cluster_id() -> str:
    """Return a Kafka cluster id: 16 random bytes, URL-safe base64 without padding."""
    while True:
        value = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not value.startswith("-"):
            return value


def _tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise KafkaStartError("java is not on PATH (Kafka 4 needs Java 17 or newer)")
    return found


def _cds_archive(lib: Path, jvm_opts: Sequence[str]) -> Path | None:
    """Return where the class-data-sharing archive for these jars, JVM and options lives.

    The archive (classes already parsed and verified, dumped by a first broker at its exit)
    cuts the JVM's start time by about a third. Its name hashes everything it depends on, so
    a changed jar set, JDK or option list never maps a stale archive. None when disabled by
    ``PREFLIGHT_KAFKA_CDS=0``.
    """
    if os.environ.get("PREFLIGHT_KAFKA_CDS", "1") == "0":
        return None
    java = Path(_java()).resolve()
    try:
        marker = (lib / MARKER_NAME).read_text(encoding="utf-8")
    except OSError:
        marker = str(sorted(p.name for p in lib.glob("*.jar")))
    key_source = "\n".join([marker, str(java), str(java.stat().st_mtime_ns), *jvm_opts])
    key = hashlib.sha256(key_source.encode()).hexdigest()[:16]
    return lib.parent / "cds" / f"kafka-{key}.jsa"


def _promote_cds_dump(dump: Path | None, archive: Path | None) -> None:
    """Move a complete dump (its JVM has exited) into place as the shared archive, and delete
    archives made for other jars, JDKs or options."""
    if dump is None or archive is None:
        return
    with contextlib.suppress(OSError):
        if dump.is_file() and dump.stat().st_size > 0 and not archive.exists():
            dump.replace(archive)
            for stale in archive.parent.glob("kafka-*.jsa"):
                if stale != archive:
                    stale.unlink()
    with contextlib.suppress(OSError):
        dump.unlink()


def _admin_client(settings: KafkaSettings, timeout_ms: int) -> Any:
    """Return a kafka-python ``KafkaAdminClient`` for a readiness probe."""
    from kafka.admin import KafkaAdminClient  # imported late: the module loads without it

    return KafkaAdminClient(
        client_id="preflight-localkafka",
        request_timeout_ms=timeout_ms,
        bootstrap_timeout_ms=timeout_ms,
        **settings.kafka_python_options(),
    )


def read_broker_state(run_dir: Path | str) -> dict[str, Any] | None:
    """Return what the last start in ``run_dir`` recorded (pid, ports, bootstrap), if anything."""
    try:
        data = json.loads((Path(run_dir) / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class LocalKafka:
    """A single-node KRaft Kafka broker on 127.0.0.1, its files under one run directory.

    Layout of ``run_dir``: ``data/`` (the log directory, formatted on the first start),
    ``server.properties``, ``log4j2.properties``, ``logs/server.log`` (the broker's log),
    ``logs/stdout.log`` (the JVM's own output), ``kafka.pid`` and ``broker.json`` (pid, ports
    and bootstrap address of the current process).

    ``port`` and ``controller_port`` default to free ports chosen at the first :meth:`start`;
    every later start (:meth:`restart`, or :meth:`start` after :meth:`stop`/:meth:`kill`)
    reuses the same ports and the same data. ``config`` overrides or adds broker settings.

    With ``die_with_parent`` (the default) the broker is killed if the process that started it
    exits, even uncleanly (Linux: the parent-death signal follows the starting *thread*, so
    start it from a thread that outlives it, normally the main thread). Pass ``False`` for a
    broker that must outlive its starter, as the ``up`` command does.

    Usable as a context manager: ``with LocalKafka(path) as kafka: ...`` starts and stops it.
    Not thread-safe: drive one instance from one thread.
    """

    def __init__(
        self,
        run_dir: Path | str,
        *,
        port: int | None = None,
        controller_port: int | None = None,
        repo_root: Path | str | None = None,
        lib_dir: Path | str | None = None,
        heap: str = DEFAULT_HEAP,
        jvm_opts: Sequence[str] = DEFAULT_JVM_OPTS,
        config: Mapping[str, str] | None = None,
        startup_timeout: float = 90.0,
        die_with_parent: bool = True,
        tls: BrokerTLS | None = None,
    ) -> None:
        self.run_dir = Path(run_dir).resolve()
        self.port = port
        self.tls = tls
        self.tls_port: int | None = None
        """Port of the TLS listener (with ``tls``), chosen at the first start and kept after."""
        self.controller_port = controller_port
        self._fixed_port = port
        self._fixed_controller_port = controller_port
        self._repo_root = Path(repo_root).resolve() if repo_root is not None else None
        self._lib_dir = Path(lib_dir).resolve() if lib_dir is not None else None
        self.heap = heap
        self.jvm_opts = tuple(jvm_opts)
        self.extra_config = dict(config or {})
        self.startup_timeout = startup_timeout
        self.die_with_parent = die_with_parent
        self.last_start_seconds: float | None = None
        """Wall time of the last successful :meth:`start`, from launch to readiness."""
        self._proc: subprocess.Popen[bytes] | None = None
        self._cds_archive: Path | None = None
        self._cds_dump: Path | None = None

    # -- paths ---------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        """The broker's log directory (kept across restarts)."""
        return self.run_dir / "data"

    @property
    def config_path(self) -> Path:
        """The ``server.properties`` the broker runs with."""
        return self.run_dir / CONFIG_FILE

    @property
    def log_path(self) -> Path:
        """The broker's own log file."""
        return self.run_dir / "logs" / "server.log"

    @property
    def stdout_path(self) -> Path:
        """Where the JVM's stdout and stderr go."""
        return self.run_dir / "logs" / "stdout.log"

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:PORT`` of the client listener; raises RuntimeError before the first start."""
        if self.port is None:
            raise RuntimeError("the broker has no port yet: call start() first")
        return f"{HOST}:{self.port}"

    @property
    def tls_bootstrap_servers(self) -> str:
        """``127.0.0.1:PORT`` of the TLS listener; RuntimeError without ``tls`` or before the first start."""
        if self.tls_port is None:
            raise RuntimeError("the broker has no TLS listener: pass tls= and call start() first")
        return f"{HOST}:{self.tls_port}"

    @property
    def admin_password_path(self) -> Path:
        """The file holding the administrator's password (created at the first start)."""
        return self.run_dir / ADMIN_PASSWORD_FILE

    def admin_settings(self) -> KafkaSettings:
        """Client settings of the broker's administrator (the one super user); after the first start."""
        return KafkaSettings(
            bootstrap_servers=self.bootstrap_servers,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="PLAIN",
            sasl_username=ADMIN_USER,
            sasl_password_file=str(self.admin_password_path),
        )

    @property
    def pid(self) -> int | None:
        """Process id of the running broker, or None."""
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        return None

    def is_running(self) -> bool:
        """True while the broker process started by this object is alive."""
        return self.pid is not None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the broker and return once it serves metadata requests as an unfenced broker.

        Fetches the jars if needed, formats ``data/`` with a random cluster id if it is not
        formatted yet, writes the configuration and launches the JVM. Raises
        :class:`KafkaStartError` with the tail of the broker's log if it exits or is not ready
        within ``startup_timeout`` seconds (the process is then killed). Calling it while the
        broker runs does nothing.
        """
        if self.is_running():
            return
        lib = self._lib_dir or ensure_jars(self._repo_root or find_repo_root())
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Ports picked here may be taken by someone else before the broker binds them: on the
        # first start only, such a clash is retried with new ports.
        first_start = self._ports_missing()
        attempts = 3 if first_start else 1
        for attempt in range(attempts):
            if self._ports_missing():
                broker, controller, tls = free_ports(3)
                self.port = self.port or broker
                self.controller_port = self.controller_port or controller
                if self.tls is not None:
                    self.tls_port = self.tls_port or tls
            try:
                self._launch(lib)
                return
            except KafkaStartError as error:
                if attempt + 1 < attempts and "Address already in use" in str(error):
                    self.port = self._fixed_port
                    self.controller_port = self._fixed_controller_port
                    self.tls_port = None
                    continue
                raise

    def _ports_missing(self) -> bool:
        return (
            self.port is None
            or self.controller_port is None
            or (self.tls is not None and self.tls_port is None)
        )

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the broker: SIGTERM (a clean shutdown), then SIGKILL after ``timeout`` seconds.

        Returns once the process has exited and been reaped; data and ports are kept for a
        later :meth:`start`. Does nothing if the broker is not running.
        """
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._forget_process()

    def kill(self) -> None:
        """Kill the broker at once (SIGKILL), as a crash would; returns once it has exited."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        self._forget_process()

    def restart(self, timeout: float = 30.0) -> None:
        """Stop the broker if it runs, then start it again on the same ports with the same data."""
        self.stop(timeout)
        self.start()

    def detach(self) -> None:
        """Forget the running broker without stopping it, so it outlives this object.

        It can then be stopped only by pid (as ``down`` does, from ``kafka.pid``).
        """
        self._proc = None
        self._cds_dump = None

    def wait_ready(self, timeout: float) -> None:
        """Block until the broker answers a cluster description listing itself, unfenced.

        Raises :class:`KafkaStartError` (with the log tail) if the process exits first or the
        timeout passes.
        """
        deadline = time.monotonic() + timeout
        last_reason = "no attempt made"
        while True:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                code = None if proc is None else proc.returncode
                raise KafkaStartError(f"the Kafka broker exited (code {code}){self._log_excerpt()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KafkaStartError(
                    f"the Kafka broker was not ready after {timeout:.0f}s "
                    f"({last_reason}){self._log_excerpt()}"
                )
            reason = self._probe(min(5000, max(500, int(remaining * 1000))))
            if reason is None:
                return
            last_reason = reason
            time.sleep(0.1)

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

    # -- internals -----------------------------------------------------------------------

    def _launch(self, lib: Path) -> None:
        self._write_config()
        self._cds_archive = _cds_archive(lib, self.jvm_opts)
        self._cds_dump = None
        if not (self.data_dir / "meta.properties").is_file():
            self._format(lib)
        command = [
            _java(),
            f"-Xmx{self.heap}",
            *self.jvm_opts,
            *self._cds_options(dump=True),
            f"-Dlog4j2.configurationFile={self.run_dir / LOG4J_FILE}",
            "-cp",
            f"{lib}/*",
            _KAFKA_MAIN,
            str(self.config_path),
        ]
        started = time.monotonic()
        with self.stdout_path.open("ab") as out:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.run_dir,
                start_new_session=True,
                preexec_fn=parent_death_hook() if self.die_with_parent else None,
            )
        try:
            self.wait_ready(self.startup_timeout)
        except BaseException:
            self.kill()
            raise
        self.last_start_seconds = time.monotonic() - started
        self._write_state()

    def _format(self, lib: Path) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            _java(),
            "-Xmx128m",
            *self.jvm_opts,
            *self._cds_options(dump=False),
            f"-Dlog4j2.configurationFile={self.run_dir / LOG4J_FILE}",
            "-cp",
            f"{lib}/*",
            _STORAGE_MAIN,
            "format",
            "--cluster-id",
            _random_cluster_id(),
            "--config",
            str(self.config_path),
        ]
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()[-4000:]
            raise KafkaStartError(f"formatting {self.data_dir} failed:\n{output}")

    def _settings(self) -> dict[str, str]:
        listeners = f"SASL_PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}"
        advertised = f"SASL_PLAINTEXT://{HOST}:{self.port}"
        protocols = "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT"
        tls: dict[str, str] = {}
        if self.tls is not None:
            listeners += f",SSL://{HOST}:{self.tls_port}"
            advertised += f",SSL://{HOST}:{self.tls_port}"
            protocols += ",SSL:SSL"
            tls = {
                "listener.name.ssl.ssl.keystore.type": "PEM",
                "listener.name.ssl.ssl.keystore.location": str(self.tls.keystore),
                "listener.name.ssl.ssl.truststore.type": "PEM",
                "listener.name.ssl.ssl.truststore.location": str(self.tls.client_ca),
                # No certificate, no connection: TLS clients are authenticated by it alone.
                "listener.name.ssl.ssl.client.auth": "required",
                "listener.name.ssl.ssl.principal.mapping.rules": SSL_PRINCIPAL_RULES,
            }
        password = read_or_create_secret(self.admin_password_path)
        # The broker and its controller authenticate to each other as the administrator (PLAIN:
        # KRaft cannot use SCRAM on the controller listener); clients use SCRAM-SHA-512, whose
        # credentials live in the cluster metadata, or PLAIN for the administrator.
        plain = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{ADMIN_USER}" password="{password}" user_{ADMIN_USER}="{password}";'
        )
        settings = {
            "process.roles": "broker,controller",
            "node.id": str(NODE_ID),
            "controller.quorum.voters": f"{NODE_ID}@{HOST}:{self.controller_port}",
            "listeners": listeners,
            "advertised.listeners": advertised,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "listener.security.protocol.map": protocols,
            "sasl.enabled.mechanisms": "SCRAM-SHA-512,PLAIN",
            "sasl.mechanism.inter.broker.protocol": "PLAIN",
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": plain,
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": plain,
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"User:{ADMIN_USER}",
            "log.dirs": str(self.data_dir),
            # Topics must be created explicitly: a misspelt topic name fails loudly.
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
            "default.replication.factor": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # After a crash (SIGKILL) the restarted broker can register only once the old
            # incarnation's session has expired: keep that wait short (default 9 s).
            "broker.session.timeout.ms": "3000",
            "broker.heartbeat.interval.ms": "500",
            # Lets tests use short consumer session timeouts to see failover quickly.
            "group.min.session.timeout.ms": "1000",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "1",
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
            **tls,
        }
        settings.update(self.extra_config)
        return settings

    def _write_config(self) -> None:
        lines = [f"{key}={value}" for key, value in self._settings().items()]
        # It holds the administrator's password: readable by its owner only.
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        self.config_path.chmod(0o600)
        log4j = [
            "status = warn",
            "appender.file.type = RollingFile",
            "appender.file.name = FILE",
            f"appender.file.fileName = {self.log_path}",
            f"appender.file.filePattern = {self.log_path}.%i",
            "appender.file.layout.type = PatternLayout",
            "appender.file.layout.pattern = [%d] %p %m (%c)%n",
            "appender.file.policies.type = Policies",
            "appender.file.policies.size.type = SizeBasedTriggeringPolicy",
            "appender.file.policies.size.size = 20MB",
            "appender.file.strategy.type = DefaultRolloverStrategy",
            "appender.file.strategy.max = 2",
            "rootLogger.level = INFO",
            "rootLogger.appenderRef.file.ref = FILE",
        ]
        (self.run_dir / LOG4J_FILE).write_text("\n".join(log4j) + "\n", encoding="utf-8")

    def _write_state(self) -> None:
        pid = self.pid
        state = {
            "pid": pid,
            "port": self.port,
            "controller_port": self.controller_port,
            "tls_port": self.tls_port,
            "bootstrap_servers": self.bootstrap_servers,
            "config": str(self.config_path),
            "cds_dump": str(self._cds_dump) if self._cds_dump else None,
            "cds_archive": str(self._cds_archive) if self._cds_archive else None,
        }
        (self.run_dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        (self.run_dir / PID_FILE).write_text(f"{pid}\n", encoding="utf-8")

    def _cds_options(self, *, dump: bool) -> list[str]:
        """JVM options that use the shared archive, or (``dump``) have this JVM write it."""
        archive = self._cds_archive
        if archive is None:
            return []
        if archive.is_file():
            return [f"-XX:SharedArchiveFile={archive}"]
        if not dump:
            return []
        archive.parent.mkdir(parents=True, exist_ok=True)
        self._cds_dump = archive.with_name(f"{archive.name}.{uuid.uuid4().hex}.partial")
        return [f"-XX:ArchiveClassesAtExit={self._cds_dump}"]

    def _forget_process(self) -> None:
        self._proc = None
        _promote_cds_dump(self._cds_dump, self._cds_archive)
        self._cds_dump = None
        with contextlib.suppress(FileNotFoundError):
            (self.run_dir / PID_FILE).unlink()

    def _probe(self, timeout_ms: int) -> str | None:
        """Return None if the broker is ready, else why not."""
        if self.port is None or not _port_accepts(self.port):
            return "client port not accepting connections"
        try:
            admin = _admin_client(self.admin_settings(), timeout_ms)
        except Exception as error:
            return f"admin client: {error!r}"
        try:
            cluster = admin.describe_cluster()
        except Exception as error:
            return f"describe cluster: {error!r}"
        finally:
            admin.close()
        for broker in cluster.get("brokers", []):
            if broker.get("broker_id") == NODE_ID and not broker.get("is_fenced", False):
                return None
        return f"broker {NODE_ID} not registered or fenced: {cluster.get('brokers')}"

    def _log_excerpt(self, lines: int = 40) -> str:
        parts = []
        for path in (self.log_path, self.stdout_path):
            tail = _tail(path, lines)
            if tail:
                parts.append(f"\n--- last lines of {path} ---\n{tail}")
        return "".join(parts) or f"\n(no output in {self.log_path.parent})"


# --------------------------------------------------------------------------------------------
# command line


def _running_pid(run_dir: Path) -> int | None:
    """The pid recorded in ``run_dir`` if that process is alive and is this run dir's broker."""
    try:
        pid = int((run_dir / PID_FILE).read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
    if not _pid_alive(pid):
        return None
    cmdline = _pid_cmdline(pid)
    if _KAFKA_MAIN not in cmdline or str(run_dir / CONFIG_FILE) not in cmdline:
        return None
    return pid


def _cmd_up(run_dir: Path, port: int | None, timeout: float) -> int:
    with _file_lock(run_dir / ".lock"):
        pid = _running_pid(run_dir)
        state = read_broker_state(run_dir) or {}
        if pid is not None:
            print(f"bootstrap: {state.get('bootstrap_servers', '?')}")
            print(f"already running (pid {pid})")
            return 0
        controller_port = state.get("controller_port")
        if port is None:
            port = state.get("port") or 9092
        elif port == 0:
            port = None
        if port is not None and not _port_is_free(port):
            print(
                f"error: port {port} on {HOST} is in use; pass --port N, or --port 0 for any",
                file=sys.stderr,
            )
            return 1
        if not isinstance(controller_port, int) or not _port_is_free(controller_port):
            controller_port = None
        kafka = LocalKafka(
            run_dir,
            port=port,
            controller_port=controller_port,
            startup_timeout=timeout,
            die_with_parent=False,
        )
        try:
            kafka.start()
        except KafkaStartError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(f"bootstrap: {kafka.bootstrap_servers}")
        print(f"started in {kafka.last_start_seconds:.2f}s (pid {kafka.pid}, logs in {kafka.log_path})")
        kafka.detach()
        return 0


def _cmd_down(run_dir: Path, timeout: float) -> int:
    with _file_lock(run_dir / ".lock"):
        pid = _running_pid(run_dir)
        if pid is None:
            with contextlib.suppress(FileNotFoundError):
                (run_dir / PID_FILE).unlink()
            print("not running")
            return 0
        os.kill(pid, signal.SIGTERM)
        if not _wait_pid_gone(pid, timeout):
            os.kill(pid, signal.SIGKILL)
            if not _wait_pid_gone(pid, 10):
                print(f"error: pid {pid} survived SIGKILL", file=sys.stderr)
                return 1
        with contextlib.suppress(FileNotFoundError):
            (run_dir / PID_FILE).unlink()
        state = read_broker_state(run_dir) or {}
        dump, archive = state.get("cds_dump"), state.get("cds_archive")
        if isinstance(dump, str) and isinstance(archive, str):
            _promote_cds_dump(Path(dump), Path(archive))
        print(f"stopped (pid {pid})")
        return 0


def _cmd_status(run_dir: Path) -> int:
    pid = _running_pid(run_dir)
    if pid is None:
        print("not running")
        return 3
    state = read_broker_state(run_dir) or {}
    print(f"bootstrap: {state.get('bootstrap_servers', '?')}")
    print(f"running (pid {pid})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m preflight_common.localkafka``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m preflight_common.localkafka",
        description="Run a local single-node Kafka broker (KRaft) on 127.0.0.1.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the broker detached and wait until it is ready")
    up.add_argument("--run-dir", type=Path, required=True)
    up.add_argument(
        "--port",
        type=int,
        default=None,
        help="client port (default: the previous one in this run dir, else 9092; 0: any free)",
    )
    up.add_argument("--timeout", type=float, default=120.0, help="readiness timeout, seconds")
    down = commands.add_parser("down", help="stop the broker started by 'up' and wait for it")
    down.add_argument("--run-dir", type=Path, required=True)
    down.add_argument("--timeout", type=float, default=30.0, help="seconds before SIGKILL")
    status = commands.add_parser("status", help="exit 0 if the broker runs, 3 if not")
    status.add_argument("--run-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir).resolve()
    if args.command == "up":
        return _cmd_up(run_dir, args.port, args.timeout)
    if args.command == "down":
        return _cmd_down(run_dir, args.timeout)
    return _cmd_status(run_dir)


if __name__ == "__main__":
    sys.exit(main())
