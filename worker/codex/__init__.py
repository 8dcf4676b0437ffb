"""Low-level codex runner: config, environment, process, events, workspace and session state.

Plain and typed on purpose: no cloud clients and no settings import; callers pass frozen
dataclasses. The worker service composes these pieces (see README.md in this directory).
"""

from worker.codex.binary import BINARY_ENV_VAR, CodexBinaryNotFound, find_codex_binary
from worker.codex.config import (
    CodexConfig,
    CodexHome,
    ProviderConfig,
    prepare_codex_home,
    render_config_toml,
)
from worker.codex.env import ApiKey, build_codex_env, shell_env_names
from worker.codex.events import StreamMessage, heartbeat, map_event
from worker.codex.process import CodexOutcome, CodexRunSpec, run_codex
from worker.codex.sessions import (
    SessionNotFound,
    find_rollout_files,
    pack_session_state,
    unpack_session_state,
)
from worker.codex.workspace import (
    ArchiveLimits,
    FileChange,
    GitCloneError,
    Snapshot,
    UnsafeArchiveError,
    WorkspaceDiff,
    WorkspaceError,
    archive_changed,
    clone_repo,
    diff,
    extract_archive,
    prepare_empty,
    snapshot,
)

__all__ = [
    "BINARY_ENV_VAR",
    "ApiKey",
    "ArchiveLimits",
    "CodexBinaryNotFound",
    "CodexConfig",
    "CodexHome",
    "CodexOutcome",
    "CodexRunSpec",
    "FileChange",
    "GitCloneError",
    "ProviderConfig",
    "SessionNotFound",
    "Snapshot",
    "StreamMessage",
    "UnsafeArchiveError",
    "WorkspaceDiff",
    "WorkspaceError",
    "archive_changed",
    "build_codex_env",
    "clone_repo",
    "diff",
    "extract_archive",
    "find_codex_binary",
    "find_rollout_files",
    "heartbeat",
    "map_event",
    "pack_session_state",
    "prepare_codex_home",
    "prepare_empty",
    "render_config_toml",
    "run_codex",
    "shell_env_names",
    "snapshot",
    "unpack_session_state",
]
