"""CLI configuration precedence, exit codes and argument parsing (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from codex_cloud import config as cfg
from codex_cloud.cli import build_parser, main, parse_duration_ms
from codex_cloud.cli_output import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_NOT_FOUND_OR_AUTH,
    EXIT_OK,
    EXIT_PENDING,
    EXIT_TIMED_OUT,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    exit_for_error,
    exit_for_status,
)
from codex_cloud.errors import (
    AuthError,
    ConflictError,
    ConnectionFailed,
    NotFoundError,
    RateLimitedError,
    UnavailableError,
    ValidationFailed,
)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_flags_beat_env_beat_file_beat_devstack(tmp_path: Path) -> None:
    conf = _write(tmp_path / "c.toml", 'api_url = "http://file"\napi_key = "cck_file"\n')
    stack = {"CODEX_CLOUD_API_BASE_URL": "http://stack", "CODEX_CLOUD_TENANT": "stack-tenant"}
    env = {"CODEX_CLOUD_API_KEY": "cck_env"}
    got = cfg.resolve({"api_url": "http://flag"}, env, config_path=conf, devstack=stack)
    assert (got.api_url, got.api_key, got.tenant) == ("http://flag", "cck_env", "stack-tenant")
    assert got.sources == {
        "api_url": "flag",
        "api_key": "env:CODEX_CLOUD_API_KEY",
        "tenant": "devstack",
    }
    got = cfg.resolve({}, {}, config_path=conf, devstack=stack)
    assert (got.api_url, got.api_key) == ("http://file", "cck_file")
    got = cfg.resolve({}, {}, config_path=tmp_path / "missing.toml", devstack={})
    assert (got.api_url, got.api_key, got.sources["api_url"]) == (
        cfg.DEFAULT_API_URL,
        None,
        "default",
    )


def test_the_preferred_env_name_wins_and_the_stack_name_is_a_fallback(tmp_path: Path) -> None:
    env = {"CODEX_CLOUD_API_URL": "http://a/", "CODEX_CLOUD_API_BASE_URL": "http://b"}
    got = cfg.resolve({}, env, config_path=tmp_path / "none.toml")
    assert got.api_url == "http://a"
    got = cfg.resolve({}, {"CODEX_CLOUD_API_BASE_URL": "http://b"}, config_path=tmp_path / "x")
    assert got.api_url == "http://b"


def test_config_path_from_env_and_xdg(tmp_path: Path) -> None:
    assert cfg.default_path({"CODEX_CLOUD_CONFIG": str(tmp_path / "x.toml")}) == tmp_path / "x.toml"
    assert cfg.default_path({"XDG_CONFIG_HOME": str(tmp_path)}) == (
        tmp_path / "codex-cloud" / "config.toml"
    )


def test_a_bad_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(cfg.ConfigError, match="must be a string"):
        cfg.read_file(_write(tmp_path / "c.toml", "api_url = 3\n"))
    with pytest.raises(cfg.ConfigError):
        cfg.read_file(_write(tmp_path / "d.toml", "api_url = \n"))


def test_save_keeps_other_keys_and_is_private(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.toml", 'api_url = "http://x"\n')
    cfg.save(path, {"api_key": 'cck_"q"', "tenant": "acme"})
    assert cfg.read_file(path) == {"api_url": "http://x", "api_key": 'cck_"q"', "tenant": "acme"}
    assert path.stat().st_mode & 0o777 == 0o600


def test_devstack_env_file_is_parsed(tmp_path: Path) -> None:
    (tmp_path / ".devstack").mkdir()
    (tmp_path / ".devstack" / "env.sh").write_text(
        'export CODEX_CLOUD_API_BASE_URL="http://127.0.0.1:9"\nexport X="a b"\n# comment\n'
    )
    assert cfg.devstack_env(tmp_path) == {
        "CODEX_CLOUD_API_BASE_URL": "http://127.0.0.1:9",
        "X": "a b",
    }


@pytest.mark.parametrize(
    ("status", "waited", "code"),
    [
        ("succeeded", True, EXIT_OK),
        ("failed", True, EXIT_FAILED),
        ("cancelled", True, EXIT_CANCELLED),
        ("timed_out", True, EXIT_TIMED_OUT),
        ("running", True, EXIT_PENDING),
        ("running", False, EXIT_OK),
    ],
)
def test_job_outcome_exit_codes(status: str, waited: bool, code: int) -> None:
    assert exit_for_status(status, waited=waited) == code


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ValidationFailed(422), EXIT_USAGE),
        (ConflictError(409), EXIT_USAGE),
        (AuthError(401), EXIT_NOT_FOUND_OR_AUTH),
        (NotFoundError(404), EXIT_NOT_FOUND_OR_AUTH),
        (RateLimitedError(429), EXIT_UNAVAILABLE),
        (UnavailableError(503), EXIT_UNAVAILABLE),
        (ConnectionFailed("http://x", "connection refused"), EXIT_UNAVAILABLE),
    ],
)
def test_error_exit_codes(error: Exception, code: int) -> None:
    assert exit_for_error(error) == code


@pytest.mark.parametrize(
    ("text", "ms"),
    [("90", 90_000), ("90s", 90_000), ("5m", 300_000), ("1h", 3_600_000), ("500ms", 500)],
)
def test_durations(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


def test_global_options_work_after_the_command() -> None:
    args = build_parser().parse_args(["list", "--json", "--api-url", "http://x"])
    assert args.json is True
    assert args.api_url == "http://x"
    args = build_parser().parse_args(["--json", "list"])
    assert args.json is True
    assert args.api_url is None


def test_usage_errors_exit_2_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["submit", "--timeout", "soon", "x"]) == EXIT_USAGE
    assert main(["nope"]) == EXIT_USAGE
    assert main(["submit", "--ref", "main", "--api-url", "http://127.0.0.1:9", "p"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "--ref needs --git" in err
