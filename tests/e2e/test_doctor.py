"""``wanbatch doctor`` against the emulator (issue 17): all ok; a wrong key; a host of another region; an output
folder that cannot be written. It never creates a task and never prints the key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .conftest import KEY, cli, env


def doctor(tmp_path: Path, *args: str, key: str | None = KEY) -> tuple[int, dict[str, Any], str]:
    environ = env() if key == KEY else {**env(), "DASHSCOPE_API_KEY": key or ""}
    r = cli("doctor", "--out", str(tmp_path / "runs"), "--json", *args, cwd=tmp_path, environ=environ)
    assert KEY not in r.stdout + r.stderr
    data = json.loads(r.stdout) if r.stdout.strip() else {}
    return r.returncode, {c["name"]: c for c in data.get("checks", [])}, r.stderr


def test_all_ok(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(api_keys=(KEY,))
    code, checks, err = doctor(tmp_path, "--base-url", emu.base_url)
    assert code == 0, (checks, err)
    assert {c["status"] for c in checks.values()} == {"ok"}
    assert set(checks) >= {"key", "host", "dns", "connect", "account", "clock", "output", "state", "disk"}
    assert checks["key"]["detail"].endswith(f"ends …{KEY[-4:]})")
    assert emu.stats()["submitted"] == 0 and emu.stats()["requests"] == {"list": 1}
    plain = cli("doctor", "--out", str(tmp_path / "runs"), "--base-url", emu.base_url, cwd=tmp_path)
    assert plain.returncode == 0 and plain.stdout.count("\n") >= 8 and "FAIL" not in plain.stdout


def test_a_wrong_key_is_the_accounts_problem(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(api_keys=(KEY,))
    code, checks, _ = doctor(tmp_path, "--base-url", emu.base_url, key="sk-wrongWRONGwrong0000")
    assert code == 4
    assert checks["account"]["status"] == "refused" and "InvalidApiKey" in checks["account"]["detail"]
    assert "DASHSCOPE_API_KEY" in checks["account"]["fix"]


def test_no_key_is_a_local_problem(tmp_path: Path, emulator: Any) -> None:
    emu = emulator()
    code, checks, _ = doctor(tmp_path, "--base-url", emu.base_url, key="")
    assert code == 2 and checks["key"]["status"] == "local"


def test_a_host_of_another_region(tmp_path: Path) -> None:
    code, checks, _ = doctor(
        tmp_path, "--region", "cn-beijing", "--base-url", "https://dashscope-intl.aliyuncs.com/api/v1"
    )
    assert checks["host"]["status"] == "local" and "ap-southeast-1" in checks["host"]["detail"]
    assert code in (2, 4)  # 4 as well when this machine cannot reach the real host (it cannot, here)


def test_an_unwritable_output_folder(tmp_path: Path, emulator: Any) -> None:
    emu = emulator()
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")  # even root cannot make a folder inside a file
    r = cli("doctor", "--out", str(blocked / "runs"), "--base-url", emu.base_url, "--json", cwd=tmp_path)
    assert r.returncode == 2, r.stdout
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["output"]["status"] == "local" and "not writable" in checks["output"]["detail"]
