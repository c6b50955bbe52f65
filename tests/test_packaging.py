"""The installed package is complete: what the source tree has, the wheel has."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_carries_every_file_of_the_package(tmp_path: Path) -> None:
    # build from a copy without build leftovers (an old egg-info would hide a missing file)
    project = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    shutil.copytree(ROOT / "tuichat", project / "tuichat", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), project],
        check=True,
    )
    (wheel,) = tmp_path.glob("tuichat-*.whl")
    packaged = set(zipfile.ZipFile(wheel).namelist())
    source = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "tuichat").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert source - packaged == set()
