"""Scripted OpenAI Responses API server: deterministic model replies for tests and the demo.

Production never talks to it; codex is pointed at it through its model provider `base_url`.
"""

from modelserver.app import SCRIPT_MARKER, ServerState, create_app
from modelserver.scripts import (
    HttpError,
    Item,
    Reply,
    Script,
    ScriptError,
    ScriptRegistry,
    parse_script,
)
from modelserver.server import ModelServer, bind_free_port

__all__ = [
    "SCRIPT_MARKER",
    "HttpError",
    "Item",
    "ModelServer",
    "Reply",
    "Script",
    "ScriptError",
    "ScriptRegistry",
    "ServerState",
    "bind_free_port",
    "create_app",
    "parse_script",
]
