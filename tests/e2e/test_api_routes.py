"""REST routes of the API against the running local stack (emulators + API process)."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import time
from collections.abc import Iterator
from typing import Any

import google.cloud.storage as storage
import httpx
import pytest

from shared.apikeys import revoke_key
from shared.errors import CodexCloudError
from tests.e2e.api_support import (
    ApiEnv,
    api,
    api_stack,
    finish_job,
    run_job,
    start_job,
    wait_for_job,
)

__all__ = ["api", "api_stack"]
PROBLEM = "application/problem+json"


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail", "code"} <= set(body)
    assert "Traceback" not in response.text
    return body


def test_health_ready_and_metrics(api: ApiEnv) -> None:
    with api.client() as c:
        assert c.get("/health").json() == {"status": "ok"}
        ready = c.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"firestore": "ok", "redis": "ok"}
        key, _ = api.key()
        c.get("/v2/jobs/nope", headers={"X-API-KEY": key})
        text = c.get("/metrics").text
    assert 'http_requests_total{route="/v2/jobs/{job_id}",service="api",status="404"}' in text
    assert 'http_request_duration_seconds_bucket{le="0.005",route="/v2/jobs/{job_id}"' in text


def test_async_submission_then_status_and_listing(api: ApiEnv) -> None:
    key, _ = api.key()
    with api.client(key) as c:
        r = c.post("/v2/exec", json={"prompt": "write hello.py", "metadata": {"team": "a"}})
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["mode"] == "async"
        assert body["status"] == "queued"
        assert body["session_id"].startswith("sess_")
        assert body["status_url"].endswith(f"/v2/jobs/{body['job_id']}")
        assert body["events_url"].endswith(f"/v2/jobs/{body['job_id']}/events")
        assert body["estimated_completion"]
        assert int(r.headers["RateLimit-Remaining"]) < int(r.headers["RateLimit-Limit"])

        job = c.get(f"/v2/jobs/{body['job_id']}").json()
        assert job["status"] == "queued"
        assert job["metadata"] == {"team": "a"}
        assert job["channel"] == "http"
        assert job["request"]["prompt"] == "write hello.py"

        second = c.post("/v2/exec", json={"prompt": "second"}).json()
        listing = c.get("/v2/jobs", params={"limit": 1}).json()
        assert [j["job_id"] for j in listing["jobs"]] == [second["job_id"]]
        rest = c.get("/v2/jobs", params={"limit": 1, "cursor": listing["next_cursor"]}).json()
        assert [j["job_id"] for j in rest["jobs"]] == [body["job_id"]]
        assert rest["next_cursor"] is None

        c.post(f"/v2/jobs/{second['job_id']}:cancel")
        cancelled = c.get("/v2/jobs", params={"status": "cancelled"}).json()["jobs"]
        assert [j["job_id"] for j in cancelled] == [second["job_id"]]
        assert c.get("/v2/jobs", params={"channel": "pubsub"}).json()["jobs"] == []
        _problem(c.get("/v2/jobs", params={"status": "bogus"}), 422)
        _problem(c.get("/v2/jobs", params={"cursor": "bm9wZQ"}), 404)


def test_exec_async_alias_forces_async_mode(api: ApiEnv) -> None:
    key, _ = api.key()
    with api.client(key) as c:
        r = c.post("/v2/exec/async", json={"prompt": "p", "mode": "sync"})
        assert r.status_code == 202
        assert r.json()["mode"] == "async"
        assert c.get(f"/v2/jobs/{r.json()['job_id']}").json()["mode"] == "async"


def test_sync_answers_with_the_result_once_the_job_finishes(api: ApiEnv) -> None:
    key, tenant = api.key()
    with api.client(key) as c, concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(
            c.post, "/v2/exec", json={"prompt": "p", "mode": "sync", "timeout_ms": 60_000}
        )
        job = wait_for_job(api.store, tenant)
        time.sleep(0.2)
        assert not pending.done()
        run_job(api.store, job.job_id, text="print('hello')")
        r = pending.result(timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["job_id"] == job.job_id
    assert body["mode"] == "sync"
    assert body["status"] == "succeeded"
    assert body["exit_code"] == 0
    assert body["stdout"] == "print('hello')"
    assert body["stderr"] == ""
    assert body["execution_time_ms"] == 1234
    assert body["result"]["final_message"] == "print('hello')"


def test_sync_reports_failures_in_stderr(api: ApiEnv) -> None:
    key, tenant = api.key()
    with api.client(key) as c, concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(c.post, "/v2/exec", json={"prompt": "p", "mode": "sync"})
        job = wait_for_job(api.store, tenant)
        api.store.request_cancel(job.job_id, reason="stopped by operator")
        r = pending.result(timeout=10)
    assert r.status_code == 200
    assert r.json()["status"] == "cancelled"
    assert r.json()["stderr"] == "stopped by operator"


def test_sync_wait_that_runs_out_answers_202(api: ApiEnv) -> None:
    key, _ = api.key()
    with api.client(key) as c:
        started = time.monotonic()
        r = c.post("/v2/exec", json={"prompt": "p", "mode": "sync", "timeout_ms": 1000})
        elapsed = time.monotonic() - started
    assert r.status_code == 202
    assert r.json()["mode"] == "sync"
    assert r.json()["status"] == "queued"
    assert 1.4 < elapsed < 5


def test_stream_mode_hands_out_a_scoped_connection_token(api: ApiEnv) -> None:
    key, _ = api.key()
    with api.client(key) as c:
        r = c.post("/v2/exec", json={"prompt": "p", "mode": "stream", "session_id": "my-sess"})
    assert r.status_code == 200
    body = r.json()
    assert body["session_id"] == "my-sess"
    assert body["mode"] == "stream"
    assert body["websocket_url"].startswith("ws://")
    assert "/v2/stream/my-sess?token=" in body["websocket_url"]
    assert body["connection_token"]
    assert body["events_url"].endswith("/events")
    claims = json.loads(base64.urlsafe_b64decode(body["connection_token"].split(".")[0] + "=="))
    assert claims["sid"] == "my-sess"
    assert claims["jid"] == body["job_id"]


def test_idempotency_key_replays_and_conflicts(api: ApiEnv) -> None:
    key, _ = api.key()
    with api.client(key) as c:
        headers = {"Idempotency-Key": "order-42"}
        first = c.post("/v2/exec", json={"prompt": "p"}, headers=headers)
        again = c.post("/v2/exec", json={"prompt": "p"}, headers=headers)
        other = c.post("/v2/exec", json={"prompt": "different"}, headers=headers)
        fresh = c.post("/v2/exec", json={"prompt": "p"}, headers={"Idempotency-Key": "order-43"})
    assert first.status_code == again.status_code == 202
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    body = _problem(other, 409)
    assert body["code"] == "conflict"
    assert fresh.json()["job_id"] != first.json()["job_id"]


def test_idempotent_replay_of_a_finished_sync_job(api: ApiEnv) -> None:
    key, tenant = api.key()
    headers = {"Idempotency-Key": "sync-1"}
    with api.client(key) as c, concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(
            c.post, "/v2/exec", json={"prompt": "p", "mode": "sync"}, headers=headers
        )
        run_job(api.store, wait_for_job(api.store, tenant).job_id)
        first = pending.result(timeout=10)
        again = c.post("/v2/exec", json={"prompt": "p", "mode": "sync"}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()


def test_webhook_secret_is_generated_once_and_never_shown_again(api: ApiEnv) -> None:
    key, _ = api.key()
    with api.client(key) as c:
        r = c.post("/v2/exec", json={"prompt": "p", "webhook": {"url": "https://example.com/h"}})
        assert r.status_code == 202
        secret = r.json()["webhook_secret"]
        assert len(secret) >= 32
        job = c.get(f"/v2/jobs/{r.json()['job_id']}").text
    assert secret not in job
    assert api.store.require_job(r.json()["job_id"]).webhook_secret == secret


def test_cancel_and_delete(api: ApiEnv) -> None:
    key, _ = api.key()
    with api.client(key) as c:
        queued = c.post("/v2/exec", json={"prompt": "a"}).json()["job_id"]
        r = c.post(f"/v2/jobs/{queued}:cancel")
        assert r.status_code == 200
        assert r.json()["status"] == "cancelled"
        assert _problem(c.post(f"/v2/jobs/{queued}:cancel"), 409)["code"] == "conflict"
        assert _problem(c.delete(f"/v2/jobs/{queued}"), 409)

        running = c.post("/v2/exec", json={"prompt": "b"}).json()["job_id"]
        start_job(api.store, running)
        r = c.delete(f"/v2/jobs/{running}")
        assert r.status_code == 202
        assert r.json()["status"] == "running"
        assert r.json()["cancel_requested"] is True

        done = c.post("/v2/exec", json={"prompt": "c"}).json()["job_id"]
        start_job(api.store, done)
        finish_job(api.store, done)
        assert _problem(c.delete(f"/v2/jobs/{done}"), 409)
        _problem(c.delete("/v2/jobs/does-not-exist"), 404)


def test_artifacts_are_listed_and_downloaded(api: ApiEnv) -> None:
    key, _ = api.key()
    with api.client(key) as c:
        job_id = c.post("/v2/exec", json={"prompt": "a"}).json()["job_id"]
        bucket = storage.Client().bucket(api.stack.topology.bucket("outputs"))
        bucket.blob(f"{job_id}/hello.py").upload_from_string(
            b"print('hello')\n", content_type="text/x-python"
        )
        bucket.blob(f"{job_id}/logs/run.txt").upload_from_string(b"log")
        bucket.blob("other-job/secret.txt").upload_from_string(b"no")

        listing = c.get(f"/v2/jobs/{job_id}/artifacts").json()
        names = sorted(a["name"] for a in listing["artifacts"])
        assert names == ["hello.py", "logs/run.txt"]
        hello = next(a for a in listing["artifacts"] if a["name"] == "hello.py")
        assert hello["size"] == 15
        assert hello["url"].endswith(f"/v2/jobs/{job_id}/artifacts/hello.py")

        # fake-gcs cannot sign URLs, so the API proxies the bytes.
        r = c.get(f"/v2/jobs/{job_id}/artifacts/hello.py")
        assert r.status_code == 200
        assert r.content == b"print('hello')\n"
        assert r.headers["content-type"].startswith("text/x-python")
        assert c.get(f"/v2/jobs/{job_id}/artifacts/logs/run.txt").content == b"log"
        _problem(c.get(f"/v2/jobs/{job_id}/artifacts/missing.txt"), 404)
        _problem(c.get(f"/v2/jobs/{job_id}/artifacts/../other-job/secret.txt"), 404)


def test_artifact_downloads_stream_any_size_and_any_name(api: ApiEnv) -> None:
    key, _ = api.key()
    outputs = api.stack.topology.bucket("outputs")
    # Above the old 64 MiB proxy limit (was a 413 naming gs://<bucket>/...), and not a whole
    # number of storage read chunks.
    big = bytes(range(256)) * (65 * 4096 + 3)
    with api.client(key) as c:
        job_id = c.post("/v2/exec", json={"prompt": "a"}).json()["job_id"]
        bucket = storage.Client().bucket(outputs)
        bucket.blob(f"{job_id}/报告.txt").upload_from_string("内容".encode())
        bucket.blob(f"{job_id}/big.bin").upload_from_string(big)
        bucket.blob(f"{job_id}/empty").upload_from_string(b"")

        # Regression: a non-Latin-1 name made the Content-Disposition header fail (500).
        r = c.get(f"/v2/jobs/{job_id}/artifacts/报告.txt")
        assert r.status_code == 200, r.text
        assert r.content == "内容".encode()
        assert r.headers["content-disposition"] == (
            "attachment; filename=\"__.txt\"; filename*=UTF-8''%E6%8A%A5%E5%91%8A.txt"
        )

        with c.stream("GET", f"/v2/jobs/{job_id}/artifacts/big.bin") as r:
            assert r.status_code == 200
            assert r.headers["content-length"] == str(len(big))
            assert b"".join(r.iter_bytes()) == big
        empty = c.get(f"/v2/jobs/{job_id}/artifacts/empty")
        assert empty.status_code == 200
        assert empty.content == b""

        missing = _problem(c.get(f"/v2/jobs/{job_id}/artifacts/nope.txt"), 404)
        assert missing["detail"] == "artifact nope.txt not found"
    # Storage errors name no bucket and no gs:// URL: their details can reach callers.
    for call in (
        lambda: api.adapters.storage.get(outputs, f"{job_id}/nope.txt"),
        lambda: api.adapters.storage.get(outputs, f"{job_id}/big.bin", max_bytes=1),
        lambda: api.adapters.storage.list("no-such-bucket-x"),
    ):
        with pytest.raises(CodexCloudError) as info:
            call()
        assert "gs://" not in info.value.detail
        assert outputs not in info.value.detail
        assert "no-such-bucket-x" not in info.value.detail


def test_inputs_that_used_to_fail_with_500_are_refused_with_422(api: ApiEnv) -> None:
    key, _ = api.key()

    def nested_not(levels: int) -> dict[str, Any]:
        schema: dict[str, Any] = {}
        for _ in range(levels):
            schema = {"not": schema}
        return schema

    with api.client(key) as c:
        for url in ("http://[::1", "https://[evil]/x"):
            body = _problem(c.post("/v2/exec", json={"prompt": "p", "webhook": {"url": url}}), 422)
            assert ["body", "webhook", "url"] in [e["loc"] for e in body["errors"]]
        too_deep = {"prompt": "p", "output_schema": nested_not(200)}
        body = _problem(c.post("/v2/exec", json=too_deep), 422)
        assert body["errors"][0]["loc"] == ["body", "output_schema"]
        assert "nesting" in body["errors"][0]["msg"]
        # Within the limit, the schema check runs to the end inside the server's own stack.
        deep_ok = c.post("/v2/exec", json={"prompt": "p", "output_schema": nested_not(62)})
        assert deep_ok.status_code == 202, deep_ok.text
        # A lone surrogate escape (json.dumps writes "\ud800" as that escape).
        for payload in (
            {"prompt": "p", "output_schema": {"description": "\ud800"}},
            {"prompt": "\ud800"},
            {"prompt": "p", "metadata": {"k": "\udfff"}},
        ):
            raw = json.dumps(payload).encode()
            assert b"\\ud" in raw
            r = c.post("/v2/exec", content=raw, headers={"Content-Type": "application/json"})
            assert _problem(r, 422)["errors"], r.text


def test_list_cursors_that_name_no_possible_job_are_bad_cursors(api: ApiEnv) -> None:
    key, _ = api.key()
    with api.client(key) as c:
        c.post("/v2/exec", json={"prompt": "p"})
        undecodable = _problem(c.get("/v2/jobs", params={"cursor": "//8"}), 404)
        assert undecodable["detail"] == "invalid cursor"
        # `__main__` (reserved by Firestore), `.` and `..`: regression, answered 503 + Retry-After.
        for cursor in ("X19tYWluX18", "Lg", "Li4"):
            r = c.get("/v2/jobs", params={"cursor": cursor})
            assert _problem(r, 404) == {**undecodable, "instance": "/v2/jobs"}
            assert "Retry-After" not in r.headers


def test_other_tenants_see_404_for_everything(api: ApiEnv) -> None:
    key_a, _ = api.key()
    key_b, _ = api.key(scopes=("read", "write", "admin"))
    with api.client(key_a) as a, api.client(key_b) as b:
        job_id = a.post("/v2/exec", json={"prompt": "mine"}).json()["job_id"]
        storage.Client().bucket(api.stack.topology.bucket("outputs")).blob(
            f"{job_id}/x.txt"
        ).upload_from_string(b"x")
        for response in (
            b.get(f"/v2/jobs/{job_id}"),
            b.get(f"/v2/jobs/{job_id}/events"),
            b.get(f"/v2/jobs/{job_id}/artifacts"),
            b.get(f"/v2/jobs/{job_id}/artifacts/x.txt"),
            b.post(f"/v2/jobs/{job_id}:cancel"),
            b.delete(f"/v2/jobs/{job_id}"),
        ):
            assert _problem(response, 404)["detail"] == f"job {job_id} not found"
        assert b.get("/v2/jobs").json()["jobs"] == []
        cursor = base64.urlsafe_b64encode(job_id.encode()).decode().rstrip("=")
        _problem(b.get("/v2/jobs", params={"cursor": cursor}), 404)
        assert a.get(f"/v2/jobs/{job_id}").json()["status"] == "queued"


def test_authentication_and_scopes(api: ApiEnv) -> None:
    key, _ = api.key()
    read_only, _ = api.key(scopes=("read",))
    write_only, _ = api.key(scopes=("write",))
    with api.client() as c:
        missing = c.get("/v2/jobs")
        assert _problem(missing, 401)["code"] == "unauthorized"
        assert missing.headers["WWW-Authenticate"].startswith("ApiKey")
        _problem(c.get("/v2/jobs", headers={"X-API-KEY": "cck_nope_nope"}), 401)
        _problem(c.get("/v2/jobs", headers={"X-API-KEY": key + "x"}), 401)
        assert c.get("/v2/jobs", headers={"Authorization": f"Bearer {key}"}).status_code == 200

        assert (
            _problem(
                c.post("/v2/exec", json={"prompt": "p"}, headers={"X-API-KEY": read_only}), 403
            )["code"]
            == "forbidden"
        )
        assert c.get("/v2/jobs", headers={"X-API-KEY": read_only}).status_code == 200
        _problem(c.get("/v2/jobs", headers={"X-API-KEY": write_only}), 403)
        assert (
            c.post("/v2/exec", json={"prompt": "p"}, headers={"X-API-KEY": write_only}).status_code
            == 202
        )
        _problem(c.get("/v2/connections", headers={"X-API-KEY": key}), 403)
        _problem(c.post("/v2/broadcast", json={}, headers={"X-API-KEY": key}), 403)

        key_id = key.split("_")[1]
        revoke_key(api.adapters.firestore, api.settings, key_id)
        _problem(c.get("/v2/jobs", headers={"X-API-KEY": key}), 401)


def test_gateway_identity_is_used_when_trusted(api: ApiEnv) -> None:
    # This stack trusts the gateway (CODEX_CLOUD_TRUST_GATEWAY_USERINFO=true).
    claims = {"sub": "user-1", "tenant": "gw-tenant", "scope": "openid codex.read codex.write"}
    userinfo = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    headers = {"X-Apigateway-Api-Userinfo": userinfo}
    with api.client() as c:
        r = c.post("/v2/exec", json={"prompt": "p"}, headers=headers)
        assert r.status_code == 202, r.text
        assert c.get(f"/v2/jobs/{r.json()['job_id']}", headers=headers).status_code == 200
        assert api.store.require_job(r.json()["job_id"]).tenant == "gw-tenant"
        _problem(c.get("/v2/connections", headers=headers), 403)
        no_tenant = base64.urlsafe_b64encode(b'{"sub": "x"}').decode()
        _problem(c.get("/v2/jobs", headers={"X-Apigateway-Api-Userinfo": no_tenant}), 403)
        _problem(c.get("/v2/jobs", headers={"X-Apigateway-Api-Userinfo": "!!!"}), 401)


def test_malformed_requests_get_problem_details(api: ApiEnv) -> None:
    key, _ = api.key()
    with api.client(key) as c:
        body = _problem(
            c.post(
                "/v2/exec", content=b'{"prompt": ', headers={"Content-Type": "application/json"}
            ),
            400,
        )
        assert body["type"] == "urn:codex-cloud:problem:bad-request"
        assert body["instance"] == "/v2/exec"

        big = json.dumps({"prompt": "x" * (1_100_000)}).encode()
        _problem(c.post("/v2/exec", content=big, headers={"Content-Type": "application/json"}), 413)

        def chunks() -> Iterator[bytes]:
            for _ in range(20):
                yield b"x" * 100_000

        _problem(
            c.post("/v2/exec", content=chunks(), headers={"Content-Type": "application/json"}),
            413,
        )
        _problem(
            c.post("/v2/exec", content=b"prompt=x", headers={"Content-Type": "text/plain"}), 415
        )

        invalid = _problem(
            c.post(
                "/v2/exec", json={"prompt": "", "timeout_ms": 5, "priority": "urgent", "extra": 1}
            ),
            422,
        )
        locs = {tuple(e["loc"]) for e in invalid["errors"]}
        assert {
            ("body", "prompt"),
            ("body", "timeout_ms"),
            ("body", "priority"),
            ("body", "extra"),
        } <= locs
        nested = _problem(
            c.post("/v2/exec", json={"prompt": "p", "workspace": {"type": "git", "url": "-x"}}), 422
        )
        assert ["body", "workspace", "git", "url"] in [e["loc"] for e in nested["errors"]]
        _problem(c.get("/v2/nothing-here"), 404)
        _problem(c.put("/v2/jobs"), 405)
        _problem(c.get("/v2/jobs/x/events", headers={"Last-Event-ID": "abc"}), 422)
