"""codex-cloud client: a typed SDK (`Client`, `AsyncClient`), the `codex-cloud` CLI and the demo.

from codex_cloud import Client

with Client("http://127.0.0.1:8000", api_key="cck_…") as cc:
    job = cc.run("[[script:hello]] say hello")   # submit, follow events, return the job
    print(job.status, job.final_message)
"""

from codex_cloud.aio import AsyncClient, AsyncStreamSession
from codex_cloud.client import Client, StreamSession
from codex_cloud.errors import (
    ApiError,
    AuthError,
    ClientError,
    ConflictError,
    ConnectionFailed,
    NotFoundError,
    RateLimitedError,
    UnavailableError,
    ValidationFailed,
)
from codex_cloud.models import Artifact, Event, Job, JobPage, Submission

__all__ = [
    "ApiError",
    "Artifact",
    "AsyncClient",
    "AsyncStreamSession",
    "AuthError",
    "Client",
    "ClientError",
    "ConflictError",
    "ConnectionFailed",
    "Event",
    "Job",
    "JobPage",
    "NotFoundError",
    "RateLimitedError",
    "StreamSession",
    "Submission",
    "UnavailableError",
    "ValidationFailed",
]
