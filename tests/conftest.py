"""Every test gets its own state folder (``$XDG_STATE_HOME``): the daily spend, the host's register of claimed
tasks (``runner.store.claims``) and learned task times never leak from one test, or from the developer's machine,
into another. Child processes inherit it through the environment."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _own_state_folder(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path_factory.mktemp("xdg-state")
    monkeypatch.setenv("XDG_STATE_HOME", str(folder))
    return folder
