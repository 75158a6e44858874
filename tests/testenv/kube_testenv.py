"""A real etcd + kube-apiserver for tests, built from Go modules (no Docker, no downloaded binaries).

Library use (pytest):   bin_dir = ensure_built(); env = start(workdir); ...; env.stop()
CLI:                    python tests/testenv/kube_testenv.py build|up|down|status

The binaries come from the Go wrapper modules in this folder (`go.mod` for kube-apiserver and etcd,
`helm/go.mod` for helm) and are cached outside the checkout, keyed by their versions and a hash of
the build inputs, so a second run builds nothing. Stdlib only, so any python3.11+ can run the CLI.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
# Where `up` keeps its kubeconfig, pids and data (git-ignored); overridable to run a second one.
STATE_DIR = Path(os.environ.get("VIBEXP_TESTENV_DIR") or REPO / ".testenv").resolve()
HELM_DIR = HERE / "helm"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"  # also the API audience


def _module_version(gomod: Path, module: str) -> str:
    """The version a go.mod requires for `module` (the cache key follows the go.mod, not a constant)."""
    m = re.search(rf"^\s*{re.escape(module)} (v\S+)", gomod.read_text(), re.MULTILINE)
    if not m:
        raise RuntimeError(f"{module} not required in {gomod}")
    return m.group(1)


K8S_VERSION = _module_version(HERE / "go.mod", "k8s.io/kubernetes")
ETCD_VERSION = _module_version(HERE / "go.mod", "go.etcd.io/etcd/server/v3")
HELM_VERSION = _module_version(HELM_DIR / "go.mod", "helm.sh/helm/v4")


@dataclass(frozen=True)
class _Binary:
    name: str
    module_dir: Path
    package: str
    ldflags: str = ""  # -X stamps so `--version` tells the truth instead of v0.0.0-master


_KVER = "k8s.io/component-base/version"
_major, _minor = K8S_VERSION.lstrip("v").split(".")[:2]
BINARIES = (
    _Binary(
        "kube-apiserver",
        HERE,
        "./cmd/kube-apiserver",
        f"-X {_KVER}.gitVersion={K8S_VERSION} -X {_KVER}.gitMajor={_major} -X {_KVER}.gitMinor={_minor}"
        f" -X {_KVER}.gitTreeState=clean",
    ),
    _Binary("etcd", HERE, "./cmd/etcd"),
    _Binary("helm", HELM_DIR, "./cmd/helm", f"-X helm.sh/helm/v4/internal/version.version={HELM_VERSION}"),
)


def _log(msg: str) -> None:
    print(f"[kube_testenv] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------- build


def cache_dir() -> Path:
    """Bin dir for the current build inputs, e.g. ~/.cache/vibexp/testenv/k8s-v1.35.4_etcd-…_helm-…-<hash>."""
    root = os.environ.get("VIBEXP_TESTENV_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "vibexp", "testenv"
    )
    digest = hashlib.sha256()
    inputs = [HERE / "go.mod", HERE / "go.sum", HELM_DIR / "go.mod", HELM_DIR / "go.sum"]
    inputs += sorted(HERE.glob("cmd/*/main.go")) + sorted(HELM_DIR.glob("cmd/*/main.go"))
    for path in inputs:
        digest.update(path.read_bytes())
    for b in BINARIES:
        digest.update(b.ldflags.encode())
    key = f"k8s-{K8S_VERSION}_etcd-{ETCD_VERSION}_helm-{HELM_VERSION}-{digest.hexdigest()[:10]}"
    return Path(root) / key


def _go() -> str:
    go = shutil.which("go") or "/usr/local/go/bin/go"
    if not os.access(go, os.X_OK):
        raise RuntimeError("the Go toolchain (`go`) is needed to build the test environment")
    return go


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    """Exclusive lock so parallel sessions (or `make` + pytest) don't build the same binary twice."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_built() -> Path:
    """Build whichever binaries are missing from the cache; return the bin dir."""
    bin_dir = cache_dir()
    if all((bin_dir / b.name).is_file() for b in BINARIES):
        return bin_dir
    with _flock(bin_dir.parent / ".build.lock"):
        bin_dir.mkdir(parents=True, exist_ok=True)
        for b in BINARIES:
            target = bin_dir / b.name
            if target.is_file():  # built by whoever held the lock before us
                continue
            tmp = bin_dir / f".{b.name}.tmp{os.getpid()}"
            cmd = [_go(), "build", "-trimpath", "-buildvcs=false", "-mod=readonly"]
            cmd += [f"-ldflags=-s -w {b.ldflags}".strip(), "-o", str(tmp), b.package]
            slow = " (4-15 min cold on 2 cores)" if b.name == "kube-apiserver" else ""
            _log(f"building {b.name}{slow} ...")
            t0 = time.monotonic()
            subprocess.run(cmd, cwd=b.module_dir, check=True)
            tmp.replace(target)  # atomic: a half-written binary is never seen as built
            _log(f"built {target} in {time.monotonic() - t0:.0f}s")
    return bin_dir


