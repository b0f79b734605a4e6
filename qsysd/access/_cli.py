"""``qsysd token create|list|revoke``: administer the API tokens file."""

from __future__ import annotations

import argparse
import json
import sys

from qsysd.access._roles import Roles
from qsysd.access._tokens import TokenStore
from qsysd.errors import LookupFailed, ToolInputError

__all__ = ["add_token_arguments", "run_token"]


def add_token_arguments(parser: argparse.ArgumentParser, add_config: object) -> None:
    commands = parser.add_subparsers(dest="token_command", metavar="COMMAND")
    create = commands.add_parser(
        "create",
        help="create a token and print it once",
        description="Create an API token with a role. The token is printed once on stdout; "
        "only its hash is stored in the tokens file (auth.tokens_file).",
    )
    create.add_argument("--name", required=True, help="who or what uses it (the audit name)")
    create.add_argument("--role", required=True, help="viewer, operator, admin or a custom role")
    create.add_argument("--expires", type=float, metavar="DAYS", help="expire after DAYS days")
    listing = commands.add_parser("list", help="list the tokens (never the tokens themselves)")
    listing.add_argument("--json", action="store_true", help="print JSON instead of text")
    revoke = commands.add_parser(
        "revoke", help="revoke a token (a running daemon refuses it at once)"
    )
    revoke.add_argument("name", help="the token's name")
    for sub in (create, listing, revoke):
        add_config(sub)  # type: ignore[operator]


def run_token(args: argparse.Namespace) -> int:
    from qsysd.config import load_config

    config = load_config(args.config)
    roles = Roles(config.auth.roles)
    store = TokenStore(config.tokens_path(), roles=roles.__contains__)
    store.load()  # an invalid file: ConfigError before anything is written
    try:
        if args.token_command == "create":
            token = store.create(args.name, args.role, expires_days=args.expires)
            print(token)
            print(
                f"token {args.name!r} (role {args.role}) created in {store.path}; it is shown "
                "only now: store it in a secret manager",
                file=sys.stderr,
            )
        elif args.token_command == "list":
            records = [r.public() for r in store.records()]
            if args.json:
                json.dump(records, sys.stdout, indent=2)
                sys.stdout.write("\n")
            else:
                for r in records:
                    print(f"{r['name']}\t{r['role']}\tcreated {r['created']}\t"
                          f"expires {r['expires'] or 'never'}")  # fmt: skip
        else:
            store.revoke(args.name)
            print(f"token {args.name!r} revoked", file=sys.stderr)
    except ToolInputError as exc:
        if args.token_command == "create" and "role" in str(exc):
            exc = ToolInputError(f"{exc}; known roles: {', '.join(roles.names())}")
        print(f"qsysd token: {exc}", file=sys.stderr)
        return 2
    except LookupFailed as exc:
        print(f"qsysd token: {exc}. {exc.hint or ''}".rstrip(), file=sys.stderr)
        return 1
    return 0
