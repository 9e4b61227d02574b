"""A job's prompt as a template: ``{name}`` placeholders filled from the vars, ``{{``/``}}`` literal braces, and
intro + shots composed into the API's multi-shot text ("Shot 1 [0–3 s]: …"). Parsed once per job, rendered
once per expanded job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from runner.manifest.issues import IssueSink, Path, path_str
from runner.manifest.schema import JobModel

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def parse_template(text: str) -> list[tuple[str, str | None]]:
    """``"a {x} b"`` → ``[("a ", None), ("", "x"), (" b", None)]``-style parts: (literal, var name).

    ``{{`` and ``}}`` stand for literal braces; braces around anything but a name stay as written.
    """
    parts: list[tuple[str, str | None]] = []
    last = 0
    for m in _PLACEHOLDER.finditer(text):
        literal = text[last : m.start()]
        token = m.group(0)
        if m.group(1) is None:
            parts.append((literal + token[0], None))
        else:
            parts.append((literal, m.group(1)))
        last = m.end()
    parts.append((text[last:], None))
    return parts


def _render(parts: list[tuple[str, str | None]], values: dict[str, str]) -> str:
    return "".join(lit + values[var] if var is not None else lit for lit, var in parts)


def _format_string(parts: list[tuple[str, str | None]]) -> str:
    """The parts as a ``str.format_map`` string: literal braces doubled, each placeholder ``{name}``. Rendering it
    is one C call per job instead of a join over the parts."""
    return "".join(lit.replace("{", "{{").replace("}", "}}") + ("{" + var + "}" if var else "") for lit, var in parts)


@dataclass(frozen=True, slots=True)
class Templates:
    """A job's prompt text with its placeholders parsed once, rendered per expanded job."""

    form: str  # the whole prompt as a format string (pieces joined by a space)
    path: Path
    constant: str | None

    def render(self, values: dict[str, str]) -> str:
        if self.constant is not None:
            return self.constant
        return self.form.format_map(values)


def job_templates(sink: IssueSink, job: JobModel, jpath: Path, known: set[str] | frozenset[str]) -> Templates | None:
    """Parse prompt (or intro + shots) of a job; unknown placeholders are errors."""
    sources: list[tuple[str, str, Path]] = []  # (prefix, text, path)
    if job.prompt is not None and "{" not in job.prompt and "}" not in job.prompt:
        prompt = job.prompt.strip()
        if prompt:  # the common case, made cheap: no placeholders to look for
            return Templates("", (*jpath, "prompt"), prompt)
    elif job.prompt is not None and "{{" not in job.prompt and "}}" not in job.prompt:
        prompt = job.prompt.strip()
        names = _PLACEHOLDER.findall(prompt)
        if names and prompt.count("{") == len(names) == prompt.count("}") and known.issuperset(names):
            return Templates(prompt, (*jpath, "prompt"), None)  # each brace is a known placeholder: as it is
    if job.prompt is not None:
        sources.append(("", job.prompt.strip(), (*jpath, "prompt")))
        prompt_path: Path = (*jpath, "prompt")
    else:
        assert job.shots is not None
        prompt_path = (*jpath, "shots")
        if not job.shots:
            return None  # reported by check_shots
        if job.intro is not None and job.intro.strip():
            sources.append(("", job.intro.strip(), (*jpath, "intro")))
        for k, shot in enumerate(job.shots):
            prefix = f"Shot {k + 1} [{shot.from_}–{shot.to} s]: "
            sources.append((prefix, shot.text.strip(), (*jpath, "shots", k, "text")))
    pieces = []
    ok = True
    uses_vars = False
    for prefix, text, path in sources:
        parts = parse_template(text)
        for _, var in parts:
            if var is None:
                continue
            uses_vars = True
            if var not in known:
                have = ", ".join(sorted(known)) or "none"
                sink.error(path, path_str(path), f"unknown placeholder {{{var}}}; known vars: {have}")
                ok = False
        pieces.append((prefix, parts))
    if not ok:
        return None
    if not "".join(text for _, text, _ in sources):
        sink.error(prompt_path, path_str(prompt_path), "the prompt is empty")
        return None
    if not uses_vars:
        return Templates("", prompt_path, " ".join(p + _render(parts, {}) for p, parts in pieces))
    form = " ".join(_format_string([(p, None), *parts]) for p, parts in pieces)
    return Templates(form, prompt_path, None)
