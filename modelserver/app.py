"""Starlette app speaking the streaming OpenAI Responses API the way codex uses it."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from modelserver.scripts import (
    Reply,
    Script,
    ScriptRegistry,
    default_script,
    exhausted_reply,
    render_item,
)

logger = logging.getLogger(__name__)

SCRIPT_MARKER = re.compile(r"\[\[script:([A-Za-z0-9_.-]+)\]\]")
MODEL_ID = "codex-cloud-scripted"
_TOOL_OUTPUT_TYPES = frozenset({"function_call_output", "custom_tool_call_output"})
# codex injects context into user-role messages; these are not prompts a person typed.
_CONTEXT_PREFIXES = (
    "<environment_context>",
    "<user_instructions>",
    "<INSTRUCTIONS>",
    "# AGENTS.md",
    "<turn_aborted>",
    "<user_shell_command>",
    "<skills_instructions>",
    "<apps_instructions>",
    "<permissions instructions>",
)
_MAX_LOGGED_BODY = 1 << 20
_PROMPT_SUMMARY_CHARS = 200


@dataclass(frozen=True)
class RequestRecord:
    """One request the server answered, as tests see it through the admin API."""

    seq: int
    script: str
    turn: int
    step: int
    outcome: str
    headers: dict[str, str]
    user_messages: list[str]
    tool_outputs: list[str]
    body: str
    received_at: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "script": self.script,
            "turn": self.turn,
            "step": self.step,
            "outcome": self.outcome,
            "headers": self.headers,
            "user_messages": self.user_messages,
            "tool_outputs": self.tool_outputs,
            "body": self.body,
            "received_at": self.received_at,
        }


@dataclass
class ServerState:
    """Counters and the request log; shared between the event loop and test threads."""

    registry: ScriptRegistry
    lock: threading.Lock = field(default_factory=threading.Lock)
    records: list[RequestRecord] = field(default_factory=list)
    per_script: Counter[str] = field(default_factory=Counter)
    per_reply: Counter[tuple[str, int, int]] = field(default_factory=Counter)
    shutting_down: threading.Event = field(default_factory=threading.Event)

    def reset(self) -> None:
        with self.lock:
            self.records.clear()
            self.per_script.clear()
            self.per_reply.clear()

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "count": len(self.records),
                "per_script": dict(self.per_script),
                "requests": [r.as_dict() for r in self.records],
            }


@dataclass(frozen=True)
class ParsedInput:
    user_messages: list[str]
    tool_outputs_after_last_user: list[str]

    @property
    def turn(self) -> int:
        return max(len(self.user_messages) - 1, 0)

    @property
    def step(self) -> int:
        return len(self.tool_outputs_after_last_user)


def parse_input(items: Sequence[Any]) -> ParsedInput:
    users: list[str] = []
    outputs: list[str] = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type", "message")
        if kind == "message" and item.get("role") == "user":
            text = _content_text(item.get("content"))
            if text.lstrip().startswith(_CONTEXT_PREFIXES):
                continue
            users.append(text)
            outputs = []
        elif kind in _TOOL_OUTPUT_TYPES:
            outputs.append(_output_text(item.get("output")))
    return ParsedInput(user_messages=users, tool_outputs_after_last_user=outputs)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    if isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
    return "\n".join(parts)


def _output_text(output: Any) -> str:
    if isinstance(output, Mapping):
        output = output.get("content", output.get("output", ""))
    if isinstance(output, list):
        return _content_text(output)
    return output if isinstance(output, str) else json.dumps(output)


_EXEC_OUTPUT_MARKER = "\nOutput:\n"


def command_output(tool_output: str) -> str:
    """The command's own output from an exec_command result (codex prefixes a header)."""
    if _EXEC_OUTPUT_MARKER in tool_output:
        return tool_output.split(_EXEC_OUTPUT_MARKER, 1)[1]
    return tool_output


def select_script(registry: ScriptRegistry, users: Sequence[str]) -> Script:
    for text in users:
        match = SCRIPT_MARKER.search(text)
        if match:
            script = registry.get(match.group(1))
            if script is not None:
                return script
            logger.warning("prompt names unknown script %r; using default", match.group(1))
            break
    return registry.get("default") or default_script()


