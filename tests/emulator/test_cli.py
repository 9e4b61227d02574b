"""The command line: options → EmulatorConfig, and a real process that prints its URL and stops on SIGTERM."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import urllib.request

import pytest

from runner.emulator.cli import add_arguments, config_from_args
from runner.emulator.faults import parse_fault


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(list(argv))


def test_defaults_match_design(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANBATCH_EMULATOR_API_KEYS", raising=False)
    cfg = config_from_args(parse())
    assert (cfg.host, cfg.port, cfg.speed, cfg.seed, cfg.concurrency_mode) == ("127.0.0.1", 8000, 1.0, 0, "queue")
    assert cfg.api_keys == () and cfg.quotas and cfg.faults == ()


def test_every_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANBATCH_EMULATOR_API_KEYS", raising=False)
    cfg = config_from_args(
        parse(
            "--host", "0.0.0.0", "--port", "0", "--speed", "60", "--seed", "9",
            "--fault", "500@create=0.1", "--fault", "reset_after_create=0.05",
            "--concurrency-mode", "reject", "--api-key", "sk-a", "--api-key", "sk-b",
            "--task-time", "30", "--retention", "600", "--url-ttl", "60", "--qps-scale", "10", "--no-quotas",
            "--block-word", "zap", "--slow-seconds", "0.5", "--fps", "2",
        )
    )  # fmt: skip
    assert cfg.faults == (parse_fault("500@create=0.1"), parse_fault("reset_after_create=0.05"))
    assert (cfg.speed, cfg.seed, cfg.concurrency_mode, cfg.api_keys) == (60.0, 9, "reject", ("sk-a", "sk-b"))
    assert (cfg.task_time, cfg.retention, cfg.url_ttl, cfg.qps_scale, cfg.quotas) == (30.0, 600.0, 60.0, 10.0, False)
    assert (cfg.block_word, cfg.slow_seconds, cfg.fps) == ("zap", 0.5, 2)
    assert "sk-a" not in repr(cfg)  # keys stay out of reprs and logs


def test_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANBATCH_EMULATOR_API_KEYS", "sk-env1, sk-env2")
    assert config_from_args(parse("--api-key", "sk-a")).api_keys == ("sk-a", "sk-env1", "sk-env2")


def test_bad_fault_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        parse("--fault", "boom=1")
    assert e.value.code == 2
    assert "unknown kind 'boom'" in capsys.readouterr().err


def test_process_prints_url_serves_and_stops_on_sigterm() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "runner", "emulator", "--port", "0", "--speed", "100"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as proc:  # fmt: skip
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            assert line.startswith("emulator listening on http://127.0.0.1:") and line.endswith("/api/v1")
            root = line.removeprefix("emulator listening on ").removesuffix("/api/v1")
            with urllib.request.urlopen(root + "/_emulator/stats", timeout=10) as r:
                assert json.load(r)["submitted"] == 0
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
