"""docs/SCHEDULING.md stays true to the command line: every ``wanbatch`` command it shows (shell lines, the
crontab line, systemd's ExecStart) parses with the real parser, and its cron expressions are valid."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from runner.cli import build_parser
from runner.schedule.cron import parse_cron

DOC = Path(__file__).resolve().parents[2] / "docs" / "SCHEDULING.md"
_FENCE = re.compile(r"```[a-z]*\n(.*?)```", re.S)
_COMMAND = re.compile(r"(?:^|[\s=])(?:\S*/)?wanbatch\s+((?:plan|run|schedule|status|cancel|report)\b.*)")


README = DOC.parents[1] / "README.md"


def _scheduling_text() -> str:
    """docs/SCHEDULING.md and the README's "Scheduled runs" section."""
    readme = README.read_text(encoding="utf-8")
    start = readme.find("## Scheduled runs")
    section = readme[start : readme.find("\n## ", start + 1)] if start >= 0 else ""
    return DOC.read_text(encoding="utf-8") + "\n" + section


def documented_commands() -> list[str]:
    """The argument part of every ``wanbatch …`` command in the code blocks (continuations joined, shell
    operators and redirections cut off)."""
    out = []
    for block in _FENCE.findall(_scheduling_text()):
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            m = _COMMAND.search(line)
            if m:
                out.append(re.split(r"\s(?:>>|>|&&|\|\||\||;)\s", m.group(1))[0].strip())
    return out


def test_the_page_documents_all_three_ways() -> None:
    text = DOC.read_text(encoding="utf-8")
    for needle in ("crontab -e", "ExecStart=", "[Timer]", "OnCalendar=", "wanbatch schedule --cron"):
        assert needle in text
    assert len(documented_commands()) >= 5  # four in the page, one in the README


@pytest.mark.parametrize("command", documented_commands())
def test_documented_command_parses(command: str) -> None:
    argv = shlex.split(command)
    args = build_parser().parse_args(argv)  # SystemExit (a failed test) on anything argparse refuses
    assert args.command == argv[0]
    if args.command == "schedule":
        parse_cron(args.cron)


def test_documented_cron_lines_are_valid() -> None:
    text = DOC.read_text(encoding="utf-8")
    crontab = re.findall(r"```crontab\n(.*?)```", text, re.S)
    assert crontab
    for line in crontab[0].splitlines():
        if line.strip() and not line.startswith("#"):
            parse_cron(" ".join(line.split()[:5]))
