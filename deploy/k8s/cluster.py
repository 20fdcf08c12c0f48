#!/usr/bin/env python3
"""A real Kubernetes control plane on loopback, for tests.

etcd + kube-apiserver + kube-controller-manager + kube-scheduler, built from
source by deploy/k8s/build.sh into .cache/bin, and kwok simulating one node
(with GPUs) and the lifecycle of the pods scheduled on it (Running, Ready;
Job pods complete). Nothing listens anywhere but 127.0.0.1; certificates are
generated at start; the admin kubeconfig is written to <run-dir>/kubeconfig.

    cluster.py up [--run-dir DIR]      start (or reuse a healthy running stack)
    cluster.py down [--run-dir DIR]    stop the processes this stack started
    cluster.py status [--run-dir DIR]

Defaults: run dir <repo>/run/k8s (env PREFLIGHT_K8S_RUN_DIR), binaries
<repo>/.cache/bin (env PREFLIGHT_K8S_BIN_DIR). Importable: up(), down(),
status(), binaries_present().
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from preflight_common.ports import free_port, free_ports

REPO = Path(__file__).resolve().parents[2]
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
NODE_NAME = "kwok-node-0"
NODE_CAPACITY = {
    "cpu": "64",
    "memory": "512Gi",
    "pods": "110",
    "nvidia.com/gpu": "8",
    "ephemeral-storage": "1Ti",
}
SERVICE_CIDR = "10.96.0.0/16"  # ClusterIP allocation only: nothing routes to it here.


def default_run_dir() -> Path:
    return Path(os.environ.get("PREFLIGHT_K8S_RUN_DIR", REPO / "run" / "k8s"))


def default_bin_dir() -> Path:
    return Path(os.environ.get("PREFLIGHT_K8S_BIN_DIR", REPO / ".cache" / "bin"))


def binaries_present(bin_dir: Path | None = None) -> list[str]:
    """Names of the missing binaries (empty when all are built)."""
    bin_dir = bin_dir or default_bin_dir()
    return [b for b in BINARIES if not os.access(bin_dir / b, os.X_OK)]


@dataclass
class State:
    run_dir: str
    kubeconfig: str
    server: str
    pids: dict[str, int] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    started_at: float = 0.0
    start_seconds: float = 0.0


def _log(msg: str) -> None:
    print(f"[k8s] {msg}", file=sys.stderr, flush=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still "exists": reap it if we can.
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


# --------------------------------------------------------------------------- PKI


def _write_pki(pki: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    pki.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    later = now + dt.timedelta(days=30)

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def save_key(name: str, k: ec.EllipticCurvePrivateKey) -> None:
        p = pki / f"{name}.key"
        p.write_bytes(
            k.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        p.chmod(0o600)

    def save_cert(name: str, c: x509.Certificate) -> None:
        (pki / f"{name}.crt").write_bytes(c.public_bytes(serialization.Encoding.PEM))

    ca_key = key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "preflight-test-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(later)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    save_key("ca", ca_key)
    save_cert("ca", ca)

    def leaf(name: str, cn: str, orgs: list[str], server: bool) -> None:
        k = key()
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs))
            .issuer_name(ca_name)
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(later)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH] if server else [ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if server:
            b = b.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.IPAddress(ipaddress.ip_address("10.96.0.1")),
                        x509.DNSName("localhost"),
                        x509.DNSName("kubernetes"),
                        x509.DNSName("kubernetes.default"),
                        x509.DNSName("kubernetes.default.svc"),
                        x509.DNSName("kubernetes.default.svc.cluster.local"),
                    ]
                ),
                critical=False,
            )
        save_key(name, k)
        save_cert(name, b.sign(ca_key, hashes.SHA256()))

    leaf("apiserver", "kube-apiserver", [], server=True)
    # The control-plane clients are cluster admins: this is a throw-away test cluster.
    leaf("admin", "preflight-test-admin", ["system:masters"], server=False)
    leaf("controller-manager", "system:kube-controller-manager", ["system:masters"], server=False)
    leaf("scheduler", "system:kube-scheduler", ["system:masters"], server=False)
    leaf("kwok", "kwok", ["system:masters"], server=False)

    sa = key()
    save_key("sa", sa)
    (pki / "sa.pub").write_bytes(
        sa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _kubeconfig(path: Path, server: str, pki: Path, user: str) -> None:
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "preflight-test",
                "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate": str(pki / f"{user}.crt"),
                    "client-key": str(pki / f"{user}.key"),
                },
            }
        ],
        "contexts": [{"name": "preflight-test", "context": {"cluster": "preflight-test", "user": user}}],
        "current-context": "preflight-test",
    }
    path.write_text(json.dumps(cfg, indent=2))  # JSON is YAML
    path.chmod(0o600)


# --------------------------------------------------------------------------- processes


def _spawn(name: str, argv: list[str], run: Path) -> int:
    logf = open(run / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
    p = subprocess.Popen(
        argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, cwd=run
    )
    logf.close()
    return p.pid


def _https_ok(url: str, pki: Path) -> bool:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=3) as r:  # noqa: S310 - loopback
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as r:  # noqa: S310 - loopback
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _wait(what: str, check, timeout: float, pids: dict[str, int], run: Path) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        for name, pid in pids.items():
            if not _alive(pid):
                tail = (run / "logs" / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited while waiting for {what}:\n{tail}")
        time.sleep(0.25)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


@contextlib.contextmanager
def _locked(run: Path) -> Iterator[None]:
    run.mkdir(parents=True, exist_ok=True)
    with open(run / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _load_state(run: Path) -> State | None:
    try:
        return State(**json.loads((run / "state.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _healthy(state: State) -> bool:
    run = Path(state.run_dir)
    alive = all(_alive(p) and _ours(n, p) for n, p in state.pids.items())
    return alive and _https_ok(f"{state.server}/readyz", run / "pki")


def status(run_dir: Path | None = None) -> State | None:
    """The running stack's state, or None when it is not up and healthy."""
    run = run_dir or default_run_dir()
    st = _load_state(run)
    return st if st and _healthy(st) else None


