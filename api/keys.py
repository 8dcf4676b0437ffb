"""Manage API keys: `python -m api.keys create|list|revoke`.

The key is printed once on creation; only its hash is stored.
"""

from __future__ import annotations

import argparse
import json
import sys

from shared.adapters import Adapters
from shared.apikeys import Tier, create_key, list_keys, revoke_key
from shared.errors import CodexCloudError
from shared.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.keys", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="create a key and print it once")
    create.add_argument("--tenant", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--tier", choices=[t.value for t in Tier], default=Tier.STANDARD.value)
    create.add_argument("--scopes", default="read,write", help="comma-separated: read,write,admin")
    create.add_argument("--rate-limit", type=int, default=None, help="requests/min override")
    listing = sub.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--tenant", default=None)
    listing.add_argument("--active", action="store_true", help="hide revoked keys")
    revoke = sub.add_parser("revoke", help="revoke a key by its key id")
    revoke.add_argument("key_id")
    args = parser.parse_args(argv)

    settings = get_settings()
    client = Adapters(settings).firestore
    out = sys.stdout
    try:
        if args.command == "create":
            created = create_key(
                client,
                settings,
                tenant=args.tenant,
                name=args.name,
                tier=args.tier,
                scopes=args.scopes.split(","),
                rate_limit_per_minute=args.rate_limit,
            )
            record = created.record.model_dump(mode="json", exclude={"key_hash"})
            out.write(json.dumps({"key": created.key, **record}, indent=2) + "\n")
        elif args.command == "list":
            keys = list_keys(client, settings, tenant=args.tenant, include_revoked=not args.active)
            for key in keys:
                out.write(json.dumps(key.model_dump(mode="json", exclude={"key_hash"})) + "\n")
        else:
            revoked = revoke_key(client, settings, args.key_id)
            out.write(json.dumps(revoked.model_dump(mode="json", exclude={"key_hash"})) + "\n")
    except CodexCloudError as exc:
        sys.stderr.write(f"error: {exc.detail}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
