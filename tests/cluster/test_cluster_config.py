"""``--cluster`` and friends from flags, the environment and TOML; bad settings stop the
node at start with a clear message (exit status 2)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from warren.server.core.config import Config

from tests.brokerproc import ROOT, free_port

pytestmark = pytest.mark.timeout(60)


def test_cluster_settings_from_flags_env_and_toml(tmp_path, monkeypatch):
    toml = tmp_path / "warren.toml"
    toml.write_text('cluster = "etcd://10.0.0.1:2379/prod?lease_ttl=4"\nnode_name = "n7"\n'
                    'replication_port = 6000\n')
    cfg = Config.load(["--config", str(toml)])
    assert (cfg.cluster, cfg.node_name, cfg.replication_port) == (
        "etcd://10.0.0.1:2379/prod?lease_ttl=4", "n7", 6000)
    monkeypatch.setenv("WARREN_NODE_NAME", "n8")
    monkeypatch.setenv("WARREN_CLUSTER_SECRET_FILE", "/etc/warren/secret")
    cfg = Config.load(["--config", str(toml), "--advertise-host", "10.0.0.9"])
    assert (cfg.node_name, cfg.cluster_secret_file, cfg.advertise_host) == (
        "n8", "/etc/warren/secret", "10.0.0.9")
    assert Config.load([]).cluster == ""  # the single-node default


@pytest.mark.parametrize(("args", "message"), [
    (["--cluster", "etcd://127.0.0.1:1", "--node-name", "n1"], "cluster_secret_file"),
    (["--cluster", "http://127.0.0.1:2379", "--node-name", "n1"], "must be an etcd:// or etcds:// URL"),
    (["--cluster", "etcd://127.0.0.1:2379", "--node-name", "n1", "--etcd-ca", "/x.pem"], "use --cluster etcds://"),
    (["--cluster", "etcds://127.0.0.1:2379", "--node-name", "n1", "--etcd-cert", "/x.pem"], "go together"),
    (["--cluster", "etcds://127.0.0.1:2379", "--node-name", "n1", "--etcd-ca", "/nonexistent.pem"],
     "cannot read etcd_ca"),
    (["--cluster", "etcd://127.0.0.1:2379", "--node-name", "n1", "--etcd-username", "w"],
     "etcd_username and etcd_password_file go together"),
    (["--cluster", "etcd://127.0.0.1:2379", "--node-name", "n1", "--etcd-username", "w",
      "--etcd-password-file", "/nonexistent"], "cannot read etcd_password_file"),
    (["--cluster", "etcd://127.0.0.1:2379?lease_ttl=1", "--node-name", "n1"], "lease_ttl"),
    (["--cluster", "etcd://127.0.0.1:2379", "--node-name", "bad name"], "bad node name"),
])
def test_bad_cluster_settings_stop_the_node_with_a_message(tmp_path, args, message):
    secret = tmp_path / "secret"
    secret.write_text("x" * 32)
    extra = [] if message == "cluster_secret_file" else ["--cluster-secret-file", str(secret)]
    proc = subprocess.run(
        [sys.executable, "-m", "warren.server.main", "--port", str(free_port()),
         "--data-dir", str(tmp_path / "d"), *args, *extra],
        capture_output=True, text=True, timeout=30, cwd=str(ROOT),
    )
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
