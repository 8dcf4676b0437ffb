"""Deterministic model scripts: what the scripted server answers, request by request.

A script is a named list of turns; a turn is a list of replies; a reply is a list of output
items plus optional failure directives. The server picks the turn from the number of real user
messages in the request and the reply from the number of tool outputs after the last user
message, so codex's own retries and resumed threads land on the same reply every time.

YAML form (one script per file, file name is irrelevant, ``name`` is what prompts refer to)::

    name: hello
    description: write hello.py, run it, report
    replies:                      # shorthand for a single turn reused for every turn
      - patch: |
          *** Begin Patch
          *** Add File: hello.py
          +print("hello")
          *** End Patch
      - shell: python3 hello.py
      - message: "hello.py prints: {last_output}"

    # or, per turn (turn N uses turns[N], later turns reuse the last entry):
    turns:
      - [ {shell: "echo one > note.txt"}, {message: "created note.txt"} ]
      - [ {shell: "echo two >> note.txt"}, {message: "appended"} ]

A reply is either one item mapping, a list of item mappings, or a mapping with ``items`` and
directives: ``http_error`` (status, or ``{status, times}`` to fail only the first N requests
for that reply), ``hang`` (send headers, then nothing), ``slow_ms`` (delay between SSE events),
``close_early`` (end the stream without ``response.completed``), ``failed`` (a message sent as
``response.failed``). Item kinds: ``shell`` (string or ``{cmd, yield_time_ms, workdir}``),
``patch``, ``message``, ``reasoning``, ``raw`` (an item passed through unchanged).
Messages may use ``{last_output}``, ``{prompt}`` and ``{script}`` placeholders.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

logger = logging.getLogger(__name__)

BUILTIN_SCRIPTS_DIR = Path(__file__).resolve().parent / "scripts"
DEFAULT_SCRIPT_NAME = "default"

ItemKind = Literal["shell", "patch", "message", "reasoning", "raw"]
_ITEM_KINDS: tuple[ItemKind, ...] = ("shell", "patch", "message", "reasoning", "raw")
_REPLY_KEYS = frozenset({"items", "http_error", "hang", "slow_ms", "close_early", "failed"})


class ScriptError(ValueError):
    """A script definition is malformed."""


@dataclass(frozen=True)
class Item:
    """One output item of a reply, before it is rendered into the Responses wire format."""

    kind: ItemKind
    text: str = ""
    yield_time_ms: int | None = None
    workdir: str | None = None
    raw: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class HttpError:
    status: int
    # None: every request for this reply fails; N: only the first N requests do.
    times: int | None = None


@dataclass(frozen=True)
class Reply:
    items: tuple[Item, ...] = ()
    http_error: HttpError | None = None
    hang: bool = False
    slow_ms: int = 0
    close_early: bool = False
    failed: str | None = None


@dataclass(frozen=True)
class Script:
    name: str
    turns: tuple[tuple[Reply, ...], ...]
    description: str = ""

    def reply_for(self, turn: int, step: int) -> Reply | None:
        """The reply for a turn/step, or None once the turn's replies are used up."""
        if not self.turns:
            return None
        replies = self.turns[min(turn, len(self.turns) - 1)]
        if step < len(replies):
            return replies[step]
        return None


@dataclass
class ScriptRegistry:
    """Named scripts; the built-in ones are loaded at construction, more can be added any time."""

    scripts: dict[str, Script] = field(default_factory=dict)

    @classmethod
    def with_builtins(cls, extra_dirs: Iterable[Path] = ()) -> ScriptRegistry:
        registry = cls()
        registry.load_dir(BUILTIN_SCRIPTS_DIR)
        for directory in extra_dirs:
            registry.load_dir(directory)
        return registry

    def register(self, script: Script | Mapping[str, Any]) -> Script:
        parsed = script if isinstance(script, Script) else parse_script(script)
        self.scripts[parsed.name] = parsed
        return parsed

    def load_dir(self, directory: Path) -> list[Script]:
        loaded = []
        for path in sorted(directory.glob("*.y*ml")):
            loaded.append(self.register(load_script_file(path)))
        logger.debug("loaded %d scripts from %s", len(loaded), directory)
        return loaded

    def get(self, name: str) -> Script | None:
        return self.scripts.get(name)

    def names(self) -> list[str]:
        return sorted(self.scripts)


def load_script_file(path: Path) -> Script:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ScriptError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ScriptError(f"{path}: a script file must hold a mapping")
    try:
        return parse_script(data)
    except ScriptError as exc:
        raise ScriptError(f"{path}: {exc}") from exc


def parse_script(data: Mapping[str, Any]) -> Script:
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ScriptError("script needs a non-empty string 'name'")
    if ("turns" in data) == ("replies" in data):
        raise ScriptError(f"script {name!r}: give exactly one of 'turns' or 'replies'")
    raw_turns: Any = data["turns"] if "turns" in data else [data["replies"]]
    if not isinstance(raw_turns, list) or not raw_turns:
        raise ScriptError(f"script {name!r}: 'turns' must be a non-empty list")
    turns = []
    for turn_index, raw_turn in enumerate(raw_turns):
        if not isinstance(raw_turn, list) or not raw_turn:
            raise ScriptError(f"script {name!r}: turn {turn_index} must be a non-empty list")
        turns.append(tuple(_parse_reply(name, r) for r in raw_turn))
    description = data.get("description", "")
    return Script(name=name, turns=tuple(turns), description=str(description))


