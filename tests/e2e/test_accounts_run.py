"""Several accounts in one run (issue 18), against the emulator serving three accounts: jobs spread over them by
free capacity, each account within its own limits, every request about a task made with that task's account's
key (the emulator counts any other as ``foreign``), an account that refuses work dropping out while the others
go on, and a resume that keeps every job with its account — also when the accounts file changed meanwhile."""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path
from typing import Any

from runner.emulator.accounts import AccountSpec
from runner.models import MODELS
from runner.store.replay import replay

from .conftest import assert_complete, assert_no_key, assert_witness, cli, env, ledger_lines, spawn, write_manifest

KEYS = {"a": "sk-acctAAAAsecret0001", "b": "sk-acctBBBBsecret0002", "c": "sk-acctCCCCsecret0003"}
ENV_OF = {name: f"WB_TEST_KEY_{name.upper()}" for name in KEYS}


def accounts_file(
    path: Path, base_url: str, names: tuple[str, ...] = ("a", "b", "c"), model: str = "wan2.6-t2v", **regions: str
) -> Path:
    """An accounts file naming ``names``, each key read from its own variable, every host the emulator's."""
    items = ""
    for n in names:
        region = regions.get(n, "cn-beijing")
        items += f"  - name: {n}\n    region: {region}\n    key_env: {ENV_OF[n]}\n    base_url: {base_url}\n"
        if region in MODELS[model].regions:  # the emulator's quota of each account
            items += f"    limits: {{{model}: {{qps: 2, max_in_flight: 2}}}}\n"
    path.write_text(f"accounts:\n{items}", encoding="utf-8")
    return path


def run_env() -> dict[str, str]:
    """The variables of every account's key, and no DASHSCOPE_API_KEY: the accounts file is all there is."""
    environ = env(**{ENV_OF[n]: k for n, k in KEYS.items()})
    environ.pop("DASHSCOPE_API_KEY", None)
    return environ


def three(emulator: Any, **kw: Any) -> Any:
    specs = kw.pop("specs", None) or tuple(AccountSpec(n, k, qps=2, in_flight=2) for n, k in KEYS.items())
    return emulator(accounts=specs, **kw)


def run(manifest: Path, out: Path, accounts: Path, *extra: str, timeout: float = 180) -> Any:
    return cli("run", str(manifest), "--out", str(out), "--accounts", str(accounts), *extra,
               cwd=manifest.parent, timeout=timeout, environ=run_env())  # fmt: skip


def by_account(out: Path) -> dict[str, str]:
    """Each job's account, from the ledger's ``submitted`` lines (the latest)."""
    owner: dict[str, str] = {}
    for line in ledger_lines(out):
        if line["event"] == "submitted":
            owner[line["job_id"]] = line["account"]
    return owner


def assert_own_keys(emu: Any) -> None:
    """No request named a task with another account's key, and no account went over its own limits."""
    stats = emu.stats()
    assert stats["foreign"] == 0, stats["accounts"]
    for name, acct in stats["accounts"].items():
        assert acct["foreign"] == 0, (name, acct)
        assert acct["throttled_total"] == 0, (name, acct["throttled"])


def test_three_accounts_share_the_jobs_and_each_keeps_its_own(tmp_path: Path, emulator: Any) -> None:
    emu = three(emulator)
    manifest = write_manifest(tmp_path / "m.yaml", 18)
    out = tmp_path / "out"
    accounts = accounts_file(tmp_path / "accounts.yaml", emu.base_url)
    r = run(manifest, out, accounts)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_complete(out, 18)
    stats = emu.stats()
    per = {name: acct["submitted"] for name, acct in stats["accounts"].items()}
    assert sum(per.values()) == 18 and min(per.values()) >= 3, per  # spread by free capacity
    assert stats["duplicate_submissions"] == 0
    assert_own_keys(emu)
    owner = by_account(out)
    assert {owner[j] for j in owner} == {"a", "b", "c"}
    for line in ledger_lines(out):  # the intents name the account too
        if line["event"] == "submitting":
            assert line["account"] in KEYS
    for side in (out / "videos").glob("*.json"):
        data = json.loads(side.read_text(encoding="utf-8"))
        assert data["account"] == owner[data["job_id"]]
    status = cli("status", str(out), cwd=tmp_path)
    status_json = json.loads(cli("status", str(out), "--json", cwd=tmp_path).stdout)
    assert {name: c["downloaded"] for name, c in status_json["accounts"].items()} == {
        n: sum(1 for a in owner.values() if a == n) for n in KEYS
    }
    assert "account a" in status.stdout
    gallery = (out / "index.html").read_text(encoding="utf-8")
    assert all(f">{n}<" in gallery for n in KEYS)
    texts = (r.stdout, r.stderr, status.stdout)
    for key in KEYS.values():
        assert all(key not in t for t in texts)
        for path in out.rglob("*"):
            if path.is_file():
                assert key.encode() not in path.read_bytes(), path


