"""The embedded Preflight stack on one machine: one supervisor, every process, a run folder.

    python deploy/local/stack.py up [--run-dir run/stack]     start (or reuse) the stack; print ports
    python deploy/local/stack.py down [--run-dir run/stack]   stop exactly what `up` started
    python deploy/local/stack.py status [--run-dir run/stack] exit 0 when running

--run-dir defaults to $PREFLIGHT_STACK_DIR when set (as `make demo` does), else run/stack.

`up` starts a detached supervisor that runs the local Apache Kafka broker, creates the topics,
migrates each service's SQLite store, issues the stack's tokens (once), then runs the four
services and the web console, the reference model server (standing in for a lab's endpoint), a
webhook sink and an SMTP sink (standing in for stakeholders' receivers) as child processes. A
child that dies, or a service that stops making progress, is restarted (see `Supervisor`). The
children get none of the caller's `PREFLIGHT_*` variables except those named in
PREFLIGHT_STACK_PASS_ENV (comma-separated), e.g. `PREFLIGHT_BENCHMARK_CATALOG_FILE`. Everything
lives in the run folder: `logs/<name>.log`, `data/`, `evals/`, `tokens.json` and `secrets.env` (mode 0600),
`secrets/` (each secret a child needs in a 0600 file, handed over as `<NAME>_FILE`: no child has a
secret in its environment or its arguments),
`preflight.toml` (a client profile per principal: `lab` by default, `reviewer`, `admin`, … with
its token in `tokens/<name>.token`, which the SDK and the `preflight` command pick up),
`stack.json` (pids, ports), `traces.jsonl` (OpenTelemetry spans of every process). `down`
stops the supervisor, which stops its children.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from preflight_common import bus
from preflight_common.config import KafkaSettings, write_secret_file
from preflight_common.liveness import LIVENESS_SERVICE
from preflight_common.localkafka import LocalKafka, parent_death_hook

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEFAULT_PORTS = {
    "kafka": 19092,
    "intake": 50051,
    "benchmark": 50052,
    "clearinghouse": 50053,
    "notifier": 50054,
    "reference-model": 8800,
    "webhook-sink": 18090,
    "smtp-sink": 18025,
    "console": 18088,
}
SERVICES = ("intake", "benchmark", "clearinghouse", "notifier")
# (role, organisation, sectors) of the tokens the stack issues for its users and processes.
PRINCIPALS: dict[str, tuple[str, str, list[str]]] = {
    "admin": ("admin", "preflight", []),
    "service": ("service", "preflight", []),
    "lab": ("lab", "example-lab", []),
    "reviewer": ("reviewer", "caisi", []),
    "operator_hospital": ("operator", "st-mary-hospital", ["healthcare"]),
    "operator_utility": ("operator", "valley-water", ["water"]),
}
# The operator organisations registered for alert topics (each is also a Kafka principal).
PARTICIPANTS = bus.Participants(
    tuple(
        bus.Organisation(organisation, tuple(sectors))
        for role, organisation, sectors in PRINCIPALS.values()
        if role == "operator"
    )
)


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} [stack] {message}", flush=True)


@dataclass
class Child:
    """A supervised process."""

    name: str
    argv: list[str]
    env: dict[str, str]
    health_port: int | None = None
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    started_at: float = 0.0
    # Restarts since the child last ran for a healthy period: they set the backoff.
    failures: int = 0
    # When the child last passed its liveness check (health_port only), whether it ever did, and
    # when to check next.
    last_live: float = 0.0
    seen_live: bool = False
    next_probe: float = 0.0


class Stack:
    """Paths and settings of one run folder."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir.resolve()
        self.logs = self.run_dir / "logs"
        self.data = self.run_dir / "data"
        self.state_file = self.run_dir / "stack.json"
        self.tokens_file = self.run_dir / "tokens.json"
        self.secrets_file = self.run_dir / "secrets.env"
        self.kafka_dir = self.run_dir / "kafka"
        self.kafka_credentials = self.run_dir / "kafka-credentials"
        self.participants_file = self.run_dir / "participants.yaml"
        self.supervisor_pid = self.run_dir / "supervisor.pid"
        self._written = ""
        self.ports = {
            name: int(os.environ.get(f"PREFLIGHT_STACK_PORT_{name.upper().replace('-', '_')}", p))
            for name, p in DEFAULT_PORTS.items()
        }

    # -- state -------------------------------------------------------------------------

    def read_state(self) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self.state_file.read_text()))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def write_state(self, state: dict[str, Any]) -> None:
        """Replace stack.json atomically, only when the state changed (the supervisor calls it every tick)."""
        text = json.dumps(state, indent=2)
        if text == self._written:
            return
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self.state_file)
        self._written = text

    def supervisor_alive(self) -> int | None:
        try:
            pid = int(self.supervisor_pid.read_text())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    # -- secrets and tokens ------------------------------------------------------------

    def secrets(self) -> dict[str, str]:
        """Keys generated once per run folder (never committed, never logged)."""
        if not self.secrets_file.exists():
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

            signing = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
            )
            values = {
                "PREFLIGHT_INTAKE_ENCRYPTION_KEYS": "local1:"
                + base64.b64encode(secrets.token_bytes(32)).decode(),
                "PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY": base64.b64encode(signing).decode(),
                "PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY_ID": "local-ed25519-1",
                "PREFLIGHT_NOTIFIER_WEBHOOK_SECRET_SINK": secrets.token_urlsafe(32),
                "PREFLIGHT_REFERENCE_MODEL_API_KEY": "sk-ref-" + secrets.token_urlsafe(24),
            }
            write_secret_file(self.secrets_file, "\n".join(f"{k}={v}" for k, v in values.items()))
        pairs = (line.split("=", 1) for line in self.secrets_file.read_text().splitlines() if "=" in line)
        return {k: v for k, v in pairs}

    def tokens(self) -> dict[str, str]:
        return dict(json.loads(self.tokens_file.read_text()))

    def secret_file(self, name: str, value: str) -> str:
        """`value` in `secrets/<name>` (mode 0600): how a child gets a secret, as `<NAME>_FILE`
        (`preflight_common.config.secret`), never in its environment or its arguments."""
        return str(write_secret_file(self.run_dir / "secrets" / name, value))