# ----------------------------------------------------------------------------------------------- pki

_OPENSSL_CNF = """\
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
"""


def _openssl(pki: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=pki, check=True, capture_output=True)


def _make_pki(pki: Path) -> None:
    """CA, apiserver serving cert, admin client cert (O=system:masters) and the SA signing key."""
    pki.mkdir(parents=True, exist_ok=True)
    (pki / "openssl.cnf").write_text(_OPENSSL_CNF)
    cnf = ["-config", "openssl.cnf"]
    _openssl(pki, "req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes", *cnf, "-extensions", "ca",
             "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650",
             "-subj", "/CN=vibexp-testenv-ca")  # fmt: skip
    for name, subj, ext in (
        ("server", "/CN=kube-apiserver", "server"),
        ("admin", "/O=system:masters/CN=admin", "client"),
    ):
        _openssl(pki, "req", "-new", "-newkey", "rsa:2048", "-nodes", *cnf, "-subj", subj,
                 "-keyout", f"{name}.key", "-out", f"{name}.csr")  # fmt: skip
        _openssl(pki, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "3650", "-extfile", "openssl.cnf", "-extensions", ext,
                 "-out", f"{name}.crt")  # fmt: skip
    _openssl(pki, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "sa.key")
    _openssl(pki, "pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub")


# ------------------------------------------------------------------------------------------ processes


def _free_ports(n: int) -> list[int]:
    """n distinct free loopback ports (sockets held open together so none repeats)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) still answers kill(0); treat it as dead.
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _kill_group(pid: int, proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGTERM the process group led by pid (started with start_new_session), SIGKILL if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None:
                if proc.poll() is not None:
                    return
            elif not _alive(pid):
                return
            time.sleep(0.05)


@dataclass
class KubeEnv:
    """A running etcd + kube-apiserver; `stop()` kills both and removes their data."""

    workdir: Path
    bin_dir: Path
    server: str
    kubeconfig: Path
    etcd_url: str
    pids: dict[str, int]
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)
    _watchdog: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pki(self) -> Path:
        return self.workdir / "pki"

    @property
    def ca_file(self) -> Path:
        return self.pki / "ca.crt"

    def ssl_context(self, admin: bool = True) -> ssl.SSLContext:
        """TLS context trusting the test CA; with admin=True it presents the system:masters cert."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        if admin:
            ctx.load_cert_chain(self.pki / "admin.crt", self.pki / "admin.key")
        return ctx

    def stop(self) -> None:
        """Kill kube-apiserver, then etcd; remove etcd data, certificates and kubeconfig (logs stay)."""
        for name in ("kube-apiserver", "etcd"):
            if name in self.pids:
                _kill_group(self.pids[name], self._procs.get(name))
        self.pids.clear()
        if self._watchdog is not None and self._watchdog.poll() is None:
            self._watchdog.terminate()
            self._watchdog.wait()
        for path in (self.workdir / "etcd-data", self.pki):
            shutil.rmtree(path, ignore_errors=True)
        for path in (self.kubeconfig, self.workdir / "state.json"):
            path.unlink(missing_ok=True)

    def to_state(self) -> dict[str, object]:
        return {
            "server": self.server,
            "kubeconfig": str(self.kubeconfig),
            "etcd_url": self.etcd_url,
            "bin_dir": str(self.bin_dir),
            "pids": self.pids,
        }

    @classmethod
    def from_state(cls, workdir: Path) -> KubeEnv | None:
        """Re-attach to an environment started by `up` (from workdir/state.json)."""
        try:
            state = json.loads((workdir / "state.json").read_text())
        except FileNotFoundError:
            return None
        env = cls(workdir, Path(state["bin_dir"]), state["server"], Path(state["kubeconfig"]),
                  state["etcd_url"], dict(state["pids"]))  # fmt: skip
        # Only keep pids that still run our binaries, so a recycled pid is never killed.
        for name, pid in list(env.pids.items()):
            with contextlib.suppress(OSError):
                if Path(os.readlink(f"/proc/{pid}/exe")) == (env.bin_dir / name).resolve() and _alive(pid):
                    continue
            del env.pids[name]
        return env