def test_an_account_in_arrears_drops_out_and_the_others_finish(tmp_path: Path, emulator: Any) -> None:
    specs = (
        AccountSpec("a", KEYS["a"], qps=2, in_flight=2),
        AccountSpec("b", KEYS["b"], qps=2, in_flight=2, arrears_after=2),
        AccountSpec("c", KEYS["c"], qps=2, in_flight=2),
    )
    emu = three(emulator, specs=specs)
    manifest = write_manifest(tmp_path / "m.yaml", 14)
    out = tmp_path / "out"
    r = run(manifest, out, accounts_file(tmp_path / "accounts.yaml", emu.base_url))
    # every job is saved by the others, so nothing is left: exit 0, and the refusal is still said
    assert r.returncode == 0, r.stderr[-3000:]
    assert_complete(out, 14)
    assert "account b refused work: Arrearage" in r.stderr
    refused = [x for x in ledger_lines(out) if x["event"] == "run.refused"]
    assert [x["account"] for x in refused] == ["b"] and refused[0]["code"] == "Arrearage"
    stats = emu.stats()
    assert stats["accounts"]["b"]["submitted"] == 2 and stats["duplicate_submissions"] == 0
    assert sum(1 for a in by_account(out).values() if a == "b") == 2  # its two tasks were followed and saved
    assert_own_keys(emu)
    assert_witness(emu, out)