def _write_client_profiles(stack: Stack, tokens: dict[str, str]) -> None:
    """`preflight.toml`: a client profile per principal (the SDK and the CLI find it from the
    repository, see `preflight.sdk.config`), each token in its own file under `tokens/` (0600)."""
    targets = "".join(f'{service} = "127.0.0.1:{stack.ports[service]}"\n' for service in SERVICES)
    profiles = []
    for name, token in tokens.items():
        write_secret_file(stack.run_dir / "tokens" / f"{name}.token", token)
        profiles.append(
            f'[profiles.{name}]\ntoken_file = "tokens/{name}.token"\n\n[profiles.{name}.targets]\n{targets}'
        )
    header = "# Written by deploy/local/stack.py: how the SDK and the CLI reach this stack.\n"
    (stack.run_dir / "preflight.toml").write_text(header + 'profile = "lab"\n\n' + "\n".join(profiles))


def _db_url(stack: Stack, service: str) -> str:
    return f"sqlite:///{stack.data / service}.db"


def _base_env(stack: Stack) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFLIGHT_")}
    env.update(
        PREFLIGHT_KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{stack.ports['kafka']}",
        PREFLIGHT_KAFKA_SESSION_TIMEOUT="6",
        PREFLIGHT_KAFKA_HEARTBEAT_INTERVAL="1",
        PREFLIGHT_IDENTITY_TARGET=f"127.0.0.1:{stack.ports['intake']}",
        PREFLIGHT_INTAKE_TARGET=f"127.0.0.1:{stack.ports['intake']}",
        PREFLIGHT_OTEL_FILE=str(stack.run_dir / "traces.jsonl"),
        PYTHONUNBUFFERED="1",
    )
    return env


def kafka_settings(stack: Stack, principal: str) -> KafkaSettings:
    """How `principal` (a service's or an operator's) reaches the stack's broker; the administrator
    (`admin`) is the broker's super user, used only to provision."""
    if principal == "admin":
        return LocalKafka(stack.kafka_dir, port=stack.ports["kafka"]).admin_settings()
    return KafkaSettings(
        bootstrap_servers=f"127.0.0.1:{stack.ports['kafka']}",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=principal,
        sasl_password_file=str(stack.kafka_credentials / f"{principal}.password"),
    )