def _ours(name: str, pid: int) -> bool:
    """True if `pid` still runs the binary we started as `name` (PIDs can be reused)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv0 = f.read().split(b"\0", 1)[0].decode(errors="replace")
    except OSError:
        return False
    return Path(argv0).name == name


def _stop(pids: dict[str, int], timeout: float = 20.0) -> None:
    """Stop the processes this module started, and only those."""
    mine = {n: p for n, p in pids.items() if p and _ours(n, p)}
    for pid in reversed(list(mine.values())):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for name, pid in reversed(list(mine.items())):
        while _alive(pid) and _ours(name, pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid) and _ours(name, pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def down(run_dir: Path | None = None) -> None:
    """Stop the processes recorded in the run dir's state and remove etcd's data."""
    run = run_dir or default_run_dir()
    with _locked(run):
        st = _load_state(run)
        if st:
            _stop(st.pids)
            _log(f"stopped {', '.join(st.pids)}")
        with contextlib.suppress(FileNotFoundError):
            (run / "state.json").unlink()
        subprocess.run(["rm", "-rf", str(run / "etcd")], check=False)


def up(run_dir: Path | None = None, bin_dir: Path | None = None, timeout: float = 180.0) -> State:
    """Start the stack (or return the healthy one already running there)."""
    run = (run_dir or default_run_dir()).resolve()
    bins = (bin_dir or default_bin_dir()).resolve()
    missing = binaries_present(bins)
    if missing:
        raise FileNotFoundError(f"missing {', '.join(missing)} in {bins}: run `make k8s-build`")
    with _locked(run):
        st = _load_state(run)
        if st and _healthy(st):
            return st
        if st:
            _stop(st.pids)
        t0 = time.monotonic()
        for d in ("etcd", "pki"):
            subprocess.run(["rm", "-rf", str(run / d)], check=False)
        (run / "logs").mkdir(parents=True, exist_ok=True)
        pki = run / "pki"
        _write_pki(pki)

        ports = dict(zip(("etcd", "etcd-peer", "apiserver"), free_ports(3), strict=True))
        server = f"https://127.0.0.1:{ports['apiserver']}"
        kubeconfig = run / "kubeconfig"
        for user in ("admin", "controller-manager", "scheduler", "kwok"):
            _kubeconfig(run / f"{user}.kubeconfig", server, pki, user)
        _kubeconfig(kubeconfig, server, pki, "admin")

        pids: dict[str, int] = {}
        try:
            etcd_url = f"http://127.0.0.1:{ports['etcd']}"
            peer_url = f"http://127.0.0.1:{ports['etcd-peer']}"
            pids["etcd"] = _spawn(
                "etcd",
                [
                    str(bins / "etcd"),
                    "--name",
                    "preflight",
                    "--data-dir",
                    str(run / "etcd"),
                    "--listen-client-urls",
                    etcd_url,
                    "--advertise-client-urls",
                    etcd_url,
                    "--listen-peer-urls",
                    peer_url,
                    "--initial-advertise-peer-urls",
                    peer_url,
                    "--initial-cluster",
                    f"preflight={peer_url}",
                    "--unsafe-no-fsync",
                    "--log-level",
                    "warn",
                ],
                run,
            )
            _wait("etcd", lambda: _http_ok(f"{etcd_url}/health"), 60, pids, run)

            pids["kube-apiserver"] = _spawn(
                "kube-apiserver",
                [
                    str(bins / "kube-apiserver"),
                    "--etcd-servers",
                    etcd_url,
                    "--bind-address",
                    "127.0.0.1",
                    "--advertise-address",
                    "127.0.0.1",
                    "--secure-port",
                    str(ports["apiserver"]),
                    "--cert-dir",
                    str(pki),
                    "--tls-cert-file",
                    str(pki / "apiserver.crt"),
                    "--tls-private-key-file",
                    str(pki / "apiserver.key"),
                    "--client-ca-file",
                    str(pki / "ca.crt"),
                    "--service-account-issuer",
                    "https://kubernetes.default.svc.cluster.local",
                    "--service-account-key-file",
                    str(pki / "sa.pub"),
                    "--service-account-signing-key-file",
                    str(pki / "sa.key"),
                    "--service-cluster-ip-range",
                    SERVICE_CIDR,
                    "--authorization-mode",
                    "RBAC",
                    "--endpoint-reconciler-type",
                    "none",
                    "--allow-privileged=false",
                    "--profiling=false",
                    "--v=1",
                ],
                run,
            )
            _wait("kube-apiserver /readyz", lambda: _https_ok(f"{server}/readyz", pki), timeout, pids, run)

            pids["kube-controller-manager"] = _spawn(
                "kube-controller-manager",
                [
                    str(bins / "kube-controller-manager"),
                    "--kubeconfig",
                    str(run / "controller-manager.kubeconfig"),
                    "--bind-address",
                    "127.0.0.1",
                    "--secure-port",
                    "0",
                    "--leader-elect=false",
                    "--use-service-account-credentials=false",
                    "--service-account-private-key-file",
                    str(pki / "sa.key"),
                    "--root-ca-file",
                    str(pki / "ca.crt"),
                    "--controllers",
                    "*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller",
                    "--profiling=false",
                    "--v=1",
                ],
                run,
            )
            pids["kube-scheduler"] = _spawn(
                "kube-scheduler",
                [
                    str(bins / "kube-scheduler"),
                    "--kubeconfig",
                    str(run / "scheduler.kubeconfig"),
                    "--authentication-kubeconfig",
                    str(run / "scheduler.kubeconfig"),
                    "--authorization-kubeconfig",
                    str(run / "scheduler.kubeconfig"),
                    "--bind-address",
                    "127.0.0.1",
                    "--secure-port",
                    str(free_port()),
                    "--leader-elect=false",
                    "--profiling=false",
                    "--v=1",
                ],
                run,
            )
            # Stages (kwok-stages.yaml): the node stays Ready (heartbeats + lease),
            # pods become Running+Ready, Job pods Succeeded (or Failed on request).
            pids["kwok"] = _spawn(
                "kwok",
                [
                    str(bins / "kwok"),
                    "--kubeconfig",
                    str(run / "kwok.kubeconfig"),
                    "--manage-all-nodes=false",
                    "--manage-nodes-with-annotation-selector",
                    "kwok.x-k8s.io/node=fake",
                    "--node-ip",
                    "127.0.0.1",
                    "--node-lease-duration-seconds",
                    "40",
                    "--cidr",
                    "10.244.0.0/16",
                    "--config",
                    str(Path(__file__).resolve().parent / "kwok-stages.yaml"),
                ],
                run,
            )

            _create_node(kubeconfig)
            _wait(
                "the default ServiceAccount and a Ready node",
                lambda: _cluster_ready(kubeconfig),
                timeout,
                pids,
                run,
            )
        except BaseException:
            _stop(pids)
            raise
        st = State(
            run_dir=str(run),
            kubeconfig=str(kubeconfig),
            server=server,
            pids=pids,
            ports=ports,
            started_at=time.time(),
            start_seconds=round(time.monotonic() - t0, 2),
        )
        (run / "state.json").write_text(json.dumps(asdict(st), indent=2))
        _log(f"up in {st.start_seconds}s: {server} kubeconfig={kubeconfig}")
        return st


def _client(kubeconfig: Path):  # type: ignore[no-untyped-def]
    from kubernetes import config

    return config.new_client_from_config(str(kubeconfig))


def _create_node(kubeconfig: Path) -> None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    api = client.CoreV1Api(_client(kubeconfig))
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": NODE_NAME,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": NODE_NAME,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                "node-role.kubernetes.io/worker": "",
            },
        },
        "spec": {},
        "status": {"capacity": NODE_CAPACITY, "allocatable": NODE_CAPACITY},
    }
    try:
        api.create_node(node)
    except ApiException as e:
        if e.status != 409:
            raise


def _cluster_ready(kubeconfig: Path) -> bool:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    try:
        api = client.CoreV1Api(_client(kubeconfig))
        api.read_namespaced_service_account("default", "default")
        node = api.read_node(NODE_NAME)
    except (ApiException, OSError, ValueError):
        return False
    conds = {c.type: c.status for c in (node.status.conditions or [])}
    return conds.get("Ready") == "True"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["up", "down", "status"])
    ap.add_argument("--run-dir", type=Path, default=None)
    ap.add_argument("--bin-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.command == "up":
        st = up(args.run_dir, args.bin_dir)
        print(st.kubeconfig)
    elif args.command == "down":
        down(args.run_dir)
    else:
        st = status(args.run_dir)
        if not st:
            print("down")
            return 1
        print(json.dumps(asdict(st), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
