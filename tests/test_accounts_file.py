"""The accounts file (runner.accounts, issue 18): what it accepts, and file:line for every mistake; a key never
appears in a message or a repr."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner.accounts import AccountConfig, ModelLimits, default_account, load_accounts
from runner.errors import ConfigError

KEY = "sk-accountFileSECRET0042"


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    p = tmp_path / "accounts.yaml"
    p.write_text(text, encoding="utf-8")
    os.chmod(p, mode)
    return p


def test_a_good_file(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "accounts:\n"
        "  - name: team-bj\n    region: cn-beijing\n    key_env: KEY_BJ\n"
        f"  - name: team-sg\n    region: ap-southeast-1\n    key: {KEY}\n    base_url: http://127.0.0.1:9/api/v1\n"
        "    limits: {wan2.6-t2v: {qps: 3, max_in_flight: 4}}\n",
    )
    bj, sg = load_accounts(p, {"KEY_BJ": "sk-bj-key-123456"})
    assert (bj.name, bj.region, bj.key, bj.url(), bj.line) == (
        "team-bj", "cn-beijing", "sk-bj-key-123456", "https://dashscope.aliyuncs.com/api/v1", 2,
    )  # fmt: skip
    assert sg.url() == "http://127.0.0.1:9/api/v1" and sg.limits == {"wan2.6-t2v": ModelLimits(3.0, 4)}
    assert KEY not in repr(sg) and "sk-bj" not in repr(bj)
    assert sg.offers("wan2.6-t2v") and not sg.offers("wan2.6-t2v-us")


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("accounts: []\n", ":1:", "is empty"),
        ("acounts:\n  - name: a\n", ":1:", "unknown key 'acounts'"),
        ("accounts:\n  - name: a\n    region: mars\n    key_env: K\n", ":3:", "unknown region 'mars'"),
        ("accounts:\n  - name: a\n    region: cn-beijing\n", ":2:", "exactly one of key_env"),
        ("accounts:\n  - name: a\n    region: cn-beijing\n    key_env: NOPE\n", ":4:", "the variable NOPE is not set"),
        (
            "accounts:\n  - name: a\n    region: cn-beijing\n    key_env: K\n  - name: a\n    region: cn-beijing\n"
            "    key_env: K\n",
            ":5:",
            "used twice",
        ),
        (
            "accounts:\n  - name: a\n    region: cn-beijing\n    key_env: K\n    limits: {wan9: {qps: 1}}\n",
            ":5:",
            "unknown model 'wan9'",
        ),
        ("accounts:\n  - name: a\n    region: eu-central-1\n    key_env: K\n", ":2:", "workspace hosts"),
        (
            "accounts:\n  - name: a\n    region: cn-beijing\n    key_env: K\n    limits: {wan2.6-t2v: {qps: -1}}\n",
            ":5:",
            "qps must be a positive number",
        ),
        ("accounts:\n  - name: a/b\n    region: cn-beijing\n    key_env: K\n", ":2:", "invalid account name"),
        ("accounts:\n  - [nope\n", ":3:", "not valid YAML"),
    ],
)
def test_mistakes_name_file_and_line(tmp_path: Path, text: str, where: str, what: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_accounts(p, {"K": "sk-env-key-000000"})
    assert f"{p}{where}" in str(e.value) and what in str(e.value), str(e.value)


def test_a_key_in_a_file_others_can_read_is_refused(tmp_path: Path) -> None:
    p = write(tmp_path, f"accounts:\n  - name: a\n    region: cn-beijing\n    key: {KEY}\n", mode=0o644)
    with pytest.raises(ConfigError) as e:
        load_accounts(p, {})
    assert f"{p}:4:" in str(e.value) and "chmod 600" in str(e.value) and KEY not in str(e.value)


def test_the_default_account() -> None:
    a = default_account(KEY, "cn-beijing", None)
    assert isinstance(a, AccountConfig) and a.name == "default" and a.url().endswith("/api/v1")
    assert KEY not in repr(a)
