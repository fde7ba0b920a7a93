"""The distribution as PyPI or a git install would get it: sdist and wheel, twine-clean.

``python -m build`` builds both into a temporary folder (its isolated build environment comes
from PyPI), ``twine check --strict`` validates their metadata, and the wheel must hold every
package with its ``py.typed``, the plugins' and the receiver's console scripts, the license
and the project URLs.
"""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

from tools.about import PACKAGES, PLUGINS, ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _run(*command: str, cwd: Path = ROOT) -> str:
    result = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, check=False, timeout=600
    )
    assert result.returncode == 0, f"{command}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(ROOT))
    wheels, sdists = list(out.glob("*.whl")), list(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


def test_twine_check_strict_passes(dist: dict[str, Path]) -> None:
    twine = shutil.which("twine", path=str(Path(sys.executable).parent)) or "twine"
    out = _run(twine, "check", "--strict", str(dist["wheel"]), str(dist["sdist"]))
    assert out.count("PASSED") == 2, out


def test_wheel_holds_every_package_typed_with_scripts_and_license(dist: dict[str, Path]) -> None:
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        names = set(wheel.namelist())
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(wheel.read(f"{info}/METADATA"))
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
    packages = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert set(PACKAGES.values()) <= set(packages)
    for package in packages:
        assert f"{package}/__init__.py" in names, package
        assert f"{package}/py.typed" in names, package
    assert not any(n.startswith(("tests/", "sandbox/", "bench/", "tools/")) for n in names)
    for plugin, target in PYPROJECT["project"]["scripts"].items():
        assert f"{plugin} = {target}" in entry_points
    # the four plugins, the cohort-sync webhook receiver and the cohort-loop reconciliation
    scripts = [*PLUGINS, "mixpanel-cohort-webhook", "reconcile-cohorts", "reconcile-export-loop"]
    assert sorted(PYPROJECT["project"]["scripts"]) == sorted(scripts)
    assert f"{info}/licenses/LICENSE" in names
    assert metadata["License-Expression"] == "MIT"
    assert metadata["Name"] == "braze-mixpanel-singer"
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL") or [])
    assert urls["Repository"] == PYPROJECT["project"]["urls"]["Repository"]
    assert metadata["Version"][:1].isdigit()


def test_sdist_builds_the_same_version_without_git(dist: dict[str, Path], tmp_path: Path) -> None:
    """A source archive carries its version (PKG-INFO): no git metadata needed to rebuild it."""
    with tarfile.open(dist["sdist"]) as sdist:
        sdist.extractall(tmp_path, filter="data")
    (source,) = list(tmp_path.iterdir())
    assert not (source / ".git").exists()
    for required in ("LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "hub"):
        assert (source / required).exists(), required
    out = tmp_path / "rebuilt"
    _run(sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(source))
    (rebuilt,) = list(out.glob("*.whl"))
    assert rebuilt.name == dist["wheel"].name
