"""Accounts from the command line and the environment (``--account``, ``WANBATCH_EMULATOR_ACCOUNTS``), their
errors (exit 2, never quoting a key), a real process serving two accounts, and the official SDK on an account's
key."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import urllib.error
import urllib.request
from http import HTTPStatus
from typing import Any

import pytest

from runner.emulator import EmulatorConfig, run_in_thread
from runner.emulator.accounts import AccountSpec
from runner.emulator.cli import add_arguments, config_from_args, main

SECRET = "sk-very-secret-0123"


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANBATCH_EMULATOR_API_KEYS", raising=False)
    monkeypatch.delenv("WANBATCH_EMULATOR_ACCOUNTS", raising=False)


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(list(argv))


def config(*argv: str) -> EmulatorConfig:
    return config_from_args(parse(*argv))


def test_accounts_from_the_command_line() -> None:
    cfg = config(
        "--account", "team-bj=sk-a,qps=3,in_flight=2",
        "--account", "team.sg=sk-b, arrears=5, deny=wanx2.1-t2v-turbo, deny=wan2.2-t2v-plus",
        "--account", "team-bj=sk-a2",
    )  # fmt: skip
    assert cfg.accounts == (
        AccountSpec("team-bj", "sk-a", qps=3, in_flight=2),
        AccountSpec("team.sg", "sk-b", arrears_after=5, denied_models=("wan2.1-t2v-turbo", "wan2.2-t2v-plus")),
        AccountSpec("team-bj", "sk-a2"),
    )
    assert "sk-a" not in repr(cfg) and "sk-b" not in repr(cfg)
    assert config().accounts == ()


def test_accounts_from_the_environment_follow_the_command_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANBATCH_EMULATOR_ACCOUNTS", "b=sk-b,qps=1; c=sk-c ;")
    cfg = config("--account", "a=sk-a")
    assert [(a.name, a.key, a.qps) for a in cfg.accounts] == [
        ("a", "sk-a", None),
        ("b", "sk-b", 1),
        ("c", "sk-c", None),
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (SECRET, "an account is NAME=KEY[,qps=N][,in_flight=N][,arrears=K][,deny=MODEL]: no '=' in it"),
        (f"={SECRET}", "an account is NAME=KEY[,qps=N][,in_flight=N][,arrears=K][,deny=MODEL]: the NAME before '='"),
        ("a=", "account 'a': the key is missing"),
        (f"a b={SECRET}", "account name 'a b'"),
        (f"a={SECRET},qps=0", "account 'a': qps must be >= 1"),
        (f"a={SECRET},in_flight={SECRET}", "account 'a': in_flight must be a whole number"),
        (f"a={SECRET},arrears=-1", "account 'a': arrears must be >= 0"),
        (f"a={SECRET},qps=2,qps=3", "account 'a': qps is given twice"),
        (f"a={SECRET},burst=3", "account 'a': no setting 'burst'; settings: qps, in_flight, arrears, deny"),
        (f"a={SECRET},qps", "account 'a': qps needs a value"),
        (f"a={SECRET},deny=wan9-t2v", "account 'a': deny=wan9-t2v: no such model"),
        (f"a={SECRET},9x", "account 'a': a part after the key is not SETTING=VALUE"),
    ],
)
def test_a_bad_account_is_a_usage_error_that_never_shows_the_key(
    spec: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as e:
        parse("--account", spec)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --account: {message}" in err
    assert SECRET not in err


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--account", f"a={SECRET}", "--account", f"b={SECRET}"], {}, "the same key is given twice (accounts 'a' and"),
        (["--account", f"a={SECRET},qps=2", "--account", "a=sk-2,qps=3"], {}, "account 'a': its specs give different"),
        (["--account", f"a={SECRET}", "--api-key", "sk-x"], {}, "cannot be mixed with accounts"),
        (["--account", f"a={SECRET}"], {"WANBATCH_EMULATOR_API_KEYS": "sk-x"}, "cannot be mixed with accounts"),
        ([], {"WANBATCH_EMULATOR_ACCOUNTS": f"a={SECRET},qps=x"}, "WANBATCH_EMULATOR_ACCOUNTS: account 'a': qps must"),
    ],
)  # fmt: skip
def test_accounts_that_do_not_fit_together_exit_2(
    argv: list[str],
    env: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main([*argv, "--port", "0"]) == 2  # refused before it listens
    err = capsys.readouterr().err
    assert err.startswith("wanbatch emulator: ") and message in err
    assert SECRET not in err


def _call(root: str, path: str, key: str, data: bytes | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}", "X-DashScope-Async": "enable", "Content-Type": "application/json"}
    req = urllib.request.Request(root + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def test_process_serves_each_account_its_own_tasks() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "runner", "emulator", "--port", "0", "--account", "a=sk-a", "--account", "b=sk-b,qps=2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as proc:  # fmt: skip
        try:
            assert proc.stdout is not None
            root = proc.stdout.readline().strip().removeprefix("emulator listening on ").removesuffix("/api/v1")
            made = b'{"model": "wan2.6-t2v", "input": {"prompt": "a cat"}}'
            status, data = _call(root, "/api/v1/services/aigc/video-generation/video-synthesis", "sk-a", made)
            assert status == 200, data
            task = data["output"]["task_id"]
            assert _call(root, f"/api/v1/tasks/{task}", "sk-b")[1]["output"]["task_status"] == "UNKNOWN"
            assert _call(root, f"/api/v1/tasks/{task}", "sk-a")[1]["output"]["task_status"] == "PENDING"
            assert _call(root, f"/api/v1/tasks/{task}", "sk-c")[0] == 401
            with urllib.request.urlopen(root + "/_emulator/stats", timeout=10) as r:
                per = json.load(r)["accounts"]
            assert (per["a"]["submitted"], per["b"]["submitted"], per["b"]["foreign"]) == (1, 0, 1)
            proc.terminate()
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_the_official_sdk_on_an_accounts_key() -> None:
    dashscope = pytest.importorskip("dashscope")
    from dashscope import VideoSynthesis

    accounts = (AccountSpec("a", "sk-sdk-a"), AccountSpec("b", "sk-sdk-b", qps=2, in_flight=2))
    old = dashscope.base_http_api_url
    with run_in_thread(EmulatorConfig(speed=100.0, task_time=80.0, seed=1, accounts=accounts)) as emu:
        dashscope.base_http_api_url = emu.base_url
        try:
            rsp = VideoSynthesis.call(api_key="sk-sdk-b", model="wan2.6-t2v", prompt="a cat", size="1280*720")
            assert rsp.status_code == HTTPStatus.OK and rsp.output.task_status == "SUCCEEDED"
            assert emu.state.account_of(rsp.output.task_id) == "b"
            other = VideoSynthesis.fetch(rsp, api_key="sk-sdk-a")
            assert (other.status_code, other.output.task_status) == (HTTPStatus.OK, "UNKNOWN")
            assert VideoSynthesis.cancel(rsp, api_key="sk-sdk-a").code == "UnsupportedOperation"
            assert VideoSynthesis.list(api_key="sk-sdk-a").output["total"] == 0
            assert VideoSynthesis.list(api_key="sk-sdk-b").output["total"] == 1
            refused = VideoSynthesis.async_call(api_key="sk-nobody", model="wan2.6-t2v", prompt="x")
            assert (refused.status_code, refused.code) == (401, "InvalidApiKey")
        finally:
            dashscope.base_http_api_url = old
        per = emu.stats()["accounts"]
    assert per["b"]["submitted"] == 1 and per["b"]["foreign"] == 0
    assert per["a"]["submitted"] == 0 and per["a"]["foreign"] == 2  # the fetch and the cancel