def _get(url: str, ctx: ssl.SSLContext | None = None, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=timeout) as resp:  # our own loopback URL
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (OSError, ssl.SSLError) as e:
        return 0, str(e)


def _wait_for(env: KubeEnv, what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        for name, pid in env.pids.items():
            if not _alive(pid):
                log = (env.workdir / "logs" / f"{name}.log").read_text(errors="replace")[-4000:]
                raise RuntimeError(f"{name} exited while waiting for {what}; log tail:\n{log}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (logs in {env.workdir})")
        time.sleep(0.1)


def _spawn(env: KubeEnv, name: str, args: list[str]) -> None:
    log = (env.workdir / "logs" / f"{name}.log").open("ab")
    # New session = own process group: Ctrl-C in the terminal doesn't reach it, and
    # killpg() takes down anything it forks.
    proc = subprocess.Popen(
        [str(env.bin_dir / name), *args], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        start_new_session=True, cwd=env.workdir,
    )  # fmt: skip
    log.close()
    env._procs[name] = proc
    env.pids[name] = proc.pid


def _write_kubeconfig(env: KubeEnv) -> None:
    def b64(name: str) -> str:
        return base64.b64encode((env.pki / name).read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "testenv",
                "cluster": {"server": env.server, "certificate-authority-data": b64("ca.crt")},
            }
        ],
        "users": [
            {
                "name": "admin",
                "user": {"client-certificate-data": b64("admin.crt"), "client-key-data": b64("admin.key")},
            }
        ],
        "contexts": [{"name": "testenv", "context": {"cluster": "testenv", "user": "admin", "namespace": "default"}}],
        "current-context": "testenv",
    }
    env.kubeconfig.write_text(json.dumps(config, indent=2))  # JSON is YAML; kubectl reads it
    env.kubeconfig.chmod(0o600)


def start(workdir: Path, bin_dir: Path | None = None, watch_pid: int | None = None) -> KubeEnv:
    """Start etcd and kube-apiserver on free 127.0.0.1 ports; return once /readyz is ok.

    watch_pid: if set (the default for library use is the caller's pid, see `start_for_tests`),
    a watchdog kills both servers when that process dies, even by SIGKILL.
    """
    workdir = Path(workdir).resolve()
    bin_dir = bin_dir or ensure_built()
    for sub in ("etcd-data", "pki"):
        shutil.rmtree(workdir / sub, ignore_errors=True)
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    etcd_port, peer_port, api_port = _free_ports(3)
    env = KubeEnv(
        workdir, bin_dir, f"https://127.0.0.1:{api_port}", workdir / "kubeconfig",
        f"http://127.0.0.1:{etcd_port}", {},
    )  # fmt: skip
    t0 = time.monotonic()
    try:
        _make_pki(env.pki)
        peer = f"http://127.0.0.1:{peer_port}"
        _spawn(env, "etcd", [
            "--name=testenv", f"--data-dir={workdir / 'etcd-data'}",
            f"--listen-client-urls={env.etcd_url}", f"--advertise-client-urls={env.etcd_url}",
            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=testenv={peer}",
            "--unsafe-no-fsync",  # throwaway data: skip fsync, much faster on slow disks
            "--log-level=warn",
        ])  # fmt: skip
        _wait_for(env, "etcd /health", lambda: '"health":"true"' in _get(f"{env.etcd_url}/health")[1], 30)
        pki = env.pki
        _spawn(env, "kube-apiserver", [
            f"--etcd-servers={env.etcd_url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={api_port}",
            f"--cert-dir={pki}", f"--tls-cert-file={pki / 'server.crt'}",
            f"--tls-private-key-file={pki / 'server.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",  # admin authenticates with its client cert
            "--authorization-mode=RBAC",
            f"--service-account-issuer={SA_ISSUER}", f"--api-audiences={SA_ISSUER}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-cluster-ip-range=10.0.0.0/24",  # only an allocation range; nothing routes there
            # No controller-manager here: nothing would create the `default` ServiceAccount that this
            # admission plugin demands before a Pod can be created.
            "--disable-admission-plugins=ServiceAccount",
            "--allow-privileged=true", "--profiling=false",
        ])  # fmt: skip
        if watch_pid is not None:
            env._watchdog = _start_watchdog(watch_pid, env)
        ctx = env.ssl_context()
        _wait_for(env, "kube-apiserver /readyz", lambda: _get(f"{env.server}/readyz", ctx) == (200, "ok"), 120)
        # The `default` namespace is made by a bootstrap controller that /readyz does not wait for.
        ns_url = f"{env.server}/api/v1/namespaces/default"
        _wait_for(env, "namespace default", lambda: _get(ns_url, ctx)[0] == 200, 30)
        _write_kubeconfig(env)
    except BaseException:  # also KeyboardInterrupt: never leave servers behind
        env.stop()
        raise
    _log(f"kube-apiserver {K8S_VERSION} ready at {env.server} in {time.monotonic() - t0:.1f}s")
    return env


