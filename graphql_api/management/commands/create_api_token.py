"""``create_api_token <username> [--scope read|ingest]``: issue an API token for a staff user.

``read`` (the default) queries ``/graphql/``; ``ingest`` may only send spans to
``POST /v1/traces``. The token is printed once; only its SHA-256 digest is stored.
``--revoke <prefix>`` revokes a token by the prefix shown at creation (or listed by
``--list``, which also shows each token's scope).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from graphql_api.models import ApiToken, TokenScope


class Command(BaseCommand):
    help = (
        "Create (or list / revoke) API tokens bound to a staff user: read tokens for /graphql/, "
        "ingest tokens for POST /v1/traces."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="The staff user the token acts as.")
        parser.add_argument("--name", default="", help="What the token is for (a dashboard).")
        parser.add_argument(
            "--revoke",
            metavar="PREFIX",
            help="Revoke the user's token(s) starting with PREFIX (as printed or listed).",
        )
        parser.add_argument(
            "--scope",
            choices=TokenScope.values,
            default=TokenScope.READ.value,
            help="read: query /graphql/ (default); ingest: only send spans to /v1/traces.",
        )
        parser.add_argument("--list", action="store_true", help="List the user's tokens.")

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"]
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        tokens = ApiToken.objects.filter(user=user).order_by("created_at")
        if options["list"]:
            for token in tokens:
                state = (
                    f"revoked {token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else "active"
                )
                used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
                self.stdout.write(
                    f"{token.prefix}  {token.scope:<6}  {state}  last used {used}  {token.name}"
                )
            return
        if options["revoke"]:
            prefix = options["revoke"].strip()
            if len(prefix) < 8:
                raise CommandError("Give at least the first 8 characters of the token.")
            matches = [
                t
                for t in tokens.filter(revoked_at__isnull=True)
                if t.prefix.startswith(prefix[:12])
            ]
            if not matches:
                raise CommandError(f"{username} has no active token starting with {prefix!r}.")
            for token in matches:
                token.revoke()
            self.stdout.write(f"Revoked {len(matches)} token(s) of {username}.")
            return
        if not user.is_active or not user.is_staff:
            raise CommandError(f"{username} is not an active staff user; tokens are for staff.")
        _, secret = ApiToken.issue(user, name=options["name"], scope=options["scope"])
        self.stderr.write(
            f"{options['scope']} API token for {username} "
            "(shown once; send it as 'Authorization: Bearer <token>'):"
        )
        self.stdout.write(secret)
