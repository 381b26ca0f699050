"""The wheel ``pip install .`` builds holds every package and data file the broker needs.

The README's first command is a non-editable install: a package missing from the
wheel (the tests, running from the checkout, would never notice) breaks ``warren``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tests.packaging.wheelbuild import build_warren_wheel

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(180)
def test_wheel_has_every_package_and_the_dashboard(tmp_path: Path) -> None:
    wheel = build_warren_wheel(tmp_path, tmp_path / "out")
    names = set(zipfile.ZipFile(wheel).namelist())
    for top in ("protocol", "server", "storage", "bench"):
        for init in (REPO / top).rglob("__init__.py"):
            pkg = init.parent.relative_to(REPO)
            for module in pkg.glob("*.py"):
                assert f"warren/{module}" in names, f"{module} is not in the wheel"
    assert "warren/storage/log/fsync_helper.py" in names
    # nothing generic at the top of site-packages: every file is under warren/ (or the dist-info)
    assert {n.split("/")[0] for n in names} <= {"warren", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}
    static = [p.relative_to(REPO) for p in (REPO / "server" / "static").iterdir() if p.is_file()]
    assert static and all(f"warren/{p}" in names for p in static)


def test_every_package_is_listed_in_pyproject() -> None:
    """The package-dir mapping rules out setuptools' find: pyproject lists the packages."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    present = {
        "warren." + ".".join(init.parent.relative_to(REPO).parts)
        for top in ("server", "protocol", "storage", "bench")
        for init in (REPO / top).rglob("__init__.py")
    }
    assert present - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - present == set(), "these are listed in pyproject.toml but are not packages"