def _service_env(stack: Stack, service: str, keys: dict[str, str], tokens: dict[str, str]) -> dict[str, str]:
    env = _base_env(stack)
    env.update(kafka_settings(stack, bus.service_principal(service)).env())
    env.update(
        PREFLIGHT_DATABASE_URL=_db_url(stack, service),
        PREFLIGHT_GRPC_LISTEN=f"127.0.0.1:{stack.ports[service]}",
        OTEL_SERVICE_NAME=f"preflight-{service}",
    )
    if tokens:
        env["PREFLIGHT_SERVICE_TOKEN_FILE"] = stack.secret_file("service.token", tokens["service"])
    if service == "intake":
        keyring = keys["PREFLIGHT_INTAKE_ENCRYPTION_KEYS"]
        env["PREFLIGHT_INTAKE_ENCRYPTION_KEYS_FILE"] = stack.secret_file("intake-encryption.keys", keyring)
        env["PREFLIGHT_CLEARINGHOUSE_TARGET"] = f"127.0.0.1:{stack.ports['clearinghouse']}"
    elif service == "benchmark":
        env.update(
            PREFLIGHT_BENCHMARK_EXECUTOR="local",
            PREFLIGHT_BENCHMARK_LOG_ROOT=str(stack.run_dir / "evals"),
            PREFLIGHT_BENCHMARK_WORK_DIR=str(stack.data / "benchmark-work"),
            PREFLIGHT_BENCHMARK_MAX_CONCURRENCY="2",
        )
    elif service == "clearinghouse":
        signing_key = keys["PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY"]
        env["PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY_FILE"] = stack.secret_file(
            "clearinghouse-signing.key", signing_key
        )
        env["PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY_ID"] = keys["PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY_ID"]
        env["PREFLIGHT_CLEARINGHOUSE_STATE_DIR"] = str(stack.data / "clearinghouse")
        # Sharing previews name the registered organisations a label and audience reach.
        env["PREFLIGHT_PARTICIPANTS_FILE"] = str(stack.participants_file)
    elif service == "notifier":
        env.update(
            PREFLIGHT_PARTICIPANTS_FILE=str(stack.participants_file),
            PREFLIGHT_NOTIFIER_ROUTING_FILE=str(stack.run_dir / "routing.yaml"),
            PREFLIGHT_NOTIFIER_SMTP_HOST="127.0.0.1",
            PREFLIGHT_NOTIFIER_SMTP_PORT=str(stack.ports["smtp-sink"]),
            PREFLIGHT_NOTIFIER_SMTP_SECURITY="none",
            PREFLIGHT_NOTIFIER_SMTP_FROM="preflight@localhost",
        )
    return env


def _console_env(stack: Stack) -> dict[str, str]:
    """The console: the services' addresses; no token (each user signs in with their own), a
    session key in the data folder."""
    env = _base_env(stack)
    env.update(
        PREFLIGHT_CONSOLE_LISTEN=f"127.0.0.1:{stack.ports['console']}",
        PREFLIGHT_BENCHMARK_TARGET=f"127.0.0.1:{stack.ports['benchmark']}",
        PREFLIGHT_CLEARINGHOUSE_TARGET=f"127.0.0.1:{stack.ports['clearinghouse']}",
        PREFLIGHT_NOTIFIER_TARGET=f"127.0.0.1:{stack.ports['notifier']}",
        PREFLIGHT_CONSOLE_SESSION_KEY_FILE=str(stack.data / "console" / "session.key"),
        PREFLIGHT_CONSOLE_SESSION_DB=str(stack.data / "console" / "sessions.sqlite"),
    )
    return env


