"""Worker authentication (worker/auth.py, decision 0021) without Google: the test generates an
RSA key, serves its certificate from a local HTTP server standing in for Google's certs URL,
mints ID tokens with google.auth.jwt, and calls the real worker app served by uvicorn on
loopback, as `python -m worker` serves it (its runtime replaced by a stub, so no Firestore or
codex is needed). Also: every caller attaches a token for the worker's audience.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

import worker.service
from devstack.ports import free_port
from shared.adapters import Adapters
from shared.adapters.tasks import TaskQueue
from shared.oidc import CachingRequest, CallerRejected, id_token_headers
from shared.services import sweeper
from shared.services.dispatch import workflow_argument
from shared.settings import Settings
from tests import idtokens
from tests.httpfakes import FakeServer, fake_server
from tests.idtokens import KID, keypair
from worker.auth import WorkerAuth
from worker.runtime import Accepted
from worker.service import create_app

AUDIENCE = "https://worker.codex.example.com"
CALLER = "codex-dispatch@proj.iam.gserviceaccount.com"
OTHER = "someone@proj.iam.gserviceaccount.com"


@pytest.fixture(scope="module")
def signing_key() -> tuple[bytes, str]:
    return keypair()


@pytest.fixture(scope="module")
def other_key() -> tuple[bytes, str]:
    return keypair()


def mint(key: tuple[bytes, str], **claims: Any) -> str:
    return idtokens.mint(key, **{"audience": AUDIENCE, "email": CALLER, **claims})


@pytest.fixture(scope="module")
def certs(signing_key: tuple[bytes, str]) -> Iterator[FakeServer]:
    with idtokens.published_certs(signing_key) as server:
        yield server


class StubJobs:
    def get_job(self, job_id: str) -> None:
        return None

    def request_cancel(self, job_id: str) -> None:
        return None


class StubRuntime:
    """Stands in for WorkerRuntime: answers the routes without Firestore or codex."""

    def __init__(self, adapters: Adapters, advertise_url: str) -> None:
        self.adapters = adapters
        self.worker_id = "worker-test"
        self.draining = False

    async def start(self) -> None:
        return None

    async def drain(self) -> None:
        return None

    async def accept(self, job_id: str, *, wait: bool) -> Accepted:
        return Accepted("accepted", None)

    def cancel(self, job_id: str) -> bool:
        return True

    def free_slots(self) -> int:
        return 1


def _adapters(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Adapters:
    adapters = Adapters(settings)
    adapters.__dict__["jobs"] = StubJobs()  # fills the cached property: no Firestore client
    monkeypatch.setattr(worker.service, "WorkerRuntime", StubRuntime)
    return adapters


@contextmanager
def serve(app: Starlette) -> Iterator[httpx.Client]:
    """The app under uvicorn on a loopback port (lifespan included) and a client for it."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", loop="asyncio")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive(), "worker app did not start"
        assert time.monotonic() < deadline, "worker app did not start in time"
        time.sleep(0.01)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def client(certs: FakeServer) -> Iterator[httpx.Client]:
    """One worker app for the module (the stub runtime stays patched in while it runs)."""
    settings = Settings(environment="test")
    auth = WorkerAuth(AUDIENCE, [CALLER.upper()], certs_url=f"{certs.url}/certs")
    with pytest.MonkeyPatch.context() as monkeypatch:
        app = create_app(_adapters(monkeypatch, settings), advertise_url="http://w", auth=auth)
        with serve(app) as c:
            yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_no_token_is_401_with_a_bearer_challenge(client: httpx.Client) -> None:
    for method, path in (
        ("POST", "/v1/jobs/j1:run"),
        ("POST", "/v1/jobs/j1:run-sync"),
        ("POST", "/v1/jobs/j1:cancel"),
        ("GET", "/v1/jobs/j1"),
        ("GET", "/no-such-route"),  # default deny: a route added later is covered too
    ):
        resp = client.request(method, path)
        assert resp.status_code == 401, path
        assert resp.headers["www-authenticate"] == "Bearer"
        assert resp.json()["type"] == "urn:codex-cloud:unauthorized"
    assert (
        client.post("/v1/jobs/j1:run", headers={"Authorization": "Basic eDp5"}).status_code == 401
    )


def test_wrong_audience_is_401(client: httpx.Client, signing_key: tuple[bytes, str]) -> None:
    token = mint(signing_key, audience="https://elsewhere.example.com")
    resp = client.post("/v1/jobs/j1:run", headers=bearer(token))
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert "audience" in resp.json()["detail"].lower()


def test_expired_token_is_401(client: httpx.Client, signing_key: tuple[bytes, str]) -> None:
    token = mint(signing_key, issued_s_ago=7200, lifetime_s=3600)
    resp = client.post("/v1/jobs/j1:run", headers=bearer(token))
    assert resp.status_code == 401
    assert "expired" in resp.json()["detail"].lower()


