"""The emulator as an aiohttp application: the routes of API.md (``api_routes``), the object-storage stand-in
(``storage``), local-file uploads (``upload_routes``) and the ``/_emulator/*`` test endpoints (``testing``); every
answer's ``Date`` is the emulator's clock."""

from __future__ import annotations

import email.utils

from aiohttp import web

from runner.emulator.answers import API, CREATE_PATH, FILE_PREFIX, STATE
from runner.emulator.api_routes import api, cancel, create, list_tasks, query, url_error
from runner.emulator.clock import Clock, system_clock
from runner.emulator.config import EmulatorConfig
from runner.emulator.state import EmulatorState
from runner.emulator.storage import download
from runner.emulator.testing import get_faults, get_stats, get_tasks, reset, set_clock, set_faults
from runner.emulator.upload_routes import OSS_PATH, get_policy, post_object


async def _server_date(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer's ``Date`` is the emulator's clock (which may run ahead of or behind the host's)."""
    state = request.app[STATE]
    response.headers["Date"] = email.utils.formatdate(state.clock(), usegmt=True)


def create_app(
    config: EmulatorConfig, *, clock: Clock = system_clock, state: EmulatorState | None = None
) -> web.Application:
    """The emulator as an aiohttp application (serve it with ``web.run_app``, AppRunner or TestServer)."""
    state = state if state is not None else EmulatorState(config, clock)
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app[STATE] = state
    r = app.router
    r.add_post(CREATE_PATH, api("create", create))
    r.add_post(CREATE_PATH + "/", api("create", create))
    for suffix in ("", "/"):
        r.add_get(f"{API}/tasks{suffix}", api("list", list_tasks), allow_head=False)
        r.add_get(f"{API}/tasks/{{task_id}}{suffix}", api("query", query), allow_head=False)
        r.add_post(f"{API}/tasks/{{task_id}}/cancel{suffix}", api("cancel", cancel))
    r.add_get(FILE_PREFIX + "/{name}", download)
    for suffix in ("", "/"):  # issue 19: the upload policy and the upload host it names
        r.add_get(f"{API}/uploads{suffix}", api("policy", get_policy), allow_head=False)
    r.add_post(OSS_PATH, post_object)
    r.add_get("/_emulator/stats", get_stats, allow_head=False)
    r.add_get("/_emulator/faults", get_faults, allow_head=False)
    r.add_post("/_emulator/faults", set_faults)
    r.add_post("/_emulator/reset", reset)
    r.add_post("/_emulator/clock", set_clock)
    r.add_get("/_emulator/tasks", get_tasks, allow_head=False)
    app.on_response_prepare.append(_server_date)
    r.add_route("*", "/{tail:.*}", url_error)

    async def _close(app: web.Application) -> None:
        state.videos.close()

    app.on_cleanup.append(_close)
    return app