def _routing(webhook_port: int, webhook_secret_file: str) -> str:
    """The shipped routing (deadline thresholds included) with the stack's local receivers:
    every alert to the reviewers' inbox and, for review alerts, the local webhook sink
    (standing in for a stakeholder's endpoint, signed with the secret in `webhook_secret_file`)
    and the lab's contacts."""
    import yaml

    shipped = resources.files("preflight_notifier") / "routing" / "routing.yaml"
    routing = yaml.safe_load(shipped.read_text())
    review = {"matchers": ['kind=~"review_deadline|review_met"'], "continue": True}
    routing["route"] = {
        "receiver": "reviewers",
        "group_by": ["kind", "subject_id"],
        "group_wait": "1s",
        "group_interval": "5s",
        "routes": [
            {**review, "receiver": "lab-contacts"},
            {**review, "receiver": "reviewer-webhook"},
            {"receiver": "reviewers"},
        ],
    }
    routing["receivers"] = [
        {
            "name": "reviewers",
            "audience": {"role": "reviewer"},
            "email": {"to": ["reviewers@caisi.localhost"]},
        },
        {
            "name": "reviewer-webhook",
            "audience": {"role": "reviewer"},
            "webhook": {
                "url": f"http://127.0.0.1:{webhook_port}/alerts",
                "secret_file": webhook_secret_file,
                "timeout": "5s",
            },
            "retry": {"initial": "1s", "maximum": "10s", "max_attempts": 5},
        },
        {"name": "lab-contacts", "audience": "lab_contacts", "email": {}},
    ]
    return yaml.safe_dump(routing, sort_keys=False)


def _participants_yaml() -> str:
    import yaml

    organisations = [{"name": o.name, "sectors": list(o.sectors)} for o in PARTICIPANTS.organisations]
    return yaml.safe_dump({"organisations": organisations}, sort_keys=False)


def _run(argv: list[str], env: dict[str, str], log_path: Path) -> str:
    with open(log_path, "ab") as out:
        result = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=out, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed (exit {result.returncode}); see {log_path}")
    return result.stdout.decode()


def _issue_tokens(stack: Stack, keys: dict[str, str]) -> dict[str, str]:
    if stack.tokens_file.exists():
        return stack.tokens()
    env = _service_env(stack, "intake", keys, {})
    tokens: dict[str, str] = {}
    for name, (role, organisation, sectors) in PRINCIPALS.items():
        argv = [
            str(BIN / "preflight-intake"),
            "token",
            "create",
            "--role",
            role,
            "--organisation",
            organisation,
            "--principal-id",
            f"{name}@{organisation}",
            "--expires-in-days",
            "30",
        ]
        for sector in sectors:
            argv += ["--sector", sector]
        out = _run(argv, env, stack.logs / "setup.log")
        tokens[name] = out.strip().splitlines()[-1]
    write_secret_file(stack.tokens_file, json.dumps(tokens, indent=2))
    return tokens


def _healthy(port: int, service: str = "") -> bool:
    """Whether the gRPC health service on `port` answers SERVING for `service` within a second."""
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=1.0
            )
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