def _parse_reply(script: str, raw: Any) -> Reply:
    if isinstance(raw, list):
        return Reply(items=tuple(_parse_item(script, i) for i in raw))
    if not isinstance(raw, Mapping):
        raise ScriptError(f"script {script!r}: a reply must be a mapping or a list, got {raw!r}")
    if not (set(raw) & _REPLY_KEYS):
        # A bare item mapping such as {shell: "ls"}.
        return Reply(items=(_parse_item(script, raw),))
    unknown = set(raw) - _REPLY_KEYS
    if unknown:
        raise ScriptError(f"script {script!r}: unknown reply keys {sorted(unknown)}")
    items_raw = raw.get("items", [])
    if not isinstance(items_raw, list):
        raise ScriptError(f"script {script!r}: 'items' must be a list")
    return Reply(
        items=tuple(_parse_item(script, i) for i in items_raw),
        http_error=_parse_http_error(script, raw.get("http_error")),
        hang=bool(raw.get("hang", False)),
        slow_ms=int(raw.get("slow_ms", 0)),
        close_early=bool(raw.get("close_early", False)),
        failed=None if raw.get("failed") is None else str(raw["failed"]),
    )


def _parse_http_error(script: str, raw: Any) -> HttpError | None:
    if raw is None:
        return None
    if isinstance(raw, int):
        return HttpError(status=raw)
    if isinstance(raw, Mapping) and isinstance(raw.get("status"), int):
        times = raw.get("times")
        return HttpError(status=raw["status"], times=None if times is None else int(times))
    raise ScriptError(f"script {script!r}: http_error must be a status or {{status, times}}")


def _parse_item(script: str, raw: Any) -> Item:
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise ScriptError(f"script {script!r}: an item is a one-key mapping, got {raw!r}")
    ((kind, value),) = raw.items()
    if kind not in _ITEM_KINDS:
        raise ScriptError(f"script {script!r}: unknown item kind {kind!r}")
    if kind == "raw":
        if not isinstance(value, Mapping) or "type" not in value:
            raise ScriptError(f"script {script!r}: a raw item is a mapping with a 'type'")
        return Item(kind="raw", raw=dict(value))
    if kind == "shell" and isinstance(value, Mapping):
        cmd = value.get("cmd")
        if not isinstance(cmd, str):
            raise ScriptError(f"script {script!r}: shell item needs a string 'cmd'")
        yield_ms = value.get("yield_time_ms")
        workdir = value.get("workdir")
        return Item(
            kind="shell",
            text=cmd,
            yield_time_ms=None if yield_ms is None else int(yield_ms),
            workdir=None if workdir is None else str(workdir),
        )
    if not isinstance(value, str):
        raise ScriptError(f"script {script!r}: {kind} item needs a string")
    if kind == "message" and not value:
        raise ScriptError(f"script {script!r}: empty message")
    return Item(kind=kind, text=value)


def render_item(item: Item, call_id: str, values: Mapping[str, str]) -> dict[str, Any]:
    """The Responses API output item codex expects for a scripted item."""
    if item.kind == "raw":
        return dict(item.raw or {})
    if item.kind == "shell":
        args: dict[str, Any] = {"cmd": item.text}
        if item.yield_time_ms is not None:
            args["yield_time_ms"] = item.yield_time_ms
        if item.workdir is not None:
            args["workdir"] = item.workdir
        return {
            "type": "function_call",
            "call_id": call_id,
            "name": "exec_command",
            "arguments": json.dumps(args),
        }
    if item.kind == "patch":
        return {
            "type": "custom_tool_call",
            "call_id": call_id,
            "name": "apply_patch",
            "input": item.text,
        }
    if item.kind == "reasoning":
        return {
            "type": "reasoning",
            "id": f"rs_{call_id}",
            "summary": [{"type": "summary_text", "text": item.text}],
        }
    return {
        "type": "message",
        "id": f"msg_{call_id}",
        "role": "assistant",
        "content": [{"type": "output_text", "text": substitute(item.text, values)}],
    }


def substitute(template: str, values: Mapping[str, str]) -> str:
    # Plain replacement rather than str.format: structured replies are JSON full of braces.
    out = template
    for key, value in values.items():
        out = out.replace("{" + key + "}", value)
    return out


def default_script() -> Script:
    """Used when a prompt names no script: one final message echoing the request."""
    return Script(
        name=DEFAULT_SCRIPT_NAME,
        description="reply with one final message summarising the prompt",
        turns=((Reply(items=(Item(kind="message", text="Done. Request was: {prompt}"),)),),),
    )


def exhausted_reply(script: str) -> Reply:
    # Ending the turn is the only safe answer once a script runs out: repeating the last
    # tool call would make codex loop until its own limits.
    return Reply(items=(Item(kind="message", text=f"script {script} has no more replies"),))