def _sse(event: Mapping[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def _usage(body_len: int, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    # Deterministic fake numbers: enough for tests to see usage flow through.
    output_tokens = 1 + sum(len(json.dumps(i)) for i in items) // 4
    input_tokens = 1 + body_len // 4
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def create_app(
    scripts: ScriptRegistry | None = None, *, state: ServerState | None = None
) -> Starlette:
    """The scripted model server; ``state`` may be passed to share it with a test harness."""
    registry = scripts if scripts is not None else ScriptRegistry.with_builtins()
    server_state = state if state is not None else ServerState(registry=registry)

    async def responses(request: Request) -> Response:
        raw = await request.body()
        if request.headers.get("content-encoding", "").lower() == "gzip":
            raw = gzip.decompress(raw)
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return JSONResponse({"error": {"message": "body is not JSON"}}, status_code=400)
        if not isinstance(body, dict) or not isinstance(body.get("input"), list):
            return JSONResponse({"error": {"message": "missing input[]"}}, status_code=400)
        parsed = parse_input(body["input"])
        script = select_script(server_state.registry, parsed.user_messages)
        reply = script.reply_for(parsed.turn, parsed.step) or exhausted_reply(script.name)
        key = (script.name, parsed.turn, parsed.step)
        with server_state.lock:
            server_state.per_script[script.name] += 1
            server_state.per_reply[key] += 1
            attempt = server_state.per_reply[key]
        outcome = _outcome(reply, attempt)
        _record(server_state, request, raw, script, parsed, outcome)
        if reply.http_error is not None and outcome == "http_error":
            return JSONResponse(
                {"error": {"message": "scripted failure", "type": "server_error"}},
                status_code=reply.http_error.status,
            )
        last_output = (
            command_output(parsed.tool_outputs_after_last_user[-1])
            if (parsed.tool_outputs_after_last_user)
            else ""
        )
        prompt = parsed.user_messages[-1] if parsed.user_messages else ""
        values = {
            "last_output": last_output.strip(),
            "prompt": SCRIPT_MARKER.sub("", prompt).strip()[:_PROMPT_SUMMARY_CHARS],
            "script": script.name,
        }
        call_prefix = f"call_{script.name}_{parsed.turn}_{parsed.step}"
        items = [
            render_item(item, f"{call_prefix}_{i}", values) for i, item in enumerate(reply.items)
        ]
        stream = _stream(server_state, request, reply, items, len(raw), outcome)
        return StreamingResponse(
            stream, media_type="text/event-stream", headers={"cache-control": "no-cache"}
        )

    async def models(_: Request) -> Response:
        return JSONResponse(
            {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "owned_by": "local"}]}
        )

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok", "scripts": server_state.registry.names()})

    async def admin_requests(_: Request) -> Response:
        return JSONResponse(server_state.snapshot())

    async def admin_reset(_: Request) -> Response:
        server_state.reset()
        return JSONResponse({"status": "reset"})

    app = Starlette(
        routes=[
            Route("/v1/responses", responses, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/_admin/requests", admin_requests, methods=["GET"]),
            Route("/_admin/reset", admin_reset, methods=["POST"]),
        ]
    )
    app.state.model_state = server_state
    return app


def _outcome(reply: Reply, attempt: int) -> str:
    err = reply.http_error
    if err is not None and (err.times is None or attempt <= err.times):
        return "http_error"
    if reply.hang:
        return "hang"
    if reply.failed is not None:
        return "failed"
    if reply.close_early:
        return "close_early"
    return "completed"


def _record(
    state: ServerState,
    request: Request,
    raw: bytes,
    script: Script,
    parsed: ParsedInput,
    outcome: str,
) -> None:
    with state.lock:
        state.records.append(
            RequestRecord(
                seq=len(state.records) + 1,
                script=script.name,
                turn=parsed.turn,
                step=parsed.step,
                outcome=outcome,
                headers={k.lower(): v for k, v in request.headers.items()},
                user_messages=list(parsed.user_messages),
                tool_outputs=list(parsed.tool_outputs_after_last_user),
                body=raw[:_MAX_LOGGED_BODY].decode("utf-8", errors="replace"),
                received_at=time.time(),
            )
        )


async def _stream(
    state: ServerState,
    request: Request,
    reply: Reply,
    items: Sequence[dict[str, Any]],
    body_len: int,
    outcome: str,
) -> AsyncIterator[bytes]:
    response_id = f"resp_{time.monotonic_ns()}"
    if outcome == "hang":
        # Headers are out; keep the connection silent until the client or the server gives up.
        # Polling (not an Event): the shutdown flag is set from another thread.
        while not state.shutting_down.is_set() and not await request.is_disconnected():  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        return
    delay = reply.slow_ms / 1000
    yield _sse({"type": "response.created", "response": {"id": response_id}})
    for index, item in enumerate(items):
        if delay:
            await _sleep_unless_shutdown(state, delay)
        yield _sse({"type": "response.output_item.done", "output_index": index, "item": item})
    if delay:
        await _sleep_unless_shutdown(state, delay)
    if outcome == "close_early":
        return
    if outcome == "failed":
        yield _sse(
            {
                "type": "response.failed",
                "response": {
                    "id": response_id,
                    "status": "failed",
                    "error": {"code": "server_error", "message": reply.failed},
                },
            }
        )
        return
    yield _sse(
        {
            "type": "response.completed",
            "response": {
                "id": response_id,
                "status": "completed",
                "usage": _usage(body_len, items),
            },
        }
    )


async def _sleep_unless_shutdown(state: ServerState, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not state.shutting_down.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        await asyncio.sleep(min(remaining, 0.1))
