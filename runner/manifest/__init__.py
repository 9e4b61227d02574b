"""Manifests: from a YAML file to checked, expanded, priced jobs (DESIGN.md "Manifest, version 1").

One path, one module per step: ``read`` (the text and its YAML: ``line_reader`` for the plain block style big
manifests use, else ``located``, the libyaml loader that keeps line and column), ``schema`` (pydantic),
``format_rules`` and ``rules`` (the manifest format's rules; the API's, once per distinct combination),
``expand`` (every job's fields, prompt from ``templates``, body, id and name), ``load`` (the steps in order),
``plan`` (prices, time, the ``plan`` command's table and JSON). ``issues`` places every message at its
file:line:col. The package imports nothing from the run engine: only ``runner.models``, ``runner.errors`` and
``runner.accounts`` (``plan --accounts``).
"""

from runner.errors import Issue, ManifestError
from runner.manifest.expand import MAX_JOBS, canonical_json, job_id
from runner.manifest.format_rules import MAX_NAME_CHARS, MAX_REPEAT
from runner.manifest.load import load_manifest, parse_manifest
from runner.manifest.plan import (
    CapsText,
    ModelEstimate,
    Plan,
    PlannedJob,
    PlanSettings,
    build_plan,
    iter_json,
    iter_table,
    plan_command,
    render_json,
    render_table,
)
from runner.manifest.spec import JobSpec, Manifest

__all__ = [
    "MAX_JOBS",
    "MAX_NAME_CHARS",
    "MAX_REPEAT",
    "CapsText",
    "Issue",
    "JobSpec",
    "Manifest",
    "ManifestError",
    "ModelEstimate",
    "Plan",
    "PlanSettings",
    "PlannedJob",
    "build_plan",
    "canonical_json",
    "iter_json",
    "iter_table",
    "job_id",
    "load_manifest",
    "parse_manifest",
    "plan_command",
    "render_json",
    "render_table",
]
