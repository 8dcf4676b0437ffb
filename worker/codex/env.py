"""The environment of the codex process, built from an allow-list, never from the runner's own.

Two layers keep secrets away from agent commands: codex itself only receives the allow-listed
variables built here, and its `shell_environment_policy` (see config.py) strips the provider
key before commands start. The runner's cloud credentials, emulator hosts and signing keys are
simply never copied.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# Copied from the runner's environment when present; everything else is dropped.
INHERITED_VARS: tuple[str, ...] = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "USER", "LOGNAME")
FALLBACK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Names a caller may not smuggle in as "extras": they are the runner's own secrets/wiring.
FORBIDDEN_EXTRA_PATTERNS: tuple[str, ...] = (
    "GOOGLE_*",
    "GCLOUD_*",
    "CLOUDSDK_*",
    "*_EMULATOR_HOST",
    "CODEX_CLOUD_*",
    "OPENAI_API_KEY",
    "CODEX_API_KEY",
    "AWS_*",
    "CODEX_HOME",
    "HOME",
)
# Set by the runner on every codex process (see process.py) so that leftovers can be found
# even after they left the process tree; harmless for agent commands to see.
RUN_MARKER_VAR = "CODEX_RUNNER_RUN_ID"

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ApiKey:
    """A provider key handed to codex (only to codex) under ``env_var``."""

    env_var: str
    value: str = field(repr=False)


def build_codex_env(
    *,
    home: Path,
    codex_home: Path,
    tmp_dir: Path | None = None,
    source_env: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
    api_key: ApiKey | None = None,
    git_ceiling: Path | None = None,
) -> dict[str, str]:
    """Environment for the codex process.

    ``source_env`` defaults to ``os.environ`` and only contributes INHERITED_VARS. ``extra``
    variables are passed through to codex and, when listed in the config allow-list (see
    `shell_env_names`), to agent commands. ``git_ceiling`` (the job's own directory) stops git
    — codex's repository discovery and the agent's commands — from climbing above the job:
    a workspace that happens to lie inside some other checkout must not pick up that
    repository's status, history or AGENTS.md (and walking it costs codex ~100 ms a turn).
    """
    source = os.environ if source_env is None else source_env
    env: dict[str, str] = {name: source[name] for name in INHERITED_VARS if name in source}
    env.setdefault("PATH", FALLBACK_PATH)
    env.setdefault("LANG", "C.UTF-8")
    env["TERM"] = "dumb"
    env["HOME"] = str(home)
    env["CODEX_HOME"] = str(codex_home)
    if tmp_dir is not None:
        env["TMPDIR"] = str(tmp_dir)
    if git_ceiling is not None:
        env["GIT_CEILING_DIRECTORIES"] = str(git_ceiling)
    for name, value in (extra or {}).items():
        check_extra_name(name)
        env[name] = value
    if api_key is not None:
        if not _ENV_NAME.match(api_key.env_var):
            raise ValueError(f"invalid env var name {api_key.env_var!r}")
        if api_key.env_var in (extra or {}):
            raise ValueError("the provider key variable cannot also be an extra")
        env[api_key.env_var] = api_key.value
    return env


def check_extra_name(name: str) -> None:
    if not _ENV_NAME.match(name):
        raise ValueError(f"invalid env var name {name!r}")
    for pattern in FORBIDDEN_EXTRA_PATTERNS:
        if fnmatch.fnmatchcase(name.upper(), pattern):
            raise ValueError(f"{name} may not be passed to codex (matches {pattern})")


def shell_env_names(extra: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Names to add to the command allow-list so agent commands see a run's extras."""
    return tuple(sorted(extra or {}))
