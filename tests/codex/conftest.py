"""Fixtures for tests that run the real codex binary against the scripted model server."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from modelserver import ModelServer
from worker.codex.binary import CodexBinaryNotFound, find_codex_binary
from worker.codex.config import (
    CodexConfig,
    CodexHome,
    ProviderConfig,
    SandboxMode,
    prepare_codex_home,
)
from worker.codex.env import ApiKey, build_codex_env, shell_env_names
from worker.codex.process import CodexOutcome, CodexRunSpec, run_codex


@pytest.fixture(scope="session")
def codex_binary() -> Path:
    try:
        return find_codex_binary()
    except CodexBinaryNotFound as exc:
        pytest.fail(f"codex binary missing ({exc}); run `npm install` at the repository root")


@pytest.fixture(scope="session")
def model_server_session() -> Iterator[ModelServer]:
    with ModelServer() as server:
        yield server


@pytest.fixture
def model_server(model_server_session: ModelServer) -> ModelServer:
    """The shared scripted server with its request log and counters cleared."""
    model_server_session.reset()
    return model_server_session


@dataclass
class CodexJob:
    """One job's directories plus a way to run codex in them."""

    root: Path
    workdir: Path
    binary: Path
    provider: ProviderConfig
    extra_env: Mapping[str, str] = field(default_factory=dict)
    api_key: ApiKey | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    home: CodexHome | None = None
    sandbox_mode: SandboxMode = "workspace-write"
    bundled_skills: bool = False

    def prepare(self) -> CodexHome:
        config = CodexConfig(
            provider=self.provider,
            sandbox_mode=self.sandbox_mode,
            bundled_skills=self.bundled_skills,
        )
        self.home = prepare_codex_home(self.root, config, shell_env_names(self.extra_env))
        return self.home

    def spec(self, prompt: str, **overrides: Any) -> CodexRunSpec:
        home = self.home or self.prepare()
        env = build_codex_env(
            home=home.home,
            codex_home=home.codex_home,
            tmp_dir=home.tmp_dir,
            extra=self.extra_env,
            api_key=self.api_key,
            git_ceiling=self.root,
        )
        spec = CodexRunSpec(
            binary=self.binary,
            workdir=self.workdir,
            prompt=prompt,
            env=env,
            timeout_s=30,
            scratch_dir=self.root / "scratch",
        )
        return replace(spec, **overrides)

    def run(
        self, prompt: str, cancel: asyncio.Event | None = None, **overrides: Any
    ) -> CodexOutcome:
        self.events = []
        spec = self.spec(prompt, **overrides)

        async def go() -> CodexOutcome:
            return await run_codex(spec, self.events.append, cancel or asyncio.Event())

        return asyncio.run(go())

    def event_types(self) -> list[str]:
        return [str(e.get("type")) for e in self.events]

    def items(self, item_type: str, event: str = "item.completed") -> list[dict[str, Any]]:
        return [
            e["item"]
            for e in self.events
            if e.get("type") == event and e.get("item", {}).get("type") == item_type
        ]


@pytest.fixture
def make_job(tmp_path: Path, codex_binary: Path, model_server: ModelServer) -> Any:
    """Factory: a fresh job (root, empty workdir) pointed at the scripted server by default."""
    counter = 0

    def make(name: str | None = None, **provider_overrides: Any) -> CodexJob:
        nonlocal counter
        counter += 1
        root = tmp_path / (name or f"job{counter}")
        workdir = root / "workspace"
        workdir.mkdir(parents=True)
        provider_overrides.setdefault("base_url", model_server.base_url)
        provider = ProviderConfig(**provider_overrides)
        return CodexJob(root=root, workdir=workdir, binary=codex_binary, provider=provider)

    return make


def live_processes_with_env(entry: str) -> list[int]:
    """Live (non-zombie) processes whose environment contains ``entry`` (e.g. "HOME=/x")."""
    needle = entry.encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                environ = fh.read().split(b"\0")
            with open(f"/proc/{name}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ and state not in ("Z", "X"):
            found.append(int(name))
    return found
