"""warren installed beside a distribution with top-level ``server`` and ``protocol``
packages: both import correctly (issue 9), and the console scripts run.

How, and why this way:

- A clean venv (``python -m venv --without-pip``: no system site-packages, no pip,
  an empty site-packages), so what lands at its top is exactly what the two
  wheels put there.
- warren's wheel is built from a copy of the checkout's sources: an in-tree build
  reuses ``build/lib``, and stale files there end up in the wheel. It is built
  with build isolation: the project needs setuptools>=68, which neither a fresh
  Python 3.11 venv (65.5, no ``wheel``) nor this host provides, so
  ``--no-build-isolation`` cannot build it; the isolated build gets setuptools
  from the package index (the same as tests/packaging/test_wheel.py).
- The other distribution ("collider") is a wheel written here (PEP 427: a zip
  with METADATA, WHEEL and RECORD): no build backend, no network. Its modules
  are named like warren's (``server.main``, ``protocol.table``), so a leak either
  way shows.
- Both wheels are installed with this interpreter's pip pointed at the venv
  (``pip --python``), ``--no-deps --no-index``: a wheel install, as
  ``pip install warren`` from an index does.
- warren's dependencies (pamqp, uvloop, aiohttp, ...) are not downloaded: a
  ``.pth`` file in the venv names the directories that already hold them. A
  ``.pth`` line only appends a directory to ``sys.path`` (after the venv's own
  site-packages); the ``.pth`` files inside that directory are not run, so the
  editable install of warren there (an import hook its ``__editable__`` .pth
  sets up, which ``--system-site-packages`` would run) stays inactive. The test
  asserts that every ``warren`` module, and ``warren.__path__``, are the venv's.
- The venv's python runs with ``-I`` (no PYTHONPATH, which the root conftest
  sets in worktrees; no user site; no current directory on the path), from an
  empty directory.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.packaging.wheelbuild import build_warren_wheel

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("server", "protocol", "storage", "bench")

# the collider's modules, each holding a marker; named like warren's modules on purpose
COLLIDER = {
    "server/__init__.py": 'MARKER = "collider server"\n',
    "server/main.py": 'MARKER = "collider server.main"\n',
    "protocol/__init__.py": 'MARKER = "collider protocol"\n',
    "protocol/table.py": 'MARKER = "collider protocol.table"\n',
}

CHECK = r"""
import json, sys, sysconfig
import server, server.main, protocol, protocol.table
import warren, warren.server.main, warren.protocol.table, warren.storage.factory
mods = [server, server.main, protocol, protocol.table,
        warren.server.main, warren.protocol.table, warren.storage.factory]
print(json.dumps({
    "purelib": sysconfig.get_paths()["purelib"],
    "markers": {m.__name__: getattr(m, "MARKER", None) for m in mods[:4]},
    "files": {m.__name__: m.__file__ for m in mods},
    "warren_path": list(warren.__path__),
}))
"""


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def _write_wheel(out: Path, name: str, version: str, files: dict[str, str]) -> Path:
    """A pure-Python wheel holding ``files`` (path -> text)."""
    dist_info = f"{name}-{version}.dist-info"
    tops = sorted({p.split("/")[0] for p in files})
    contents = {p: t.encode() for p, t in files.items()}
    contents[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    contents[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: warren-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    contents[f"{dist_info}/top_level.txt"] = "".join(t + "\n" for t in tops).encode()
    record = [f"{p},{_record_hash(d)},{len(d)}" for p, d in contents.items()]
    record.append(f"{dist_info}/RECORD,,")
    wheel = out / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for p, d in contents.items():
            zf.writestr(p, d)
        zf.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return wheel




def _dependency_dirs(wheel: Path) -> list[str]:
    """Where this interpreter has warren's (direct) runtime dependencies installed."""
    with zipfile.ZipFile(wheel) as zf:
        (meta,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        lines = zf.read(meta).decode().splitlines()
    names = [
        re.match(r"[A-Za-z0-9._-]+", line.split(":", 1)[1].strip()).group()
        for line in lines
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    assert names, "the wheel declares no dependencies"
    dirs = {str(importlib.metadata.distribution(n).locate_file("")) for n in names}
    return sorted(dirs)


@pytest.mark.timeout(300)
def test_warren_and_a_top_level_server_package_install_side_by_side(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    warren_wheel = build_warren_wheel(tmp_path, wheels)
    collider_wheel = _write_wheel(wheels, "collider", "1.0", COLLIDER)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    vpython = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(vpython), "install", "-q", "--no-deps", "--no-index",
         str(warren_wheel), str(collider_wheel)],
        check=True,
        timeout=120,
    )
    purelib = Path(
        subprocess.run(
            [str(vpython), "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True, capture_output=True, text=True, timeout=30,
        ).stdout.strip()
    )
    (purelib / "_warren_test_deps.pth").write_text("".join(d + "\n" for d in _dependency_dirs(warren_wheel)))

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    out = subprocess.run(
        [str(vpython), "-I", "-c", CHECK], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert Path(seen["purelib"]) == purelib

    # the collider's top-level packages are the collider's
    assert seen["markers"] == {
        "server": "collider server",
        "server.main": "collider server.main",
        "protocol": "collider protocol",
        "protocol.table": "collider protocol.table",
    }
    files = {m: Path(f).resolve() for m, f in seen["files"].items()}
    for mod in ("server", "server.main", "protocol", "protocol.table"):
        assert files[mod].is_relative_to(purelib.resolve() / mod.split(".")[0]), (mod, files[mod])
    # warren's come from the venv's wheel install, not from the checkout or its editable install
    assert [Path(p).resolve() for p in seen["warren_path"]] == [purelib.resolve() / "warren"]
    for mod in ("warren.server.main", "warren.protocol.table", "warren.storage.factory"):
        expected = purelib.resolve() / Path(*mod.split(".")).with_suffix(".py")
        assert files[mod] == expected, (mod, files[mod])

    # nothing of warren's at the top of site-packages but warren/ and its dist-info
    dist_info = f"{warren_wheel.name.split('-')[0]}-{warren_wheel.name.split('-')[1]}.dist-info"
    record = (purelib / dist_info / "RECORD").read_text().splitlines()
    installed = [line.rsplit(",", 2)[0] for line in record if line]
    assert {p.split("/")[0] for p in installed if not p.startswith("../")} == {"warren", dist_info}
    assert sorted(p.name for p in purelib.iterdir()) == sorted(
        ["warren", dist_info, "server", "protocol", "collider-1.0.dist-info", "_warren_test_deps.pth"]
    )

    # the console scripts keep their names and run from the venv
    for script in ("warren", "warrenctl", "warren-perf"):
        assert any(p == f"../../../bin/{script}" for p in installed), f"{script} not installed"
        run = subprocess.run(
            [str(venv / "bin" / script), "--help"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 0, (script, run.stderr)
        assert run.stdout.startswith(f"usage: {script}"), (script, run.stdout[:200])
