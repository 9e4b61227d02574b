"""Manifest v1 (DESIGN.md "Manifest, version 1"): the one path from a file to its checked, expanded jobs.

read (``read``: the text, then its YAML) → schema (``schema``: pydantic, strict, ``extra="forbid"``) → rules
and expansion (``expand``: the manifest format's rules, the API's rules once per distinct combination, then
every job's body, id and name). Each step reports every problem it finds before giving up, so a user fixes a
manifest in one round. Errors are ``ManifestError([Issue…])`` with file:line:col; warnings (text the server
would truncate) ride on ``Manifest.warnings``.
"""

from __future__ import annotations

import os
from pathlib import Path

from runner.errors import ConfigError, ManifestError
from runner.manifest.expand import expand
from runner.manifest.issues import IssueSink
from runner.manifest.read import parse_yaml, read_text
from runner.manifest.schema import validate
from runner.manifest.spec import Manifest
from runner.models import DEFAULT_REGION, REGIONS


def load_manifest(path: str | os.PathLike[str], region: str | None = None, also: tuple[str, ...] = ()) -> Manifest:
    """Read, validate and expand the manifest at ``path`` for ``region`` (default cn-beijing) — and ``also``, the
    regions of a run's other accounts: a model offered in any of them is valid (issue 18).

    Raises ``ManifestError`` listing every problem found, or ``ConfigError`` for an unknown region.
    """
    text = read_text(path)
    file = str(path)
    return parse_manifest(
        text, file=file, region=region, default_name=Path(file).stem, base_dir=Path(file).resolve().parent, also=also
    )


def parse_manifest(
    text: str,
    *,
    file: str = "<manifest>",
    region: str | None = None,
    default_name: str = "manifest",
    base_dir: Path | None = None,
    also: tuple[str, ...] = (),
) -> Manifest:
    """Validate and expand manifest ``text`` (``file`` only names it in messages; local audio files are read
    relative to ``base_dir``, default the current folder)."""
    region = region or DEFAULT_REGION
    also = tuple(r for r in dict.fromkeys(also) if r != region)
    for r in (region, *also):
        if r not in REGIONS:
            raise ConfigError(f"unknown region {r!r}; known: {', '.join(sorted(REGIONS))}")
    data = parse_yaml(text, file)
    sink = IssueSink(file, text)
    parts = validate(data, sink)
    raw_jobs = data.get("jobs")
    job_lines = [getattr(raw, "pos", (0, 0))[0] for raw in raw_jobs] if isinstance(raw_jobs, list) else []
    del data, raw_jobs  # the jobs' values live on in ``parts``; positions for messages come from a second parse
    name, jobs = expand(parts, sink, job_lines, region, default_name, base_dir, also)
    if sink.has_errors():
        raise ManifestError(sink.errors())
    return Manifest(name, file, region, jobs, sink.warnings(), text, also)
