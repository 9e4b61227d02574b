"""``plan --accounts FILE`` (issue 18): the split over the accounts by their in-flight room, the time with all of
them, the price range across their regions — and no key is needed to plan."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _files(tmp_path: Path) -> tuple[Path, Path]:
    manifest = tmp_path / "m.yaml"
    jobs = "".join(f"  - name: c{i}\n    prompt: Shot {i} of a bay at dawn.\n" for i in range(40))
    manifest.write_text(
        'version: 1\nname: pa\ndefaults:\n  model: wan2.6-t2v\n  size: "1280*720"\n  duration: 5\n'
        f"jobs:\n{jobs}  - name: old\n    model: wan2.1-t2v-turbo\n    prompt: A mill by a stream.\n",
        encoding="utf-8",
    )
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text(
        "accounts:\n"
        "  - {name: bj, region: cn-beijing, key_env: UNSET_KEY_1}\n"
        "  - {name: sg, region: ap-southeast-1, key_env: UNSET_KEY_2}\n"
        "  - {name: us, region: us-east-1, key_env: UNSET_KEY_3, limits: {wan2.6-t2v: {max_in_flight: 10}}}\n",
        encoding="utf-8",
    )
    return manifest, accounts


def _plan(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "runner", "plan", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip


def test_the_split_time_and_price_range_over_three_accounts(tmp_path: Path) -> None:
    manifest, accounts = _files(tmp_path)
    r = _plan(str(manifest), "--accounts", str(accounts), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "split of wan2.6-t2v: bj 10, sg 10, us 20 (by in-flight room: 20 at a time in all)" in r.stdout
    assert "split of wan2.1-t2v-turbo: bj 1, sg 0" in r.stdout  # never to us-east-1: not offered there
    assert "time for wan2.6-t2v with all accounts: 2 min to 10 min" in r.stdout  # 2 waves of 20 vs 8 of 5 alone
    assert "to" in r.stdout.split("cost with these accounts: ")[1] and "prices differ" in r.stdout
    data = json.loads(_plan(str(manifest), "--accounts", str(accounts), "--json", cwd=tmp_path).stdout)
    split = {s["model"]: s for s in data["accounts"]["splits"]}
    assert split["wan2.6-t2v"]["shares"] == {"bj": 10, "sg": 10, "us": 20}
    cost = data["accounts"]["cost"]
    assert cost["low"] == data["totals"]["cost"] < cost["high"]  # Beijing is the cheapest region here


def test_a_mistake_in_the_accounts_file_is_located_and_exits_2(tmp_path: Path) -> None:
    manifest, accounts = _files(tmp_path)
    accounts.write_text("accounts:\n  - name: bj\n    region: mars-1\n    key_env: K\n", encoding="utf-8")
    r = _plan(str(manifest), "--accounts", str(accounts), cwd=tmp_path)
    assert r.returncode == 2 and f"{accounts}:3: unknown region 'mars-1'" in r.stderr
