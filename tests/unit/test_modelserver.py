"""The scripted Responses API server: script format, reply selection, SSE, admin, lifecycle."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.ports import free_port
from modelserver import ModelServer, ScriptError, ScriptRegistry, parse_script

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
ENV_CONTEXT = {
    "type": "message",
    "role": "user",
    "content": [{"type": "input_text", "text": "<environment_context>\n<cwd>/w</cwd>"}],
}


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def tool_output(text: str, custom: bool = False) -> dict[str, Any]:
    kind = "custom_tool_call_output" if custom else "function_call_output"
    return {"type": kind, "call_id": "c", "output": text}


def sse_events(body: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]


def post(client: httpx.Client, *items: dict[str, Any]) -> httpx.Response:
    return client.post("/v1/responses", json={"stream": True, "input": list(items)})


@pytest.fixture(scope="module")
def server() -> Iterator[ModelServer]:
    with ModelServer() as running:
        yield running


@pytest.fixture
def client(server: ModelServer) -> Iterator[httpx.Client]:
    """HTTP client against the real server (over 127.0.0.1), with its counters cleared."""
    server.reset()
    with httpx.Client(base_url=server.url, timeout=10) as http:
        yield http


def test_builtin_scripts_load() -> None:
    names = ScriptRegistry.with_builtins().names()
    for required in (
        "hello",
        "failing-command",
        "env",
        "slow",
        "structured",
        "followup",
        "model-500",
        "hang",
        "default",
    ):
        assert required in names


def test_hello_script_replies_step_by_step(client: httpx.Client) -> None:
    prompt = user("please [[script:hello]] now")

    first = sse_events(post(client, ENV_CONTEXT, prompt).text)
    assert [e["type"] for e in first] == [
        "response.created",
        "response.output_item.done",
        "response.output_item.done",
        "response.completed",
    ]
    reasoning, patch = (e["item"] for e in first[1:3])
    assert reasoning["type"] == "reasoning"
    assert patch["type"] == "custom_tool_call"
    assert patch["name"] == "apply_patch"
    assert patch["input"].startswith("*** Begin Patch\n*** Add File: hello.py\n")
    assert first[-1]["response"]["usage"]["input_tokens"] > 0

    second = sse_events(post(client, prompt, tool_output("Success", custom=True)).text)
    call = second[1]["item"]
    assert call["type"] == "function_call"
    assert call["name"] == "exec_command"
    assert json.loads(call["arguments"]) == {"cmd": "python3 hello.py"}

    third = sse_events(
        post(
            client,
            prompt,
            tool_output("Success", custom=True),
            tool_output("Chunk ID: 1\nProcess exited with code 0\nOutput:\nhello out\n"),
        ).text
    )
    message = third[1]["item"]
    assert message["type"] == "message"
    assert message["content"][0]["text"] == "Created hello.py; running it printed: hello out"


def test_unknown_or_missing_marker_uses_the_default_script(client: httpx.Client) -> None:
    for text in ("just do it", "[[script:nope]] do it"):
        events = sse_events(post(client, ENV_CONTEXT, user(text)).text)
        assert events[1]["item"]["content"][0]["text"].startswith("Done. Request was: ")
        assert "do it" in events[1]["item"]["content"][0]["text"]


def test_turns_follow_user_messages_and_steps_reset_per_turn(client: httpx.Client) -> None:
    first_turn = [user("[[script:followup]] go"), tool_output("ok", custom=True)]

    reply = sse_events(post(client, *first_turn).text)
    assert reply[1]["item"]["content"][0]["text"] == "Created note.txt."

    second = sse_events(post(client, *first_turn, ENV_CONTEXT, user("more")).text)
    assert json.loads(second[1]["item"]["arguments"])["cmd"].startswith("echo second turn")
    records = client.get("/_admin/requests").json()["requests"]
    assert [(r["turn"], r["step"]) for r in records] == [(0, 1), (1, 0)]


def test_exhausted_script_ends_the_turn(client: httpx.Client) -> None:
    outputs = [tool_output("x")] * 5
    events = sse_events(post(client, user("[[script:failing-command]]"), *outputs).text)
    assert events[1]["item"]["content"][0]["text"] == "script failing-command has no more replies"


def test_http_error_for_the_first_n_requests_then_success(client: httpx.Client) -> None:
    prompt = user("[[script:flaky]]")

    assert post(client, prompt).status_code == 500
    ok = post(client, prompt)
    assert ok.status_code == 200
    assert sse_events(ok.text)[-1]["type"] == "response.completed"
    assert client.get("/_admin/requests").json()["per_script"] == {"flaky": 2}

    client.post("/_admin/reset")
    assert client.get("/_admin/requests").json() == {"count": 0, "per_script": {}, "requests": []}
    assert post(client, prompt).status_code == 500


def test_model_500_always_fails(client: httpx.Client) -> None:
    for _ in range(3):
        assert post(client, user("[[script:model-500]]")).status_code == 500


def test_failure_directives_shape_the_stream(server: ModelServer, client: httpx.Client) -> None:
    registry = server.registry
    registry.register(
        {"name": "cut", "replies": [{"close_early": True, "items": [{"message": "partial"}]}]}
    )
    registry.register({"name": "boom", "replies": [{"failed": "model exploded"}]})
    registry.register(
        {"name": "slowly", "replies": [{"slow_ms": 100, "items": [{"message": "late"}]}]}
    )

    cut = sse_events(post(client, user("[[script:cut]]")).text)
    assert [e["type"] for e in cut] == ["response.created", "response.output_item.done"]
    boom = sse_events(post(client, user("[[script:boom]]")).text)
    assert boom[-1]["type"] == "response.failed"
    assert boom[-1]["response"]["error"]["message"] == "model exploded"
    started = time.monotonic()
    slow = sse_events(post(client, user("[[script:slowly]]")).text)
    assert time.monotonic() - started >= 0.2
    assert slow[-1]["type"] == "response.completed"


def test_requests_are_recorded_with_headers(client: httpx.Client) -> None:
    client.post(
        "/v1/responses",
        json={"stream": True, "input": [user("[[script:env]] x")]},
        headers={"Authorization": "Bearer abc"},
    )
    snap = client.get("/_admin/requests").json()
    (record,) = snap["requests"]
    assert snap["count"] == 1
    assert record["script"] == "env"
    assert record["headers"]["authorization"] == "Bearer abc"
    assert record["user_messages"] == ["[[script:env]] x"]
    assert json.loads(record["body"])["stream"] is True


def test_bad_requests_and_cheap_endpoints(client: httpx.Client) -> None:
    assert client.post("/v1/responses", content=b"not json").status_code == 400
    assert client.post("/v1/responses", json={"input": "x"}).status_code == 400
    assert client.get("/v1/models").json()["data"][0]["id"] == "codex-cloud-scripted"
    assert "hello" in client.get("/healthz").json()["scripts"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"replies": [{"message": "x"}]}, "name"),
        ({"name": "x"}, "exactly one of"),
        ({"name": "x", "replies": []}, "non-empty"),
        ({"name": "x", "replies": [{"shell": 3}]}, "needs a string"),
        ({"name": "x", "replies": [{"teleport": "y"}]}, "unknown item kind"),
        ({"name": "x", "replies": [{"items": [], "bogus": 1}]}, "unknown reply keys"),
        ({"name": "x", "replies": [{"http_error": "bad"}]}, "http_error"),
    ],
)
def test_malformed_scripts_are_rejected(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ScriptError, match=message):
        parse_script(data)


def test_hang_does_not_block_shutdown() -> None:
    server = ModelServer().start()
    assert server.fetch_json("/healthz")["status"] == "ok"
    errors: list[BaseException] = []

    def hang() -> None:
        try:
            with httpx.Client(timeout=30) as http:
                http.post(f"{server.base_url}/responses", json={"input": [user("[[script:hang]]")]})
        except httpx.HTTPError as exc:
            errors.append(exc)

    caller = threading.Thread(target=hang)
    caller.start()
    deadline = time.monotonic() + 5
    while server.request_count("hang") == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.request_count("hang") == 1

    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 3
    caller.join(timeout=5)
    assert not caller.is_alive()
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", server.port), 0.5),
    ):
        pass


def test_command_line_entry_point_serves_extra_scripts(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text("name: mine\nreplies:\n  - message: custom\n")
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelserver",
            "--port",
            str(port),
            "--scripts",
            str(tmp_path),
            "--log-level",
            "warning",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        assert "mine" in health["scripts"]
        reply = httpx.post(
            f"http://127.0.0.1:{port}/v1/responses", json={"input": [user("[[script:mine]]")]}
        )
        assert sse_events(reply.text)[1]["item"]["content"][0]["text"] == "custom"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
