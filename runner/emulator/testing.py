"""The ``/_emulator/*`` test endpoints: stats, faults, reset, the clock, and the record of which body made which
task."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runner.emulator.answers import STATE
from runner.emulator.faults import FaultRule, FaultSyntaxError, parse_fault
from runner.emulator.state import EmulatorState

# -- the test endpoints -----------------------------------------------------------------------------------


class FaultObject(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str
    route: str | None = None
    rate: float = Field(ge=0.0, le=1.0)
    count: int | None = Field(default=None, ge=0)

    def spec(self) -> str:
        scope = f"@{self.route}" if self.route else ""
        times = f"x{self.count}" if self.count is not None else ""
        return f"{self.kind}{scope}={self.rate}{times}"


class FaultsPayload(BaseModel):
    """Body of ``POST /_emulator/faults``: replaces the rules; the other fields change only when given."""

    model_config = ConfigDict(extra="forbid")
    faults: list[str | FaultObject] = []
    block_word: str | None = None
    slow_seconds: float | None = Field(default=None, ge=0.0)
    seed: int | None = None


def _faults_json(state: EmulatorState) -> dict[str, Any]:
    return {
        "faults": state.faults.as_json(),
        "block_word": state.block_word,
        "slow_seconds": state.slow_seconds,
        "seed": state.faults.seed,
    }


async def get_faults(request: web.Request) -> web.StreamResponse:
    return web.json_response(_faults_json(request.app[STATE]))


async def set_faults(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    try:
        payload = FaultsPayload.model_validate_json(await request.read())
        rules: tuple[FaultRule, ...] = tuple(parse_fault(f if isinstance(f, str) else f.spec()) for f in payload.faults)
    except (ValidationError, FaultSyntaxError) as e:
        return web.json_response({"code": "InvalidParameter", "message": str(e)}, status=400)
    state.faults.replace(rules)
    if "block_word" in payload.model_fields_set:
        state.block_word = payload.block_word or None
    if payload.slow_seconds is not None:
        state.slow_seconds = payload.slow_seconds
    if payload.seed is not None:
        state.faults.seed = payload.seed
    return web.json_response(_faults_json(state))


async def get_stats(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[STATE].stats())


async def reset(request: web.Request) -> web.StreamResponse:
    request.app[STATE].reset()
    return web.json_response({"reset": True})


class ClockPayload(BaseModel):
    """Body of ``POST /_emulator/clock``: set the offset from the host's clock, or move it forward."""

    model_config = ConfigDict(extra="forbid")
    offset: float | None = None
    advance: float | None = Field(default=None, ge=0.0)


async def set_clock(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    try:
        payload = ClockPayload.model_validate_json(await request.read())
    except ValidationError as e:
        return web.json_response({"code": "InvalidParameter", "message": str(e)}, status=400)
    if payload.offset is not None:
        state.clock_offset = payload.offset
    if payload.advance is not None:
        state.clock_offset += payload.advance
    return web.json_response({"clock_offset": state.clock_offset, "now": state.clock()})


async def get_tasks(request: web.Request) -> web.StreamResponse:
    """Every task with the digest of the body that made it and its account: the witness tests count payments
    against."""
    state = request.app[STATE]
    now = state.clock()
    rows = [
        {
            "task_id": t.task_id,
            "digest": t.req.digest,
            "status": state.store.status(t, now),
            "api_key_id": t.api_key_id,
            "account": t.account,
            "submit_at": t.submit_at,
        }
        for t in state.store.order
    ]
    return web.json_response(rows)
