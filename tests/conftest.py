"""Every test gets its own state folder (``$XDG_STATE_HOME``: the daily spend, the remembered task times), so
no test reads what another learned, and none writes to the home of whoever runs the suite."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _own_state_folder(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("xdg-state")))
