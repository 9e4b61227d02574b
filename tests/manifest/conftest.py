"""Helpers for manifest tests: write a manifest to a temp file, load it, or run `plan` on it in-process."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from runner.errors import Issue, ManifestError
from runner.manifest import Manifest, PlanSettings, load_manifest, plan_command
from runner.models import DEFAULT_REGION

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"


@dataclass
class PlanRun:
    code: int
    out: str
    err: str


def run_plan(path: Path | str, *, json: bool = False, region: str | None = None) -> PlanRun:
    out, err = io.StringIO(), io.StringIO()
    settings = PlanSettings(manifest=str(path), region=region or DEFAULT_REGION, as_json=json)
    code = plan_command(settings, stdout=out, stderr=err)
    return PlanRun(code, out.getvalue(), err.getvalue())


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str], Path]:
    """Write dedented YAML text to m.yaml and return its path."""

    def _write(text: str, name: str = "m.yaml") -> Path:
        p = tmp_path / name
        p.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return p

    return _write


@pytest.fixture
def load(write: Callable[[str], Path]) -> Callable[..., Manifest]:
    def _load(text: str, region: str | None = None) -> Manifest:
        return load_manifest(write(text), region)

    return _load


@pytest.fixture
def issues(write: Callable[[str], Path]) -> Callable[..., list[Issue]]:
    """The issues a manifest raises (fails the test when it loads)."""

    def _issues(text: str, region: str | None = None) -> list[Issue]:
        with pytest.raises(ManifestError) as e:
            load_manifest(write(text), region)
        return e.value.issues

    return _issues
