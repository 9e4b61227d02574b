"""What loading a manifest gives: the ``Manifest`` and its expanded ``JobSpec``s (the contract with the run)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runner.errors import Issue
from runner.manifest.audio import LocalAudio


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One expanded job: what ``run`` submits and the ledger keys by ``job_id``."""

    job_id: str  # 32 hex chars: sha256 of the canonical request (canonical model name) + take
    name: str  # unique within the manifest, file-name safe
    model: str  # canonical model name (models.MODELS key)
    request: dict[str, Any]  # the exact POST body for the region: {"model", "input", "parameters"?}
    size: str  # effective size (the request's or the model's default), "W*H"
    duration: int  # effective duration in seconds
    seed: int | None
    shot_type: str | None
    prompt: str
    take: int  # 1..repeat
    line: int  # manifest line of the job entry, for messages
    tier: str = ""  # resolution tier of ``size`` (480P/720P/1080P)
    audio: LocalAudio | None = None  # the local audio file ``request`` names by its file:// URL (issue 19)


@dataclass(frozen=True)
class Manifest:
    """A loaded, validated, expanded manifest."""

    name: str
    path: str
    region: str
    jobs: list[JobSpec]
    warnings: list[Issue] = field(default_factory=list)
    text: str = ""  # the manifest as read, for the run's snapshot
    also: tuple[str, ...] = ()  # the regions of the run's other accounts, also checked (issue 18)
