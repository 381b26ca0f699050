"""Make ``warren.*`` resolve to this checkout, for the tests and the brokers they start.

The packages are installed under the ``warren`` namespace (``warren.server`` is
``server/`` here, see pyproject's package-dir). An editable install points at one
checkout; a second checkout (a git worktree) would otherwise test the first one's
code. When that is so, a directory of symlinks (``.pytest-ns/warren/server`` ->
``server/`` ...) goes first on ``sys.path`` and on ``PYTHONPATH``, which the
broker subprocesses inherit.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
_PACKAGES = ("server", "protocol", "storage", "bench")


def _use_this_checkout() -> None:
    spec = importlib.util.find_spec("warren.server")
    if spec is not None and spec.origin and Path(spec.origin).resolve().parent == ROOT / "server":
        return
    ns = ROOT / ".pytest-ns" / "warren"
    ns.mkdir(parents=True, exist_ok=True)
    for name in _PACKAGES:
        link = ns / name
        if not link.is_symlink():
            try:
                link.symlink_to(ROOT / name, target_is_directory=True)
            except FileExistsError:  # another pytest run in this checkout made it meanwhile
                pass
    path = str(ns.parent)
    sys.path.insert(0, path)
    os.environ["PYTHONPATH"] = path + os.pathsep + os.environ.get("PYTHONPATH", "")
    for mod in [m for m in sys.modules if m == "warren" or m.startswith("warren.")]:
        del sys.modules[mod]


_use_this_checkout()
