"""A private etcd (Debian's etcd-server) on free loopback ports, for the cluster tests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.brokerproc import free_port, wait_port

ETCD_BINARIES = ("/usr/bin/etcd", "/usr/local/bin/etcd")


def etcd_binary() -> str:
    """The etcd binary; skip the test if there is none, fail it when CI is set."""
    found = shutil.which("etcd") or next((p for p in ETCD_BINARIES if os.path.exists(p)), None)
    if found is None:
        reason = "etcd is not installed (Debian: apt-get install etcd-server)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)")
        pytest.skip(reason)
    return found


class EtcdProcess:
    """One single-member etcd on loopback with a private data dir; output goes to etcd.log."""

    def __init__(self, base: Path, tls: dict[str, Path] | None = None, client_cert_auth: bool = True) -> None:
        """``tls``: {"cert", "key", "ca"} files: serve clients over TLS and (unless
        ``client_cert_auth`` is False) require a client certificate the CA signed (etcd's
        --client-cert-auth; then also {"client_cert", "client_key"} for the health check)."""
        self.base = base
        self.tls = tls
        self.client_cert_auth = client_cert_auth
        self.client_port = free_port()
        self.peer_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = None
        # etcd fsyncs every write; on the shared disk, right after a test that wrote
        # gigabytes, one fsync can take seconds (data=ordered journal commits) and a lease
        # grant then times out. tmpfs keeps etcd's latency independent of other tests.
        shm = Path("/dev/shm")
        if shm.is_dir() and os.access(shm, os.W_OK):
            self.data_dir = Path(tempfile.mkdtemp(prefix="warren-etcd-", dir=shm))
        else:
            self.data_dir = base / "data"

    @property
    def endpoint(self) -> tuple[str, int]:
        return ("127.0.0.1", self.client_port)

    def start(self, timeout: float = 20.0) -> EtcdProcess:
        binary = etcd_binary()
        self.base.mkdir(parents=True, exist_ok=True)
        client = f"{'https' if self.tls else 'http'}://127.0.0.1:{self.client_port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        self._log = open(self.base / "etcd.log", "ab")  # noqa: SIM115 - closed in stop()
        tls = [] if not self.tls else [
            "--cert-file", str(self.tls["cert"]), "--key-file", str(self.tls["key"]),
            # with a trusted CA etcd asks every client for a certificate
            *(["--trusted-ca-file", str(self.tls["ca"]), "--client-cert-auth"] if self.client_cert_auth else []),
        ]
        self.proc = subprocess.Popen(
            [
                binary,
                *tls,
                "--name", "t",
                "--data-dir", str(self.data_dir),
                "--listen-client-urls", client,
                "--advertise-client-urls", client,
                "--listen-peer-urls", peer,
                "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"t={peer}",
                "--initial-cluster-state", "new",
                "--log-level", "warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + timeout
            wait_port(self.client_port, timeout=timeout, proc=self.proc)
            self._wait_healthy(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self, deadline: float) -> None:
        """Listening is not serving: wait until the member has elected itself and answers."""
        url = f"http://127.0.0.1:{self.client_port}/health"
        ctx = None
        if self.tls:
            import ssl

            url = url.replace("http://", "https://")
            ctx = ssl.create_default_context(cafile=str(self.tls["ca"]))
            if self.client_cert_auth:
                ctx.load_cert_chain(str(self.tls["client_cert"]), str(self.tls["client_key"]))
        while True:
            try:
                with urllib.request.urlopen(url, timeout=1, context=ctx) as r:
                    if json.loads(r.read()).get("health") == "true":
                        return
            except (OSError, ValueError):
                pass
            if time.monotonic() >= deadline or (self.proc and self.proc.poll() is not None):
                raise RuntimeError(f"etcd did not become healthy; see {self.base / 'etcd.log'}")
            time.sleep(0.05)

    def pause(self) -> None:
        """SIGSTOP: etcd stops answering but keeps its sockets (a hung or cut-off etcd)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def remove(self) -> None:
        """Stop, and free the data directory (it may be in RAM)."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