def test_foreign_signature_issuer_or_garbage_is_401(
    client: httpx.Client, signing_key: tuple[bytes, str], other_key: tuple[bytes, str]
) -> None:
    forged = mint(other_key)  # same key id, a key Google never published
    assert client.post("/v1/jobs/j1:run", headers=bearer(forged)).status_code == 401
    wrong_issuer = mint(signing_key, issuer="https://evil.example.com")
    assert client.post("/v1/jobs/j1:run", headers=bearer(wrong_issuer)).status_code == 401
    assert client.post("/v1/jobs/j1:run", headers=bearer("not-a-jwt")).status_code == 401


def test_valid_token_of_an_unlisted_caller_is_403(
    client: httpx.Client, signing_key: tuple[bytes, str]
) -> None:
    resp = client.post("/v1/jobs/j1:cancel", headers=bearer(mint(signing_key, email=OTHER)))
    assert resp.status_code == 403
    assert resp.json()["type"] == "urn:codex-cloud:forbidden"
    unverified = mint(signing_key, verified=False)
    assert client.post("/v1/jobs/j1:run", headers=bearer(unverified)).status_code == 403


def test_valid_token_reaches_every_route(
    client: httpx.Client, signing_key: tuple[bytes, str]
) -> None:
    headers = bearer(mint(signing_key))
    assert client.post("/v1/jobs/j1:run", headers=headers).status_code == 202
    assert client.post("/v1/jobs/j1:run-sync", headers=headers).status_code == 200
    assert client.post("/v1/jobs/j1:cancel", headers=headers).json()["stopping_here"] is True
    assert client.get("/v1/jobs/j1", headers=headers).status_code == 404  # the route answered


def test_probes_and_metrics_stay_open(client: httpx.Client) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_certificates_are_fetched_once_not_per_request(
    client: httpx.Client, certs: FakeServer, signing_key: tuple[bytes, str]
) -> None:
    for _ in range(5):
        assert client.post("/v1/jobs/j1:run", headers=bearer(mint(signing_key))).status_code == 202
    assert len(certs.requests) == 1  # for the whole module, whatever ran before


def test_unreachable_certificates_are_a_retryable_503(
    monkeypatch: pytest.MonkeyPatch, signing_key: tuple[bytes, str]
) -> None:
    with fake_server(lambda req: (500, {})) as broken:
        auth = WorkerAuth(AUDIENCE, [CALLER], certs_url=f"{broken.url}/certs")
        app = create_app(
            _adapters(monkeypatch, Settings(environment="test")), advertise_url="w", auth=auth
        )
        with serve(app) as c:
            resp = c.post("/v1/jobs/j1:run", headers=bearer(mint(signing_key)))
    assert resp.status_code == 503
    assert resp.headers["retry-after"]


class GoogleCerts:
    """A stand-in transport for Google's certs endpoint (max-age like Google's) and a clock."""

    def __init__(self, published: dict[str, str]) -> None:
        self.published = published
        self.fetches = 0
        self.now = 1000.0

    def __call__(self, url: str, method: str = "GET", **kwargs: Any) -> Any:
        self.fetches += 1
        body = json.dumps(self.published).encode()
        headers = {"Cache-Control": "public, max-age=20000, must-revalidate"}
        return type("Resp", (), {"status": 200, "headers": headers, "data": body})()


def test_certificates_are_reused_for_their_max_age(signing_key: tuple[bytes, str]) -> None:
    google = GoogleCerts({KID: signing_key[1]})
    auth = WorkerAuth(AUDIENCE, [CALLER], request=CachingRequest(google, clock=lambda: google.now))
    assert auth.verify(f"Bearer {mint(signing_key)}") == CALLER
    google.now += 19_000
    assert auth.verify(f"Bearer {mint(signing_key)}") == CALLER
    assert google.fetches == 1
    google.now += 2_000
    assert auth.verify(f"Bearer {mint(signing_key)}") == CALLER
    assert google.fetches == 2


def test_a_rotated_key_refetches_the_certificates_at_most_every_few_minutes(
    signing_key: tuple[bytes, str], other_key: tuple[bytes, str]
) -> None:
    google = GoogleCerts({KID: signing_key[1]})
    auth = WorkerAuth(AUDIENCE, [CALLER], request=CachingRequest(google, clock=lambda: google.now))
    assert auth.verify(f"Bearer {mint(signing_key)}") == CALLER
    google.published["rotated"] = other_key[1]
    new_key_token = f"Bearer {mint(other_key, kid='rotated')}"
    google.now += 10  # the cache is fresh: garbage tokens cannot make us refetch
    with pytest.raises(CallerRejected):
        auth.verify(new_key_token)
    assert google.fetches == 1
    google.now += 600
    assert auth.verify(new_key_token) == CALLER
    assert google.fetches == 2


