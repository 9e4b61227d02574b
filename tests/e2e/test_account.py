"""When the account or the network, not the job, is the problem (issue 17): the run stops, blames no job, says
what to fix (exit 4), and the same command afterwards finishes the work with each request body sent once."""

from __future__ import annotations

import http.server
import json
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from runner.emulator.config import EmulatorConfig
from runner.store.replay import replay

from .conftest import (
    KEY,
    assert_complete,
    assert_no_key,
    assert_witness,
    cli,
    env,
    output,
    spawn,
    wait_submitted,
    write_manifest,
)


def run(emu_url: str, manifest: Path, out: Path, *extra: str, key: str = KEY, timeout: float = 120) -> Any:
    return cli("run", str(manifest), "--out", str(out), "--base-url", emu_url, *extra,
               cwd=manifest.parent, timeout=timeout, environ=env(DASHSCOPE_API_KEY=key))  # fmt: skip


def states(out: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job in replay(out / "ledger.jsonl").jobs.values():
        counts[job.state] = counts.get(job.state, 0) + 1
    return counts


def test_a_wrong_key_stops_at_once_blames_no_job_and_the_right_key_finishes(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(api_keys=(KEY,))
    manifest = write_manifest(tmp_path / "m.yaml", 12)
    out = tmp_path / "out"
    wrong = "sk-wrongWRONGwrong0000"
    r = run(emu.base_url, manifest, out, key=wrong)
    assert r.returncode == 4, r.stderr[-3000:]
    assert emu.stats()["requests"].get("create", 0) <= 5  # --max-in-flight creates at most, then it stopped
    assert states(out) == {"planned": 12}  # no job failed, none blamed
    assert "InvalidApiKey" in r.stderr and "Check the key in DASHSCOPE_API_KEY" in r.stderr
    assert r.stdout.count("failed") == 0 and wrong not in r.stdout + r.stderr
    summary = json.loads(cli("status", str(out), "--json", cwd=tmp_path).stdout)
    assert summary["refusals"][0]["code"] == "InvalidApiKey" and summary["failures"] == []

    again = run(emu.base_url, manifest, out)  # the right key, the same command
    assert again.returncode == 0, again.stderr[-3000:]
    assert_complete(out, 12)
    assert emu.stats()["duplicate_submissions"] == 0 and emu.stats()["submitted"] == 12


def test_arrears_after_ten_creates_saves_those_ten_and_leaves_the_rest_unsent(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(arrears_after=10, qps_scale=4.0)
    manifest = write_manifest(tmp_path / "m.yaml", 16)
    out = tmp_path / "out"
    r = run(emu.base_url, manifest, out, "--qps", "20", "--max-in-flight", "20")
    assert r.returncode == 4, r.stderr[-3000:]
    assert states(out) == {"downloaded": 10, "planned": 6}, states(out)
    assert emu.stats()["submitted"] == 10
    assert "Arrearage" in r.stderr and "billing" in r.stderr
    assert assert_witness(emu, out) == {"billed": 10, "saved": 10}
    emu.state.arrears_after = None  # paid
    again = run(emu.base_url, manifest, out)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_complete(out, 16)
    assert emu.stats()["submitted"] == 16 and emu.stats()["duplicate_submissions"] == 0


def test_a_model_not_open_to_the_account_stops_that_model_only(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(denied_models=("wan2.5-t2v-preview",))
    manifest = tmp_path / "m.yaml"
    jobs = "".join(f"  - name: new{i}\n    prompt: Shot {i} of a harbour at dawn.\n" for i in range(4))
    jobs += "".join(
        f"  - name: old{i}\n    model: wan2.5-t2v-preview\n    duration: 5\n    prompt: Shot {i} of a mill.\n"
        for i in range(3)
    )
    manifest.write_text(
        'version: 1\nname: two\ndefaults:\n  model: wan2.6-t2v\n  size: "1280*720"\n  duration: 2\n'
        f"  prompt_extend: false\njobs:\n{jobs}",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    r = run(emu.base_url, manifest, out)
    assert r.returncode == 4, r.stderr[-3000:]
    by_name = {j.name: j.state for j in replay(out / "ledger.jsonl").jobs.values()}
    assert all(by_name[f"new{i}"] == "downloaded" for i in range(4)), by_name
    assert all(by_name[f"old{i}"] == "planned" for i in range(3)), by_name
    assert "model wan2.5-t2v-preview refused work: Model.AccessDenied" in r.stderr


def test_five_server_failures_in_a_row_pause_the_model(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(faults=EmulatorConfig.parse_faults(["fail=1x5"]))
    manifest = write_manifest(tmp_path / "m.yaml", 12)
    out = tmp_path / "out"
    proc = spawn("run", str(manifest), "--out", str(out), "--base-url", emu.base_url, cwd=tmp_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and b"model.paused" not in (tmp_path / "runner.err").read_bytes():
        time.sleep(0.05)
    time.sleep(0.5)  # a create admitted before the breaker tripped may still be on its way
    sent = emu.stats()["submitted"]
    time.sleep(2.0)  # paused: nothing more is sent meanwhile
    assert emu.stats()["submitted"] == sent
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    err = output(tmp_path)[1]
    paused = [json.loads(line) for line in err.splitlines() if '"model.paused"' in line]
    assert paused and paused[0]["code"] == "InternalError" and paused[0]["seconds"] == 60, err[-2000:]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_host_fails_no_job_and_the_same_command_finishes(tmp_path: Path, emulator: Any) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 6)
    out = tmp_path / "out"
    dead = f"http://127.0.0.1:{_closed_port()}/api/v1"
    t0 = time.monotonic()
    r = run(dead, manifest, out, "--max-outage", "3s")
    assert r.returncode == 4, r.stderr[-3000:]
    assert time.monotonic() - t0 < 30
    # nothing failed; a create cut off by the stop stays an intent (the next run reconciles it, finds nothing)
    assert set(states(out)) <= {"planned", "submitting"} and states(out).get("planned", 0) >= 3, states(out)
    assert "Unreachable" in r.stderr and "127.0.0.1" in r.stderr
    emu = emulator()
    again = run(emu.base_url, manifest, out)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_complete(out, 6)
    assert emu.stats()["submitted"] == 6


class _Sink(http.server.BaseHTTPRequestHandler):
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        self.bodies.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_a_key_quoted_by_the_server_is_found_nowhere(tmp_path: Path, emulator: Any) -> None:
    # a final failure (not retried, not counted by the breaker) whose message quotes the key
    emu = emulator(quote_key_in_failures=True, faults=EmulatorConfig.parse_faults(["inspection=1"]))
    manifest = write_manifest(tmp_path / "m.yaml", 2)
    out = tmp_path / "out"
    sink = http.server.HTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    hook_input = tmp_path / "hook.json"
    try:
        r = run(emu.base_url, manifest, out, "--notify", f"http://127.0.0.1:{sink.server_port}/hook",
                "--on-finish", f"cat > {hook_input}")  # fmt: skip
    finally:
        sink.shutdown()
    assert r.returncode == 1, r.stderr[-3000:]
    assert b"api key ***" in (out / "ledger.jsonl").read_bytes()  # the message is kept, the key is not
    status = cli("status", str(out), cwd=tmp_path)
    status_json = cli("status", str(out), "--json", cwd=tmp_path)
    report = cli("report", str(out), cwd=tmp_path)
    assert _Sink.bodies and hook_input.exists()
    assert_no_key(out, r.stdout, r.stderr, status.stdout, status_json.stdout, report.stdout, report.stderr)
    for body in [*_Sink.bodies, hook_input.read_bytes()]:
        assert KEY.encode() not in body


def test_cancel_while_a_run_holds_the_folder_and_retry_canceled(tmp_path: Path, emulator: Any) -> None:
    emu = emulator(speed=10.0, task_time=None, seed=8)  # five run at once, the rest stay PENDING for a while
    manifest = write_manifest(tmp_path / "m.yaml", 8)
    out = tmp_path / "out"
    proc = spawn("run", str(manifest), "--out", str(out), "--base-url", emu.base_url,
                 "--max-in-flight", "8", "--qps", "20", cwd=tmp_path)  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (
        sum(x["event"] == "submitted" for x in _lines(out)) == 8
        and emu.stats()["tasks_by_status"]["RUNNING"] == 5
        and emu.stats()["tasks_by_status"]["PENDING"] == 3
    ):
        time.sleep(0.05)  # every task's id is in the ledger, five run, three wait
    c = cli("cancel", str(out), cwd=tmp_path)
    assert c.returncode in (0, 1), c.stderr[-2000:]
    assert "a run holds the folder" in c.stdout
    assert emu.stats()["canceled"] == 3
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and states(out).get("canceled", 0) < emu.stats()["canceled"]:
        time.sleep(0.1)  # the live run records the cancellations as it sees them
    assert states(out).get("canceled", 0) == emu.stats()["canceled"]
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    canceled = emu.stats()["canceled"]
    again = spawn("run", str(manifest), "--out", str(out), "--base-url", emu.base_url, "--retry-canceled",
                  "--max-in-flight", "8", "--qps", "20", cwd=tmp_path, log="again")  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and emu.stats()["submitted"] < 8 + canceled:
        time.sleep(0.05)
    again.send_signal(signal.SIGINT)
    again.wait(timeout=30)
    assert emu.stats()["submitted"] == 8 + canceled  # each canceled job sent once more, nothing else
    assert states(out).get("canceled", 0) == 0, states(out)


def test_manifests_with_non_ascii_names_never_share_a_folder(tmp_path: Path, emulator: Any) -> None:
    emu = emulator()
    body = (
        'version: 1\ndefaults:\n  model: wan2.6-t2v\n  size: "1280*720"\n  duration: 2\n  prompt_extend: false\n'
        "jobs:\n  - name: 夜景\n    prompt: {p}\n"
    )
    rain = tmp_path / "雨.yaml"
    night = tmp_path / "夜街.yaml"
    rain.write_text(body.format(p="Rain on a tin roof."), encoding="utf-8")
    night.write_text(body.format(p="A night street in neon."), encoding="utf-8")
    for m in (rain, night):
        r = cli("run", str(m), "--base-url", emu.base_url, cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["夜街", "雨"]
    assert [v.name.split("__")[0] for v in (tmp_path / "runs" / "雨" / "videos").glob("*.mp4")] == ["夜景"]
    # one manifest's folder refuses another manifest's run (exit 2), and is left as it was
    before = (tmp_path / "runs" / "雨" / "ledger.jsonl").read_bytes()
    r = cli("run", str(night), "--out", str(tmp_path / "runs" / "雨"), "--base-url", emu.base_url, cwd=tmp_path)
    assert r.returncode == 2 and "holds the run of the manifest named '雨'" in r.stderr, r.stderr
    assert (tmp_path / "runs" / "雨" / "ledger.jsonl").read_bytes() == before


def _lines(out: Path) -> list[dict[str, Any]]:
    path = out / "ledger.jsonl"
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x] if path.exists() else []


def test_a_resume_with_another_accounts_key_expires_nothing_and_the_right_key_saves_all(
    tmp_path: Path, emulator: Any
) -> None:
    from runner.emulator.accounts import AccountSpec

    other = "sk-otherACCOUNTkey000042"
    emu = emulator(accounts=(AccountSpec("ours", KEY), AccountSpec("theirs", other)), speed=300.0)
    manifest = write_manifest(tmp_path / "m.yaml", 8)
    out = tmp_path / "out"
    proc = spawn("run", str(manifest), "--out", str(out), "--base-url", emu.base_url, cwd=tmp_path)
    wait_submitted(out, 5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    before = states(out)
    assert before.get("pending", 0) + before.get("running", 0) >= 5, before
    r = run(emu.base_url, manifest, out, key=other)  # the key was rotated to another account's
    assert r.returncode == 4, r.stderr[-3000:]
    assert "UnknownTasks" in r.stderr and other not in r.stdout + r.stderr
    after = states(out)
    assert after == before and "expired" not in after  # nothing expired, nothing failed, nothing sent
    assert emu.stats()["accounts"]["theirs"]["submitted"] == 0
    again = run(emu.base_url, manifest, out)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_complete(out, 8)
    assert emu.stats()["accounts"]["ours"]["submitted"] == 8 and emu.stats()["duplicate_submissions"] == 0
    assert_witness(emu, out)
