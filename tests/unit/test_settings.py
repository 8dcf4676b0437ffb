from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.settings import Settings


def test_local_defaults_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    settings = Settings()
    assert settings.environment == "local"
    assert settings.topology.topic("jobs") == "codex-jobs"


def test_prefix_applies_to_every_resource_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEX_CLOUD_NAME_PREFIX", "stg-")
    topo = Settings().topology
    assert topo.topic("results") == "stg-codex-results"
    assert topo.bucket("uploads") == "stg-codex-uploads"
    assert topo.queue("critical") == "stg-codex-jobs-critical"


def test_production_refuses_unsafe_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEX_CLOUD_ENVIRONMENT", "prod")
    monkeypatch.setenv("CODEX_CLOUD_WEBHOOK_ALLOW_PRIVATE", "true")
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")
    with pytest.raises(ValidationError) as info:
        Settings()
    message = str(info.value)
    assert "CODEX_CLOUD_TOKEN_SIGNING_KEY" in message
    assert "WEBHOOK_ALLOW_PRIVATE" in message
    assert "FIRESTORE_EMULATOR_HOST" in message


@pytest.mark.usefixtures("without_emulators")
def test_production_accepts_explicit_safe_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEX_CLOUD_ENVIRONMENT", "prod")
    monkeypatch.setenv("CODEX_CLOUD_PROJECT_ID", "acme-prod")
    monkeypatch.setenv("CODEX_CLOUD_TOKEN_SIGNING_KEY", "k" * 48)
    settings = Settings()
    assert settings.project_id == "acme-prod"
    assert "k" * 48 not in repr(settings)  # secrets never appear in reprs or logs


def test_out_of_range_values_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEX_CLOUD_WORKER_SLOTS", "0")
    with pytest.raises(ValidationError, match="worker_slots"):
        Settings()


def test_the_loopback_worker_url_names_a_pool_only_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CODEX_CLOUD_WORKER_URL", raising=False)
    assert Settings(environment="local").worker_pool_url == "http://127.0.0.1:8080"
    monkeypatch.setenv("CODEX_CLOUD_ENVIRONMENT", "prod")
    monkeypatch.setenv("CODEX_CLOUD_PROJECT_ID", "acme-prod")
    monkeypatch.setenv("CODEX_CLOUD_TOKEN_SIGNING_KEY", "k" * 48)
    for var in ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "STORAGE_EMULATOR_HOST"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("CODEX_CLOUD_TASKS_EMULATOR_HOST", raising=False)
    monkeypatch.delenv("CODEX_CLOUD_WORKFLOWS_EMULATOR_URL", raising=False)
    assert Settings().worker_pool_url == ""  # dispatch then refuses instead of using it
    monkeypatch.setenv("CODEX_CLOUD_WORKER_URL", "https://worker.example.com/")
    assert Settings().worker_pool_url == "https://worker.example.com"
