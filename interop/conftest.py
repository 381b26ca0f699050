"""Fixtures for interop tests: a fresh warren per test, one private RabbitMQ per session.

``warren``    a BrokerProcess on its own free port with its own data directory.
``rabbitmq``  the AMQP URL of a private RabbitMQ node (Debian's rabbitmq-server,
              started with ``<repo>/../shared/bench/start-rabbitmq.sh``), shared by
              the whole session; differential tests use unique names on it.
              Skipped when rabbitmq-server is not installed, unless ``CI`` is set,
              in which case a missing server is a failure.
``prefix``    a unique name prefix for queues/exchanges of one test.
``node_scenario``  the command running interop/node/scenario.js (amqplib).
``node_cloudamqp`` the command running interop/node/cloudamqp.js (@cloudamqp/amqp-client).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.brokerproc import BrokerProcess, free_port

REPO = Path(__file__).resolve().parent.parent
#: start/stop scripts for RabbitMQ; WARREN_BENCH points elsewhere (e.g. from a git worktree)
BENCH = Path(os.environ.get("WARREN_BENCH") or REPO.parent / "shared" / "bench")
NODE_DIR = Path(__file__).resolve().parent / "node"
RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


def _missing(reason: str) -> None:
    """Skip locally, fail in CI: CI is expected to have installed everything."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)")
    pytest.skip(reason)


@pytest.fixture
def warren(tmp_path):
    b = BrokerProcess(tmp_path / "data").start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def prefix(request) -> str:
    name = request.node.name.split("[")[0].removeprefix("test_")[:24]
    return f"it-{name}-{secrets.token_hex(4)}"


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class _RabbitNode:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.env = dict(os.environ)
        self.env.update(
            RMQ_BENCH_BASE=str(base),
            RMQ_PORT=str(self.port),
            RMQ_MGMT_PORT=str(free_port()),
            RMQ_PROM_PORT=str(free_port()),
            RMQ_DIST_PORT=str(free_port()),
            RMQ_NODENAME=f"warrendiff{secrets.token_hex(4)}@localhost",
            RMQ_PLUGINS="none",
        )
        self.started = False

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def start(self) -> None:
        script = BENCH / "start-rabbitmq.sh"
        if not script.exists():
            raise RuntimeError(f"{script} not found (expected ../shared beside the repo)")
        self.started = True  # even a failed start may leave processes to stop
        r = subprocess.run(
            ["bash", str(script)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if r.returncode != 0:
            raise RuntimeError(
                f"start-rabbitmq.sh failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
            )
        deadline = time.monotonic() + 30
        while not _port_open(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"RabbitMQ not listening on {self.port}")
            time.sleep(0.1)

    def ctl(self, *args: str) -> str:
        """rabbitmqctl against this node."""
        r = subprocess.run(
            ["bash", str(BENCH / "rabbitmqctl.sh"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if r.returncode != 0:
            raise RuntimeError(
                f"rabbitmqctl {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
            )
        return r.stdout

    def stop(self) -> None:
        if not self.started:
            return
        subprocess.run(
            ["bash", str(BENCH / "stop-rabbitmq.sh")],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        self.started = False


@pytest.fixture(scope="session")
def _rabbit_node(tmp_path_factory):
    if not RABBITMQ_SERVER.exists():
        _missing(f"{RABBITMQ_SERVER} is not installed; differential tests need RabbitMQ")
    if os.environ.get("WARREN_TEST_RABBITMQ_PORT"):
        # a node started beforehand by start-rabbitmq.sh (faster local iterations)
        node = _RabbitNode(tmp_path_factory.mktemp("rabbitmq"))
        node.port = int(os.environ["WARREN_TEST_RABBITMQ_PORT"])
        if os.environ.get("WARREN_TEST_RABBITMQ_BASE"):  # for rabbitmqctl
            node.env["RMQ_BENCH_BASE"] = os.environ["WARREN_TEST_RABBITMQ_BASE"]
        yield node
        return
    node = _RabbitNode(tmp_path_factory.mktemp("rabbitmq"))
    try:
        node.start()
    except Exception as exc:
        node.stop()
        pytest.fail(f"could not start the private RabbitMQ node: {exc}")
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def rabbitmq_node(_rabbit_node) -> _RabbitNode:
    """The session's RabbitMQ node itself (``.url``, ``.ctl(...)`` for rabbitmqctl)."""
    return _rabbit_node


@pytest.fixture
def rabbitmq(_rabbit_node) -> str:
    """The AMQP URL of the session's RabbitMQ node."""
    return _rabbit_node.url


#: the Node client libraries interop/node/package.json installs
NODE_PACKAGES = ("amqplib", "@cloudamqp/amqp-client")


@pytest.fixture(scope="session")
def node_modules() -> str:
    """The ``node`` executable; runs ``npm ci`` (committed package-lock.json) once if
    ``interop/node/node_modules`` lacks one of NODE_PACKAGES. Skipped without Node unless
    CI is set."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if not node or not npm:
        _missing("node/npm not installed; the Node interop tests need Node.js")
    if not all((NODE_DIR / "node_modules" / pkg / "package.json").exists() for pkg in NODE_PACKAGES):
        cmd = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]
        if not (NODE_DIR / "package-lock.json").exists():
            cmd[1] = "install"
        r = subprocess.run(cmd, cwd=NODE_DIR, capture_output=True, text=True, timeout=180)
        if r.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} failed in {NODE_DIR}:\n{r.stdout}\n{r.stderr}")
    return node


@pytest.fixture(scope="session")
def node_scenario(node_modules) -> list[str]:
    """``[node, scenario.js]``: the amqplib scenario."""
    return [node_modules, str(NODE_DIR / "scenario.js")]


@pytest.fixture(scope="session")
def node_cloudamqp(node_modules) -> list[str]:
    """``[node, cloudamqp.js]``: the @cloudamqp/amqp-client scenario."""
    return [node_modules, str(NODE_DIR / "cloudamqp.js")]
