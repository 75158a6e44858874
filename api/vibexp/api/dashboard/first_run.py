"""The newcomer's first run: while no dashboard user exists, a one-time setup link (like Jupyter's token URL).

At start-up, if the database has no user, the process makes a random token and logs
``http://HOST:PORT/setup?token=…`` once. Following it shows a form that creates the first account (a tenant) and its
first user in the browser, then signs that user in. The token is then dead: this process forgets it, and every
process refuses setup as soon as any user exists (checked in the database on each setup request), so a token from
another replica's log cannot create a second "first" user either. Two replicas racing past that check are
settled in the database: the setup claims the single ``first_run_claims`` row in the transaction that creates the
account (``vibexp.core.users.first_run``), so exactly one commits and the other gets "Setup is already done".
Only the token's SHA-256 is kept in memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vibexp.core.users.usecases import any_user_exists

__all__ = ["FirstRunSetup", "setup_lifespan"]

log = logging.getLogger("vibexp.setup")


@dataclass
class FirstRunSetup:
    token_hash: str | None = None
    #: Once a user is known to exist it always will (users are not deleted here): skip the query from then on.
    users_exist: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def new_token(self) -> str:
        token = secrets.token_urlsafe(24)
        self.token_hash = hashlib.sha256(token.encode()).hexdigest()
        return token

    def accepts(self, token: str | None) -> bool:
        if not token or self.token_hash is None:
            return False
        digest = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
        return hmac.compare_digest(digest, self.token_hash)

    def consume(self) -> None:
        self.token_hash = None
        self.users_exist = True

    async def needed(self, session: AsyncSession) -> bool:
        """Whether no user exists yet (one cheap query until the first user is seen)."""
        if not self.users_exist and await any_user_exists(session):
            self.users_exist = True
            self.token_hash = None
        return not self.users_exist


def setup_lifespan(
    setup: FirstRunSetup, factory: async_sessionmaker[AsyncSession], *, base_url: str, enabled: bool
) -> Callable[[], AbstractAsyncContextManager[None]]:
    """A lifespan hook that logs the setup link when the database has no user yet."""

    @asynccontextmanager
    async def hook() -> AsyncIterator[None]:
        needed = False
        if enabled:
            try:
                async with factory() as session:
                    needed = await setup.needed(session)
            except Exception as exc:  # the database is not up yet: serve anyway (503s), without a setup link
                log.warning("could not check for a first user (%s); no setup link this time", type(exc).__name__)
            if needed:
                token = setup.new_token()
                log.warning(
                    "No dashboard user exists yet. To create the first account, open %s/setup?token=%s "
                    "(first-run setup; the link works once, in this server process)",
                    base_url.rstrip("/"),
                    token,
                )
        yield

    return hook
