"""Google-signed ID tokens for this process's own calls to the worker (decision 0021).

Cloud Tasks and Workflows mint their tokens themselves; a direct call (the sweeper asking a
worker to stop a timed-out job) fetches one for its own service account from the metadata
server (or GOOGLE_APPLICATION_CREDENTIALS) with `google.oauth2.id_token.fetch_id_token`.
"""

from __future__ import annotations

import google.auth.transport.requests
from google.oauth2 import id_token


def id_token_headers(audience: str | None) -> dict[str, str]:
    """`Authorization: Bearer <ID token for audience>`, or no header when no audience is
    configured (the local stack, whose worker checks none). Raises google.auth errors when no
    token can be fetched."""
    if not audience:
        return {}
    request = google.auth.transport.requests.Request()
    token = id_token.fetch_id_token(request, audience)  # type: ignore[no-untyped-call]
    return {"Authorization": f"Bearer {token}"}
