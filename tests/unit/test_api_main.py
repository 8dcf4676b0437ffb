"""`python -m api`: where the server listens (Cloud Run passes the port in $PORT)."""

from __future__ import annotations

from typing import Any

import pytest
import uvicorn

import api.__main__ as api_main


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Capture uvicorn.run's arguments instead of serving."""
    calls: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.update(kw, app=app))
    monkeypatch.setattr(api_main, "configure_logging", lambda *a: None)
    monkeypatch.delenv("PORT", raising=False)
    return calls


def test_local_run_listens_on_loopback_port_8000(served: dict[str, Any]) -> None:
    api_main.main([])
    assert (served["host"], served["port"]) == ("127.0.0.1", 8000)


def test_port_comes_from_the_environment(
    served: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORT", "8080")
    # The image's command: all interfaces, port from Cloud Run.
    api_main.main(["--host", "0.0.0.0"])
    assert (served["host"], served["port"]) == ("0.0.0.0", 8080)


def test_flags_win_over_the_environment(
    served: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORT", "not-a-port")
    api_main.main(["--host", "::1", "--port", "9001", "--workers", "2"])
    assert (served["host"], served["port"], served["workers"]) == ("::1", 9001, 2)


@pytest.mark.parametrize("value", ["http", "0", "70000"])
def test_invalid_port_env_is_a_usage_error(
    served: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    value: str,
) -> None:
    monkeypatch.setenv("PORT", value)
    with pytest.raises(SystemExit) as exit_info:
        api_main.main([])
    assert exit_info.value.code == 2
    assert "PORT must be a port number" in capsys.readouterr().err
    assert served == {}
