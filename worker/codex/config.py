"""Per-job CODEX_HOME: a lean, offline-safe `config.toml` plus the model catalog it points at.

Every key here was chosen because the default either talks to the network, waits for a human,
retries for too long, or leaks the runner's environment into agent commands.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from worker.codex.env import RUN_MARKER_VAR

SandboxMode = Literal["read-only", "workspace-write", "danger-full-access"]

DEFAULT_MODEL = "codex-cloud-scripted"
DEFAULT_PROVIDER_ID = "codexcloud"
# The variable codex reads its provider key from. It is excluded from agent commands by the
# shell environment policy below; the name is deliberately not one the agent's tools know.
DEFAULT_API_KEY_ENV_VAR = "CODEX_PROVIDER_API_KEY"
# Variables agent commands may see (codex adds its own CODEX_* / pager variables on top).
DEFAULT_SHELL_ENV_ALLOW: tuple[str, ...] = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TERM",
    "TMPDIR",
    "GIT_CEILING_DIRECTORIES",
    "USER",
    "LOGNAME",
)
# Features that reach out to the network or to plugin stores at start-up, or add tools a
# headless job must not have.
DISABLED_FEATURES: tuple[str, ...] = (
    "plugins",
    "remote_plugin",
    "apps",
    "tool_suggest",
    "shell_snapshot",
    "goals",
    "unbounded_connection_retries",
)
DEFAULT_BASE_INSTRUCTIONS = (
    "You are a coding agent running unattended on a job workspace. Make the requested "
    "changes, run commands to verify them, and finish with a short summary."
)
CONFIG_FILE = "config.toml"
CATALOG_FILE = "model-catalog.json"

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ProviderConfig:
    """Where the model lives and how hard codex may try to reach it."""

    base_url: str
    model: str = DEFAULT_MODEL
    provider_id: str = DEFAULT_PROVIDER_ID
    # Name of the env var codex reads the key from (None: no Authorization header at all).
    api_key_env_var: str | None = None
    request_max_retries: int = 1
    stream_max_retries: int = 1
    stream_idle_timeout_ms: int = 60_000
    context_window: int = 128_000
    truncation_tokens: int = 10_000
    base_instructions: str = DEFAULT_BASE_INSTRUCTIONS

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be http(s), got {self.base_url!r}")
        if self.api_key_env_var is not None and not _ENV_NAME.match(self.api_key_env_var):
            raise ValueError(f"invalid env var name {self.api_key_env_var!r}")
        if not re.match(r"^[A-Za-z0-9_-]+$", self.provider_id):
            raise ValueError(f"invalid provider id {self.provider_id!r}")
        for name in ("request_max_retries", "stream_max_retries"):
            if not 0 <= getattr(self, name) <= 10:
                raise ValueError(f"{name} must be within 0..10")
        if self.stream_idle_timeout_ms < 1000:
            raise ValueError("stream_idle_timeout_ms must be at least 1000")


@dataclass(frozen=True)
class CodexConfig:
    """Everything rendered into `config.toml` for one job."""

    provider: ProviderConfig
    sandbox_mode: SandboxMode = "workspace-write"
    # Names agent commands may see; extra env vars passed to the runner must be listed here
    # (env.build_codex_env adds the extras' names automatically via shell_env_names()).
    shell_env_allow: tuple[str, ...] = DEFAULT_SHELL_ENV_ALLOW
    disabled_features: tuple[str, ...] = DISABLED_FEATURES
    # Off: codex neither writes its bundled skills into CODEX_HOME at start-up (~50 files per
    # job) nor lists them in the model's instructions.
    bundled_skills: bool = False

    def __post_init__(self) -> None:
        for name in self.shell_env_allow:
            if not _ENV_NAME.match(name):
                raise ValueError(f"invalid env var name {name!r}")
        key_var = self.provider.api_key_env_var
        if key_var is not None and key_var in self.shell_env_allow:
            raise ValueError("the provider key variable must not be visible to agent commands")


@dataclass(frozen=True)
class CodexHome:
    """The isolated directories of one job: codex state and the HOME its commands get."""

    codex_home: Path
    home: Path
    config_path: Path
    catalog_path: Path
    tmp_dir: Path = field(default=Path("/tmp"))


def model_catalog(provider: ProviderConfig) -> dict[str, Any]:
    # Without an entry for the model codex warns and does not offer apply_patch.
    return {
        "models": [
            {
                "slug": provider.model,
                "display_name": provider.model,
                "supported_reasoning_levels": [],
                "shell_type": "unified_exec",
                "apply_patch_tool_type": "freeform",
                "visibility": "list",
                "supported_in_api": True,
                "priority": 1,
                "support_verbosity": False,
                "truncation_policy": {"mode": "tokens", "limit": provider.truncation_tokens},
                "experimental_supported_tools": [],
                "context_window": provider.context_window,
                "base_instructions": provider.base_instructions,
            }
        ]
    }


def render_config_toml(
    config: CodexConfig, catalog_path: Path, extra_shell_env: tuple[str, ...] = ()
) -> str:
    """The `config.toml` text; ``extra_shell_env`` adds names to the command allow-list."""
    provider = config.provider
    allow = list(dict.fromkeys((*config.shell_env_allow, *extra_shell_env, RUN_MARKER_VAR)))
    key_var = provider.api_key_env_var
    if key_var is not None and key_var in allow:
        raise ValueError("the provider key variable must not be visible to agent commands")
    top: dict[str, Any] = {
        "model": provider.model,
        "model_provider": provider.provider_id,
        "model_catalog_json": str(catalog_path),
        "approval_policy": "never",
        "sandbox_mode": config.sandbox_mode,
        "check_for_update_on_startup": False,
        "web_search": "disabled",
        # Otherwise commands run as `bash -lc` and read profile files.
        "allow_login_shell": False,
        # The workspace is the project: no climbing to an enclosing checkout for its config
        # or AGENTS.md (the git ceiling in env.py does the same for git itself).
        "project_root_markers": [],
    }
    provider_table: dict[str, Any] = {
        "name": provider.provider_id,
        "base_url": provider.base_url,
        "wire_api": "responses",
        "request_max_retries": provider.request_max_retries,
        "stream_max_retries": provider.stream_max_retries,
        "stream_idle_timeout_ms": provider.stream_idle_timeout_ms,
    }
    if key_var is not None:
        provider_table["env_key"] = key_var
    shell_policy: dict[str, Any] = {
        # Start from codex's own environment (already an allow-list, see env.py), keep the
        # default *KEY*/*SECRET*/*TOKEN* excludes, drop the provider key explicitly and then
        # keep only the allow-listed names.
        "inherit": "all",
        "ignore_default_excludes": False,
        "exclude": [key_var] if key_var else [],
        "include_only": allow,
    }
    sections: list[tuple[str, Mapping[str, Any]]] = [
        (f"model_providers.{provider.provider_id}", provider_table),
        ("shell_environment_policy", shell_policy),
        ("analytics", {"enabled": False}),
        ("features", {name: False for name in config.disabled_features}),
        ("agents", {"enabled": False}),
        ("skills.bundled", {"enabled": config.bundled_skills}),
    ]
    lines = [f"{k} = {toml_value(v)}" for k, v in top.items()]
    for header, table in sections:
        lines.append("")
        lines.append(f"[{header}]")
        lines.extend(f"{k} = {toml_value(v)}" for k, v in table.items())
    return "\n".join(lines) + "\n"


def toml_value(value: Any) -> str:
    """Serialise the few value types config.toml needs (no TOML writer in the dependencies)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        # A JSON string is a valid TOML basic string except for DEL, which TOML forbids raw.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007F")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"unsupported TOML value {value!r}")


def prepare_codex_home(
    root: Path, config: CodexConfig, extra_shell_env: tuple[str, ...] = ()
) -> CodexHome:
    """Create `root/codex-home` (config + catalog) and `root/home` for one job.

    Reusing an existing root keeps its sessions (needed to resume) and rewrites the config,
    so a restored CODEX_HOME always runs with this worker's settings.
    """
    codex_home = root / "codex-home"
    home = root / "home"
    tmp_dir = root / "tmp"
    for directory in (codex_home, home, tmp_dir):
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    catalog_path = codex_home / CATALOG_FILE
    catalog_path.write_text(json.dumps(model_catalog(config.provider), indent=2), encoding="utf-8")
    config_path = codex_home / CONFIG_FILE
    config_path.write_text(
        render_config_toml(config, catalog_path.resolve(), extra_shell_env), encoding="utf-8"
    )
    return CodexHome(
        codex_home=codex_home.resolve(),
        home=home.resolve(),
        config_path=config_path.resolve(),
        catalog_path=catalog_path.resolve(),
        tmp_dir=tmp_dir.resolve(),
    )