# ---- settings ---------------------------------------------------------------------------------


def _prod(**fields: Any) -> Settings:
    return Settings(
        environment="prod",
        project_id="p",
        token_signing_key="x" * 40,  # type: ignore[arg-type]
        **fields,
    )


def test_the_worker_refuses_to_start_open_outside_local(monkeypatch: pytest.MonkeyPatch) -> None:
    # Production settings come from a clean environment: earlier tests in this process point
    # the emulator hosts (which production settings refuse) at their stacks.
    for name in list(os.environ):
        if name.endswith("_EMULATOR_HOST") or name.startswith("CODEX_CLOUD_"):
            monkeypatch.delenv(name)
    with pytest.raises(RuntimeError, match="CODEX_CLOUD_WORKER_OIDC_AUDIENCE"):
        create_app(_adapters(monkeypatch, _prod()))
    configured = _prod(worker_oidc_audience=AUDIENCE, worker_allowed_callers=f"{CALLER}, {OTHER}")
    auth = WorkerAuth.from_settings(configured)
    assert auth is not None
    assert auth.audience == AUDIENCE
    assert auth.allowed == {CALLER, OTHER}


def test_a_worker_with_an_audience_needs_callers() -> None:
    callers_only_for_the_worker = Settings(environment="local", worker_oidc_audience=AUDIENCE)
    with pytest.raises(RuntimeError, match="CODEX_CLOUD_WORKER_ALLOWED_CALLERS"):
        WorkerAuth.from_settings(callers_only_for_the_worker)
    with pytest.raises(ValueError, match="blank"):
        Settings(environment="local", worker_oidc_audience=" ")


def test_the_local_stack_runs_without_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(environment="local")
    assert WorkerAuth.from_settings(settings) is None
    with serve(create_app(_adapters(monkeypatch, settings), advertise_url="w")) as c:
        assert c.post("/v1/jobs/j1:run").status_code == 202


# ---- callers ----------------------------------------------------------------------------------


class RecordingTasksClient:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def queue_path(self, project: str, location: str, queue: str) -> str:
        return f"projects/{project}/locations/{location}/queues/{queue}"

    def create_task(self, request: dict[str, Any]) -> Any:
        self.requests.append(request)
        return type("Task", (), {"name": "t"})()


def test_cloud_tasks_carry_a_token_for_the_worker_audience(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(environment="test", tasks_service_account=CALLER)
    queue = TaskQueue(settings)
    fake = RecordingTasksClient()
    queue.__dict__["client"] = fake  # fills the cached property: no Cloud Tasks client
    queue.enqueue_http("normal", url=f"{AUDIENCE}/v1/jobs/j1:run", body={}, audience=AUDIENCE)
    queue.enqueue_http("webhooks", url="https://control.example.com/internal/x", body={})
    worker_task, control_task = (r["task"]["http_request"] for r in fake.requests)
    assert worker_task["oidc_token"] == {"service_account_email": CALLER, "audience": AUDIENCE}
    assert control_task["oidc_token"]["audience"] == "https://control.example.com/internal/x"


def test_the_workflow_is_told_the_worker_audience() -> None:
    settings = Settings(
        environment="test", worker_oidc_audience=AUDIENCE, worker_allowed_callers=CALLER
    )
    adapters = Adapters(settings)
    job = type("Job", (), {"job_id": "j1", "attempt": 0, "max_attempts": 3})()
    job.deadline_at = datetime.now(UTC)
    arg = workflow_argument(adapters, job, 1, [AUDIENCE])
    assert arg["worker_audience"] == AUDIENCE


def test_the_sweeper_cancel_call_sends_an_id_token(
    monkeypatch: pytest.MonkeyPatch, signing_key: tuple[bytes, str]
) -> None:
    assert id_token_headers(None) == {}
    token = mint(signing_key)
    asked: list[str] = []

    def fetch(request: Any, audience: str) -> str:
        asked.append(audience)
        return token

    monkeypatch.setattr("shared.oidc.id_token.fetch_id_token", fetch)
    settings = Settings(
        environment="test", worker_oidc_audience=AUDIENCE, worker_allowed_callers=CALLER
    )
    with fake_server(lambda req: (202, {})) as fake_worker:
        monkeypatch.setattr(sweeper, "worker_url_for", lambda adapters, owner: fake_worker.url)
        sweeper._ask_worker_to_stop(Adapters(settings), "j1", "worker-0")
    assert asked == [AUDIENCE]
    (call,) = fake_worker.requests
    assert call.path == "/v1/jobs/j1:cancel"
    assert call.headers["authorization"] == f"Bearer {token}"
