"""Fixtures of the gallery tests: one realistic run folder built once per session, copied per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.report.runfolder import build_run


@pytest.fixture(scope="session")
def pristine_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run folder as the pipeline leaves it (no index.html, no posters yet). Do not modify."""
    return build_run(tmp_path_factory.mktemp("pristine") / "detective-trailer")


@pytest.fixture
def run_dir(pristine_run: Path, tmp_path: Path) -> Path:
    """A private copy of the run folder, free to modify."""
    return Path(shutil.copytree(pristine_run, tmp_path / "detective-trailer"))
