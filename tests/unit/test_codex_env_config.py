"""Environment allow-list and config.toml rendering for codex runs."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from worker.codex.binary import BINARY_ENV_VAR, CodexBinaryNotFound, find_codex_binary
from worker.codex.config import (
    CodexConfig,
    ProviderConfig,
    prepare_codex_home,
    render_config_toml,
    toml_value,
)
from worker.codex.env import RUN_MARKER_VAR, ApiKey, build_codex_env, shell_env_names

pytestmark = pytest.mark.unit

RUNNER_ENV = {
    "PATH": "/usr/bin:/bin",
    "LANG": "en_US.UTF-8",
    "USER": "worker",
    "HOME": "/home/worker",
    "OPENAI_API_KEY": "sk-secret-xyz",
    "GOOGLE_APPLICATION_CREDENTIALS": "/secrets/key.json",
    "FIRESTORE_EMULATOR_HOST": "127.0.0.1:8681",
    "CODEX_CLOUD_TOKEN_SIGNING_KEY": "k",
    "CODEX_HOME": "/home/worker/.codex",
    "AWS_SECRET_ACCESS_KEY": "a",
}


def test_codex_env_comes_only_from_the_allow_list(tmp_path: Path) -> None:
    env = build_codex_env(
        home=tmp_path / "home",
        codex_home=tmp_path / "codex-home",
        tmp_dir=tmp_path / "tmp",
        source_env=RUNNER_ENV,
        extra={"JOB_ID": "j-1"},
    )

    assert env == {
        "PATH": "/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "USER": "worker",
        "TERM": "dumb",
        "HOME": str(tmp_path / "home"),
        "CODEX_HOME": str(tmp_path / "codex-home"),
        "TMPDIR": str(tmp_path / "tmp"),
        "JOB_ID": "j-1",
    }


def test_provider_key_is_only_in_the_codex_env_under_its_own_name(tmp_path: Path) -> None:
    env = build_codex_env(
        home=tmp_path,
        codex_home=tmp_path,
        source_env=RUNNER_ENV,
        api_key=ApiKey("CODEX_PROVIDER_API_KEY", "sk-provider"),
    )
    assert env["CODEX_PROVIDER_API_KEY"] == "sk-provider"
    assert "OPENAI_API_KEY" not in env
    assert "sk-provider" not in repr(ApiKey("X", "sk-provider"))


@pytest.mark.parametrize(
    "name",
    [
        "OPENAI_API_KEY",
        "GOOGLE_CLOUD_PROJECT",
        "PUBSUB_EMULATOR_HOST",
        "CODEX_CLOUD_X",
        "HOME",
        "bad-name",
    ],
)
def test_runner_wiring_cannot_be_passed_as_extra(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match=name.replace("-", ".")):
        build_codex_env(home=tmp_path, codex_home=tmp_path, source_env={}, extra={name: "v"})


def test_missing_path_gets_a_safe_default(tmp_path: Path) -> None:
    env = build_codex_env(home=tmp_path, codex_home=tmp_path, source_env={})
    assert env["PATH"].startswith("/usr/local/sbin")
    assert env["LANG"] == "C.UTF-8"


def test_config_renders_lean_offline_settings(tmp_path: Path) -> None:
    provider = ProviderConfig(
        base_url="http://127.0.0.1:9/v1",
        api_key_env_var="CODEX_PROVIDER_API_KEY",
        request_max_retries=2,
        stream_max_retries=0,
        stream_idle_timeout_ms=5000,
    )
    text = render_config_toml(
        CodexConfig(provider=provider, sandbox_mode="read-only"),
        tmp_path / "catalog.json",
        shell_env_names({"JOB_ID": "1"}),
    )
    config = tomllib.loads(text)

    assert config["model_provider"] == "codexcloud"
    assert config["model_catalog_json"] == str(tmp_path / "catalog.json")
    assert config["approval_policy"] == "never"
    assert config["sandbox_mode"] == "read-only"
    assert config["check_for_update_on_startup"] is False
    assert config["web_search"] == "disabled"
    assert config["allow_login_shell"] is False
    assert config["model_providers"]["codexcloud"] == {
        "name": "codexcloud",
        "base_url": "http://127.0.0.1:9/v1",
        "wire_api": "responses",
        "request_max_retries": 2,
        "stream_max_retries": 0,
        "stream_idle_timeout_ms": 5000,
        "env_key": "CODEX_PROVIDER_API_KEY",
    }
    policy = config["shell_environment_policy"]
    assert policy["exclude"] == ["CODEX_PROVIDER_API_KEY"]
    assert "CODEX_PROVIDER_API_KEY" not in policy["include_only"]
    assert {"PATH", "HOME", "JOB_ID", RUN_MARKER_VAR} <= set(policy["include_only"])
    assert config["analytics"] == {"enabled": False}
    assert config["agents"] == {"enabled": False}
    assert config["features"]["unbounded_connection_retries"] is False
    assert config["features"]["plugins"] is False


def test_key_variable_can_never_be_allow_listed() -> None:
    provider = ProviderConfig(base_url="http://x/v1", api_key_env_var="K")
    with pytest.raises(ValueError, match="must not be visible"):
        CodexConfig(provider=provider, shell_env_allow=("PATH", "K"))
    with pytest.raises(ValueError, match="must not be visible"):
        render_config_toml(CodexConfig(provider=provider), Path("/c.json"), ("K",))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base_url": "file:///etc"}, "must be http"),
        ({"base_url": "http://x", "request_max_retries": 50}, "within 0..10"),
        ({"base_url": "http://x", "stream_idle_timeout_ms": 10}, "at least 1000"),
        ({"base_url": "http://x", "provider_id": "a b"}, "invalid provider id"),
        ({"base_url": "http://x", "api_key_env_var": "A-B"}, "invalid env var"),
    ],
)
def test_provider_rejects_unsafe_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ProviderConfig(**kwargs)  # type: ignore[arg-type]


def test_toml_strings_survive_hostile_characters() -> None:
    value = 'quote " backslash \\ newline \n del \x7f emoji \U0001f600 tab \t'
    assert tomllib.loads(f"v = {toml_value(value)}")["v"] == value
    assert tomllib.loads(f"v = {toml_value(['a', 1, True])}")["v"] == ["a", 1, True]


def test_prepare_codex_home_writes_config_and_catalog(tmp_path: Path) -> None:
    provider = ProviderConfig(base_url="http://127.0.0.1:1/v1", model="m1")
    home = prepare_codex_home(tmp_path / "job", CodexConfig(provider=provider))

    assert home.codex_home.is_dir()
    assert home.home.is_dir()
    catalog = json.loads(home.catalog_path.read_text())
    (entry,) = catalog["models"]
    assert entry["slug"] == "m1"
    assert entry["apply_patch_tool_type"] == "freeform"
    assert entry["shell_type"] == "unified_exec"
    config = tomllib.loads(home.config_path.read_text())
    assert config["model"] == "m1"
    assert config["model_catalog_json"] == str(home.catalog_path)


def test_binary_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "codex"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv(BINARY_ENV_VAR, str(fake))
    assert find_codex_binary() == fake.resolve()
    monkeypatch.setenv(BINARY_ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(CodexBinaryNotFound):
        find_codex_binary()
    monkeypatch.delenv(BINARY_ENV_VAR)
    with pytest.raises(CodexBinaryNotFound, match="npm install"):
        find_codex_binary(repo_root=tmp_path)
