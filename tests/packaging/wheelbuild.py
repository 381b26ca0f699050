"""Build warren's wheel from a copy of the sources: a build inside the checkout would
reuse ``build/lib``, whose stale files end up in the wheel."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("server", "protocol", "storage", "bench")


def build_warren_wheel(tmp_path: Path, out: Path) -> Path:
    src = tmp_path / "warren-src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for top in PACKAGES:
        shutil.copytree(REPO / top, src / top, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "results"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(src)],
        check=True,
        cwd=tmp_path,
        timeout=240,
    )
    (wheel,) = out.glob("warren-*.whl")
    return wheel