def start_for_tests(workdir: Path) -> KubeEnv:
    """start() for an in-process user (pytest): stopped at exit and by a watchdog if we get killed."""
    env = start(workdir, watch_pid=os.getpid())
    atexit.register(env.stop)
    return env


# ------------------------------------------------------------------------------------------ watchdog


def _start_watchdog(watch_pid: int, env: KubeEnv) -> subprocess.Popen[bytes]:
    """A tiny process that kills the servers if `watch_pid` dies without calling stop() (SIGKILL, OOM)."""
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "_watchdog", str(watch_pid), str(env.workdir),
         *map(str, env.pids.values())],
        stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip


def _watchdog(watch_pid: int, workdir: Path, pgids: list[int]) -> None:
    while any(_alive(p) for p in pgids):
        if not _alive(watch_pid):
            for pgid in pgids:
                _kill_group(pgid, None, timeout=5)
            for sub in ("etcd-data", "pki"):
                shutil.rmtree(workdir / sub, ignore_errors=True)
            return
        time.sleep(1)


# ----------------------------------------------------------------------------------------------- cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kube_testenv.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build missing binaries into the cache and print the bin dir")
    sub.add_parser("up", help=f"start etcd + kube-apiserver in the background ({STATE_DIR.name}/)")
    sub.add_parser("down", help="stop them and remove their data")
    sub.add_parser("status", help="show whether they run and answer /readyz")
    wd = sub.add_parser("_watchdog")  # internal, see _start_watchdog
    wd.add_argument("pid", type=int)
    wd.add_argument("workdir", type=Path)
    wd.add_argument("pgids", type=int, nargs="+")
    args = parser.parse_args(argv)

    if args.cmd == "build":
        print(ensure_built())
        return 0
    if args.cmd == "_watchdog":
        _watchdog(args.pid, args.workdir, args.pgids)
        return 0

    env = KubeEnv.from_state(STATE_DIR)
    if args.cmd == "up":
        if env is not None and len(env.pids) == 2:
            print(f"already up: {env.server}\nexport KUBECONFIG={env.kubeconfig}")
            return 0
        if env is not None:
            env.stop()  # half-dead leftovers
        env = start(STATE_DIR)
        (STATE_DIR / "state.json").write_text(json.dumps(env.to_state(), indent=2))
        print(f"up: {env.server}\nexport KUBECONFIG={env.kubeconfig}")
        return 0
    if args.cmd == "down":
        if env is None:
            print("not up")
            return 0
        env.stop()
        print("down")
        return 0
    # status
    if env is None:
        print("not up")
        return 1
    code, body = _get(f"{env.server}/readyz", env.ssl_context())
    print(json.dumps({**env.to_state(), "readyz": f"{code} {body.strip()[:200]}"}, indent=2))
    return 0 if code == 200 and len(env.pids) == 2 else 1


if __name__ == "__main__":
    sys.exit(main())
