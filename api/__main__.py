"""``python -m api create-user NAME --role admin`` (password from --password-env or a prompt).

The operator at the console sets a password that works at once (bootstrap, or recovering a lost admin password);
``--must-change`` makes it a one-time password, as when an admin sets one through the API, for a password handed to
someone else."""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from api.schemas.auth import PASSWORD_MIN, password_problem
from api.settings import ApiSettings
from api.store import ROLES, ApiStore
from pipeline.settings import load_project_redis_credentials
from pipeline.store.connection import redis_client


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of the API package."""
    parser = argparse.ArgumentParser(prog="python -m api")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("create-user", help="create or reset a user")
    p.add_argument("username")
    p.add_argument("--role", choices=ROLES, default="admin")
    p.add_argument("--password-env", help="read the password from this environment variable")
    p.add_argument("--cameras", help="comma-separated camera ids the user is limited to")
    p.add_argument("--must-change", action="store_true",
                   help="the user must set their own password at the next login (for a password handed to them)")
    args = parser.parse_args(argv)
    secrets_file = load_project_redis_credentials()
    if secrets_file is not None:
        print(f"using the project's Redis of {secrets_file} (no CCTV_REDIS_URL in the environment)", file=sys.stderr)
    settings = ApiSettings()
    password = os.environ.get(args.password_env, "") if args.password_env else getpass.getpass("password: ")
    problem = f"needs at least {PASSWORD_MIN} characters" if len(password) < PASSWORD_MIN else \
        password_problem(password, args.username)
    if problem:
        print(f"error: the password {problem}", file=sys.stderr)
        return 1
    store = ApiStore(redis_client(settings.redis_url), settings.scrypt_n)
    cameras = [c for c in args.cameras.split(",") if c] if args.cameras else None
    store.put_user(args.username, args.role, password, cameras, must_change=args.must_change)  # revokes sessions
    print(f"user {args.username} ({args.role}) saved; their earlier sessions and API keys are revoked"
          + ("; they must change the password at the next login" if args.must_change else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
