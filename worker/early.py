"""What of a job's result is collected while codex shuts down.

codex prints `turn.completed` some 20-30 ms before its process exits (it flushes its session
files meanwhile), and collecting the artifacts (the workspace diff and the uploads) took about
as long again after the exit. What depends only on the workspace, the event stream and the
final message is therefore collected from `turn.completed` on, beside the shutdown, and
checked once codex has exited: the workspace's stat fingerprint must be unchanged (a process
codex left behind could still write until it is stopped), the event stream no longer, the
final message the same. Whatever fails its check is collected again, as before; the session
state, which codex writes as it exits, always waits for the exit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from worker.codex.process import agent_message_text
from worker.codex.workspace import Fingerprint, WorkspaceDiff

# Artifacts that depend only on the workspace.
WORKSPACE_ARTIFACTS = ("diff.patch", "changes.tar.gz")


@dataclass(frozen=True)
class EarlyArtifacts:
    fingerprint: Fingerprint  # taken before the diff
    changes: WorkspaceDiff
    urls: dict[str, str]  # artifact name → gs:// URL, uploaded
    events_count: int  # codex records in the uploaded events.jsonl
    final_message: str | None  # what the uploaded final-message.txt says
    workspace_saved: bool  # the session's workspace archive is uploaded under the turn prefix

    def reusable(
        self, current: Fingerprint, events_count: int, final_message: str | None
    ) -> tuple[bool, dict[str, str]]:
        """Whether the workspace is as it was (so the diff and its archives hold), and the
        uploaded artifacts that still hold now that codex has exited."""
        same_workspace = current == self.fingerprint
        keep: dict[str, str] = {}
        if same_workspace:
            keep.update({n: u for n, u in self.urls.items() if n in WORKSPACE_ARTIFACTS})
        if events_count == self.events_count and "events.jsonl" in self.urls:
            keep["events.jsonl"] = self.urls["events.jsonl"]
        if final_message == self.final_message and "final-message.txt" in self.urls:
            keep["final-message.txt"] = self.urls["final-message.txt"]
        return same_workspace, keep


def last_agent_message(records: Sequence[dict[str, object]]) -> str | None:
    """The last agent message in codex's event stream, as codex's run state tracks it."""
    for record in reversed(records):
        if (text := agent_message_text(record)) is not None:
            return text
    return None