def test_a_model_is_never_sent_to_an_account_whose_region_lacks_it(tmp_path: Path, emulator: Any) -> None:
    emu = three(emulator)
    manifest = tmp_path / "m.yaml"
    jobs = "".join(f"  - name: us{i}\n    prompt: Shot {i} of a canyon at noon.\n" for i in range(4))
    manifest.write_text(
        'version: 1\nname: us\ndefaults:\n  model: wan2.6-t2v-us\n  size: "1280*720"\n  duration: 5\n'
        f"  prompt_extend: false\njobs:\n{jobs}",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    # the first account's region (Beijing) lacks the model: the manifest is checked against every account's region
    accounts = accounts_file(tmp_path / "accounts.yaml", emu.base_url, ("b", "a", "c"), model="wan2.6-t2v-us",
                             a="us-east-1", b="cn-beijing", c="us-east-1")  # fmt: skip
    plan = cli("plan", str(manifest), "--accounts", str(accounts), cwd=tmp_path, environ=run_env())
    assert plan.returncode == 0 and "b (cn-beijing)" in plan.stdout, plan.stdout + plan.stderr
    r = run(manifest, out, accounts)
    assert r.returncode == 0, r.stderr[-3000:]
    assert emu.stats()["accounts"]["b"]["submitted"] == 0
    assert set(by_account(out).values()) <= {"a", "c"}
    none = accounts_file(tmp_path / "cn.yaml", emu.base_url, ("a", "b"), a="cn-beijing", b="ap-southeast-1")
    bad = run(manifest, tmp_path / "out2", none)
    assert bad.returncode == 2 and "m.yaml:4:10" in bad.stderr, bad.stderr
    assert "not offered in cn-beijing (China (Beijing)) or ap-southeast-1" in bad.stderr


def test_sigkill_at_random_points_keeps_every_job_with_its_account(tmp_path: Path, emulator: Any) -> None:
    emu = three(emulator, speed=1800.0)
    manifest = write_manifest(tmp_path / "m.yaml", 24)
    out = tmp_path / "out"
    accounts = accounts_file(tmp_path / "accounts.yaml", emu.base_url)
    rng = random.Random(18)
    owners: dict[str, str] = {}
    for kill in range(10):
        proc = spawn("run", str(manifest), "--out", str(out), "--accounts", str(accounts),
                     cwd=tmp_path, log=f"kill{kill}", environ=run_env())  # fmt: skip
        time.sleep(rng.uniform(0.3, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        for job_id, name in by_account(out).items():  # a task, once made, never changes account
            task = replay(out / "ledger.jsonl").jobs[job_id].task_id
            owners.setdefault(f"{job_id}/{task}", name)
            assert owners[f"{job_id}/{task}"] == name
    r = run(manifest, out, accounts)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_complete(out, 24)
    stats = emu.stats()
    assert stats["duplicate_submissions"] == 0 and stats["foreign"] == 0, stats["accounts"]
    assert_witness(emu, out)
    # the emulator's own record: each saved task is the account's the ledger names
    for job in replay(out / "ledger.jsonl").jobs.values():
        assert emu.state.account_of(job.task_id or "") == job.account, (job.name, job.account)


def test_a_resume_without_a_jobs_account_leaves_its_tasks_for_a_run_that_has_it(tmp_path: Path, emulator: Any) -> None:
    emu = three(emulator, speed=300.0)  # six real seconds a task: the kill finds tasks in flight
    manifest = write_manifest(tmp_path / "m.yaml", 9)
    out = tmp_path / "out"
    full = accounts_file(tmp_path / "accounts.yaml", emu.base_url)
    proc = spawn("run", str(manifest), "--out", str(out), "--accounts", str(full), cwd=tmp_path, environ=run_env())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (
        (out / "ledger.jsonl").exists() and {"a", "b", "c"} <= set(by_account(out).values())
    ):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    with_c = {j for j, a in by_account(out).items() if a == "c"}
    assert with_c
    partial = accounts_file(tmp_path / "ab.yaml", emu.base_url, ("a", "b"))
    r = run(manifest, out, partial)
    assert r.returncode == 1, r.stderr[-3000:]
    assert "its task is with account c" in r.stdout
    assert emu.stats()["foreign"] == 0  # nobody asked account c's tasks with another key
    state = replay(out / "ledger.jsonl")
    assert all(state.jobs[j].account == "c" and state.jobs[j].state in ("pending", "running") for j in with_c)
    again = run(manifest, out, full)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_complete(out, 9)
    assert emu.stats()["duplicate_submissions"] == 0 and emu.stats()["foreign"] == 0
    assert_no_key(out, r.stdout, r.stderr)


def test_doctor_checks_every_account_of_the_file(tmp_path: Path, emulator: Any) -> None:
    emu = three(emulator, specs=(AccountSpec("a", KEYS["a"]), AccountSpec("b", KEYS["b"])))  # c's key: unknown
    accounts = accounts_file(tmp_path / "accounts.yaml", emu.base_url)
    argv = ("doctor", "--accounts", str(accounts), "--out", str(tmp_path / "runs"))
    r = cli(*argv, "--json", cwd=tmp_path, environ=run_env())
    assert r.returncode == 4, r.stdout + r.stderr
    checks = json.loads(r.stdout)["checks"]
    verdicts = {c["account"]: c["status"] for c in checks if c["name"] == "account"}
    assert verdicts == {"a": "ok", "b": "ok", "c": "refused"}
    assert {c["name"] for c in checks if c["account"] is None} == {"output", "state", "disk"}  # checked once
    assert emu.stats()["submitted"] == 0
    plain = cli(*argv, cwd=tmp_path, environ=run_env())
    assert "FAIL account    c: InvalidApiKey" in plain.stdout, plain.stdout
    said = r.stdout + r.stderr + plain.stdout + plain.stderr
    assert not [k for k in KEYS.values() if k in said]
    # a key variable that is not set: the file's line says which account (exit 2), before anything is sent
    unset = cli(*argv, cwd=tmp_path, environ={k: v for k, v in run_env().items() if k != ENV_OF["b"]})
    assert unset.returncode == 2 and "accounts.yaml:" in unset.stderr and ENV_OF["b"] in unset.stderr
