"""Client configuration: flags, then environment variables, then the config file, then the
local stack's env file (written by `make dev`), then defaults.

Config file (TOML, `~/.config/codex-cloud/config.toml`; `--config` or `CODEX_CLOUD_CONFIG`
overrides the path):

    api_url = "http://127.0.0.1:8000"
    api_key = "cck_…"
    tenant = "acme"          # Pub/Sub and upload submissions
"""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_API_URL = "http://127.0.0.1:8000"
REPO_ROOT = Path(__file__).resolve().parent.parent
# Every setting: (config-file key, environment variables in order of preference).
ENV_VARS: dict[str, tuple[str, ...]] = {
    "api_url": ("CODEX_CLOUD_API_URL", "CODEX_CLOUD_API_BASE_URL"),
    "api_key": ("CODEX_CLOUD_API_KEY",),
    "tenant": ("CODEX_CLOUD_TENANT",),
}


class ConfigError(Exception):
    """The config file is unreadable or has wrong types."""


@dataclass(frozen=True)
class Config:
    api_url: str = DEFAULT_API_URL
    api_key: str | None = None
    tenant: str | None = None
    path: Path | None = None
    # Where each value came from ("flag", "env:NAME", "file", "devstack", "default").
    sources: dict[str, str] = field(default_factory=dict)


def default_path(env: Mapping[str, str]) -> Path:
    if env.get("CODEX_CLOUD_CONFIG"):
        return Path(env["CODEX_CLOUD_CONFIG"]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")) / ".config")
    return Path(base).expanduser() / "codex-cloud" / "config.toml"


def read_file(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    out: dict[str, str] = {}
    for key in ENV_VARS:
        if key in data:
            if not isinstance(data[key], str):
                raise ConfigError(f"{path}: {key} must be a string")
            out[key] = data[key]
    return out


def devstack_env(root: Path = REPO_ROOT) -> dict[str, str]:
    """The client environment of the most recent local stack (`.devstack/env.sh`)."""
    path = root / ".devstack" / "env.sh"
    if not path.is_file():
        return {}
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^export ([A-Z0-9_]+)=(.*)$", line)
        if match:
            try:
                value = shlex.split(match.group(2))
            except ValueError:
                continue
            env[match.group(1)] = value[0] if value else ""
    return env


def resolve(
    flags: Mapping[str, str | None],
    env: Mapping[str, str],
    *,
    config_path: Path | None = None,
    devstack: Mapping[str, str] | None = None,
) -> Config:
    path = config_path or default_path(env)
    from_file = read_file(path)
    stack = dict(devstack or {})
    values: dict[str, str | None] = {}
    sources: dict[str, str] = {}
    for key, names in ENV_VARS.items():
        flag = flags.get(key)
        if flag:
            values[key], sources[key] = flag, "flag"
            continue
        found = next((n for n in names if env.get(n)), None)
        if found:
            values[key], sources[key] = env[found], f"env:{found}"
            continue
        if key in from_file:
            values[key], sources[key] = from_file[key], "file"
            continue
        stacked = next((stack[n] for n in names if stack.get(n)), None)
        if stacked:
            values[key], sources[key] = stacked, "devstack"
            continue
        values[key], sources[key] = None, "default"
    return Config(
        api_url=(values["api_url"] or DEFAULT_API_URL).rstrip("/"),
        api_key=values["api_key"],
        tenant=values["tenant"],
        path=path,
        sources=sources,
    )


def save(path: Path, updates: Mapping[str, str]) -> None:
    """Set keys in the config file (other keys are kept); the file is private to the user."""
    current = read_file(path)
    current.update(updates)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(f"{k} = {_toml_string(v)}\n" for k, v in sorted(current.items()))
    path.write_text(body)
    path.chmod(0o600)


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