def _passed_env() -> dict[str, str]:
    """The variables named in PREFLIGHT_STACK_PASS_ENV (comma-separated) with the supervisor's values.

    Every other `PREFLIGHT_*` variable of the caller's environment is dropped from the children's:
    a stack is configured by the run folder and on purpose, never by what a shell happens to export.
    """
    names = [name.strip() for name in os.environ.get("PREFLIGHT_STACK_PASS_ENV", "").split(",")]
    return {name: os.environ[name] for name in names if name and name in os.environ}


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Supervisor:
    """Runs the children, restarts the ones that die or hang, stops them all on SIGTERM.

    Each child is supervised on its own: a child that exits is restarted after a backoff that
    doubles with each quick exit (0.5 s up to 10 s) and starts over once the child has run for
    PREFLIGHT_STACK_HEALTHY_RUN seconds (default 60); Kafka is restarted in a thread, so that a
    slow broker start never delays restarting a service. A service that fails its liveness check
    (no answer, or "preflight.liveness" not SERVING) for PREFLIGHT_STACK_LIVENESS_BUDGET seconds
    (default 30; PREFLIGHT_STACK_START_BUDGET, default 180, before its first live answer) is
    SIGKILLed and restarted. The stack is ready once every service serves and has answered live.
    """

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.stopping = False
        self.children: list[Child] = []
        self.kafka: LocalKafka | None = None
        self.passed_env = _passed_env()
        self.healthy_run = float(os.environ.get("PREFLIGHT_STACK_HEALTHY_RUN", "60"))
        self.liveness_budget = float(os.environ.get("PREFLIGHT_STACK_LIVENESS_BUDGET", "30"))
        self.start_budget = float(os.environ.get("PREFLIGHT_STACK_START_BUDGET", "180"))
        self.kafka_delay = float(os.environ.get("PREFLIGHT_STACK_KAFKA_RESTART_DELAY", "1"))
        # Restarts the broker; it lives until the broker is stopped for good, because the broker
        # dies with the thread that started it (die_with_parent: the parent-death signal follows
        # the starting thread, not the process).
        self._kafka_keeper = threading.Thread(target=self._keep_kafka, name="kafka-keeper", daemon=True)
        self._kafka_stopped = threading.Event()

    def prepare(self) -> None:
        stack = self.stack
        for folder in (stack.logs, stack.data, stack.run_dir / "evals", stack.run_dir / "sinks"):
            folder.mkdir(parents=True, exist_ok=True)
        self.write_state("starting")
        self.kafka = LocalKafka(stack.kafka_dir, port=stack.ports["kafka"], die_with_parent=True)
        log(f"starting Apache Kafka on 127.0.0.1:{stack.ports['kafka']}")
        self.kafka.start()
        keys = stack.secrets()
        base = _base_env(stack)
        log("creating topics, principals and ACLs")
        stack.participants_file.write_text(_participants_yaml())
        provision_env = {
            **base,
            **kafka_settings(stack, "admin").env(),
            "PREFLIGHT_PARTICIPANTS_FILE": str(stack.participants_file),
        }
        _run(
            [str(BIN / "preflight-topics"), "--acls", "--credentials-dir", str(stack.kafka_credentials)],
            provision_env,
            stack.logs / "setup.log",
        )
        for service in SERVICES:
            log(f"migrating {service}")
            _run(
                [str(BIN / f"preflight-{service}"), "migrate"],
                _service_env(stack, service, keys, {}),
                stack.logs / "setup.log",
            )
        tokens = _issue_tokens(stack, keys)
        _write_client_profiles(stack, tokens)
        webhook_secret = stack.secret_file(
            "webhook-sink.secret", keys["PREFLIGHT_NOTIFIER_WEBHOOK_SECRET_SINK"]
        )
        (stack.run_dir / "routing.yaml").write_text(_routing(stack.ports["webhook-sink"], webhook_secret))
        sinks = stack.run_dir / "sinks"
        py = str(BIN / "python")
        self.children = [
            Child(
                service,
                [str(BIN / f"preflight-{service}"), "serve"],
                _service_env(stack, service, keys, tokens),
                health_port=stack.ports[service],
            )
            for service in SERVICES
        ]
        model_env = _base_env(stack)
        model_env["PREFLIGHT_REFERENCE_MODEL_API_KEY_FILE"] = stack.secret_file(
            "reference-model.key", keys["PREFLIGHT_REFERENCE_MODEL_API_KEY"]
        )
        self.children += [
            Child(
                "reference-model",
                [
                    str(BIN / "preflight-reference-model"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(stack.ports["reference-model"]),
                ],
                model_env,
            ),
            Child(
                "webhook-sink",
                [
                    py,
                    str(ROOT / "deploy/local/sinks.py"),
                    "webhook",
                    "--port",
                    str(stack.ports["webhook-sink"]),
                    "--out",
                    str(sinks / "webhook.jsonl"),
                ],
                {**base, "PREFLIGHT_SINK_SECRET_FILE": webhook_secret},
            ),
            Child("console", [str(BIN / "preflight-console"), "serve"], _console_env(stack)),
            Child(
                "smtp-sink",
                [
                    py,
                    str(ROOT / "deploy/local/sinks.py"),
                    "smtp",
                    "--port",
                    str(stack.ports["smtp-sink"]),
                    "--out",
                    str(sinks / "mail.jsonl"),
                ],
                base,
            ),
        ]

    def start(self, child: Child) -> None:
        out = open(self.stack.logs / f"{child.name}.log", "ab")  # noqa: SIM115 - owned by the child
        child.started_at = child.last_live = time.monotonic()
        child.seen_live = False
        child.process = subprocess.Popen(
            child.argv,
            env={**child.env, **self.passed_env},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=self.stack.run_dir,
            preexec_fn=parent_death_hook(),
        )
        out.close()

    def write_state(self, status: str) -> None:
        self.stack.write_state(
            {
                "status": status,
                "supervisor_pid": os.getpid(),
                "ports": self.stack.ports,
                "pids": {
                    c.name: c.process.pid for c in self.children if c.process and c.process.poll() is None
                },
                "restarts": {c.name: c.restarts for c in self.children},
                "kafka_pid": self.kafka.pid if self.kafka else None,
                "run_dir": str(self.stack.run_dir),
            }
        )

    def ready(self) -> bool:
        for child in self.children:
            if child.process is None or child.process.poll() is not None:
                return False
            # Ready: serving, and seen live (so that liveness is judged by its budget from now on).
            if child.health_port and not (child.seen_live and _healthy(child.health_port)):
                return False
        other = [self.stack.ports[n] for n in ("reference-model", "webhook-sink", "smtp-sink", "console")]
        return all(_port_open(port) for port in other)

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            self.prepare()
            for child in self.children:
                log(f"starting {child.name}")
                self.start(child)
            self._kafka_keeper.start()
            announced = False
            while not self.stopping:
                for child in self.children:
                    self._supervise(child)
                if not announced and self.ready():
                    announced = True
                    log("ready")
                self.write_state("ready" if announced else "starting")
                time.sleep(0.3)
        except Exception as exc:  # report why the stack could not start, then clean up
            log(f"failed: {exc}")
            self.write_state(f"failed: {exc}")
        finally:
            self.shutdown()

    def _keep_kafka(self) -> None:
        """Restart a broker that is down (after PREFLIGHT_STACK_KAFKA_RESTART_DELAY s), until the
        stack stops; return once the broker is stopped."""
        assert self.kafka is not None
        down_since: float | None = None
        while not self.stopping:
            if self.kafka.is_running():
                down_since = None
            else:
                down_since = down_since or time.monotonic()
                if time.monotonic() - down_since >= self.kafka_delay:
                    log("Kafka is down; restarting it")
                    down_since = None
                    try:
                        self.kafka.start()
                        log("Kafka restarted")
                    except Exception as exc:  # a broker that did not come back is tried again
                        log(f"Kafka did not restart: {exc}")
            time.sleep(0.3)
        self._kafka_stopped.wait()

    def _supervise(self, child: Child) -> None:
        """Kill `child` if it hangs; restart it, after its backoff, once it has exited."""
        assert child.process is not None
        now = time.monotonic()
        if child.process.poll() is None:
            self._probe_liveness(child, now)
            budget = self.liveness_budget if child.seen_live else self.start_budget
            if child.health_port is None or now - child.last_live <= budget:
                return
            log(f"{child.name} failed its liveness check for {budget:.0f}s; killing it")
            child.process.kill()
            child.process.wait()
        if child.next_start == 0.0:
            if now - child.started_at >= self.healthy_run:
                child.failures = 0
            child.next_start = now + min(10.0, 0.5 * 2 ** min(child.failures, 5))
            log(f"{child.name} exited with {child.process.returncode}; restarting")
        elif now >= child.next_start:
            child.restarts += 1
            child.failures += 1
            child.next_start = 0.0
            self.start(child)

    @staticmethod
    def _probe_liveness(child: Child, now: float) -> None:
        """Check the child's "preflight.liveness" health about every second (a hung child costs the
        loop the check's 1 s timeout). In this thread only: forking children while another thread
        is inside a gRPC call is not safe."""
        if child.health_port is None or now < child.next_probe:
            return
        child.next_probe = now + 1.0
        if _healthy(child.health_port, LIVENESS_SERVICE):
            child.last_live = time.monotonic()
            child.seen_live = True

    def _on_signal(self, *_: object) -> None:
        self.stopping = True

    def shutdown(self) -> None:
        for child in self.children:
            if child.process and child.process.poll() is None:
                child.process.terminate()
        deadline = time.monotonic() + 15
        for child in self.children:
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        if self.kafka is not None:
            self.kafka.stop()
        self._kafka_stopped.set()
        status = (self.read_status() or "").startswith("failed")
        self.write_state("failed" if status else "stopped")
        self.stack.supervisor_pid.unlink(missing_ok=True)

    def read_status(self) -> str | None:
        state = self.stack.read_state()
        return str(state["status"]) if state else None


def up(stack: Stack, timeout: float) -> int:
    start = 0
    if stack.supervisor_alive():
        state = stack.read_state() or {}
        if state.get("status") == "ready":
            print_summary(stack)
            return 0
    else:
        stack.run_dir.mkdir(parents=True, exist_ok=True)
        stack.state_file.unlink(missing_ok=True)
        stack.logs.mkdir(parents=True, exist_ok=True)
        with open(stack.logs / "supervisor.log", "ab") as out:
            # The log keeps earlier runs; this run's lines start here.
            start = out.tell()
            process = subprocess.Popen(
                [sys.executable, __file__, "supervise", "--run-dir", str(stack.run_dir)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=ROOT,
            )
        stack.supervisor_pid.write_text(str(process.pid))
    deadline = time.monotonic() + timeout
    log_file = stack.logs / "supervisor.log"
    with open(log_file, "rb") as progress:
        progress.seek(start)
        while time.monotonic() < deadline:
            # Whole lines only: a line still being written is printed once it ends.
            for line in iter(progress.readline, b""):
                if not line.endswith(b"\n"):
                    progress.seek(-len(line), os.SEEK_CUR)
                    break
                print(line.decode(errors="replace").rstrip("\n"), flush=True)
            state = stack.read_state() or {}
            if state.get("status") == "ready":
                print_summary(stack)
                return 0
            if str(state.get("status", "")).startswith("failed") or not stack.supervisor_alive():
                log(f"the stack did not start: {state.get('status')}; logs in {stack.logs}")
                return 1
            time.sleep(0.5)
    log(f"the stack was not ready within {timeout:.0f}s; logs in {stack.logs}")
    return 1


def print_summary(stack: Stack) -> None:
    ports = stack.ports
    print(
        f"""
Preflight is up (run folder: {stack.run_dir})
  Kafka            127.0.0.1:{ports["kafka"]}
  intake           127.0.0.1:{ports["intake"]}   (gRPC; the CLI's default target)
  benchmark        127.0.0.1:{ports["benchmark"]}
  clearinghouse    127.0.0.1:{ports["clearinghouse"]}
  notifier         127.0.0.1:{ports["notifier"]}
  reference model  http://127.0.0.1:{ports["reference-model"]}/v1
  webhook sink     http://127.0.0.1:{ports["webhook-sink"]}/alerts
  SMTP sink        127.0.0.1:{ports["smtp-sink"]}
  console          http://127.0.0.1:{ports["console"]}/   (sign in with a token from tokens.json)
  logs             {stack.logs}/<name>.log
  tokens           {stack.tokens_file} (mode 0600)
  client profiles  {stack.run_dir / "preflight.toml"} (lab by default; PREFLIGHT_PROFILE=reviewer, …)
""",
        flush=True,
    )


def down(stack: Stack, timeout: float = 60.0) -> int:
    pid = stack.supervisor_alive()
    if pid is None:
        log("not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            log("stopped")
            return 0
        time.sleep(0.2)
    log(f"supervisor {pid} did not stop within {timeout:.0f}s; killing its process group")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["up", "down", "status", "supervise"])
    parser.add_argument(
        "--run-dir",
        type=Path,
        # The same folder `make demo` uses, so `make down` stops the stack it left running.
        default=Path(os.environ.get("PREFLIGHT_STACK_DIR") or ROOT / "run" / "stack"),
    )
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds `up` waits for readiness")
    args = parser.parse_args(argv)
    stack = Stack(args.run_dir)
    if args.command == "up":
        return up(stack, args.timeout)
    if args.command == "down":
        return down(stack)
    if args.command == "status":
        state = stack.read_state() or {}
        print(json.dumps(state, indent=2))
        return 0 if stack.supervisor_alive() and state.get("status") == "ready" else 3
    Supervisor(stack).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
