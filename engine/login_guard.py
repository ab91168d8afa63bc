"""Failed-login limits.

Too many wrong passwords for one username, or from one client address, within a window lock
further attempts for that username (or from that address) until enough of the failures have
left the window: with 5 in 15 minutes, the lock lifts 15 minutes after the oldest of the last
5. Refused attempts are not counted, so a lock cannot be stretched forever; a successful login
clears the username's failures (they still count against the address).

The counts live in the database (storage.models.LoginAttempt), so every web worker sees the
same ones, and time comes from the engine clock. An attempt is recorded *before* the password
is checked, in the transaction that counts the earlier ones: parallel requests cannot all slip
under the limit. It is deleted again if the password was right.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from storage import queries
from storage.db import Database
from storage.models import LoginAttempt

from .access import Actor
from .accounts import AccountService
from .clock import Clock
from .errors import NotAuthenticated, PerfBudgetError

USERNAME_KEY_LENGTH = 100   # LoginAttempt.username; real usernames have at most 80 characters
ADDRESS_KEY_LENGTH = 64


class TooManyAttempts(PerfBudgetError):
    """Locked out for now; `retry_after` is in whole seconds (at least 1)."""
    status = 429

    def __init__(self, message: str, retry_after: int):
        super().__init__(message, {"retry_after": retry_after})
        self.retry_after = retry_after


@dataclass(frozen=True)
class LoginLimits:
    per_username: int = 5
    per_address: int = 20
    window: timedelta = timedelta(minutes=15)

    def __post_init__(self):
        if self.per_username < 1 or self.per_address < 1 or self.window <= timedelta(0):
            raise ValueError("login limits must be positive")


def _wait(times: list[datetime], limit: int, window: timedelta, now: datetime) -> timedelta:
    """How long until fewer than `limit` of these failures (oldest first, all inside the
    window) remain inside it; zero when that is already so."""
    if len(times) < limit:
        return timedelta(0)
    return times[len(times) - limit] + window - now


def _in_words(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


class LoginGuard:
    def __init__(self, db: Database, clock: Clock, accounts: AccountService, limits: LoginLimits | None = None):
        self.db = db
        self.clock = clock
        self.accounts = accounts
        self.limits = limits or LoginLimits()

    def authenticate(self, username: str, password: str, address: str | None) -> Actor:
        """AccountService.authenticate behind the limits: raises TooManyAttempts while locked
        (without looking at the password), NotAuthenticated for a wrong one."""
        user_key = (username or "")[:USERNAME_KEY_LENGTH]
        address_key = (address or "unknown")[:ADDRESS_KEY_LENGTH]
        attempt_id = self._begin(user_key, address_key)
        try:
            actor = self.accounts.authenticate(username, password)
        except NotAuthenticated:
            raise                       # the recorded attempt stays, as a failure
        except BaseException:
            self._forget(attempt_id)    # not a wrong password: it must not count
            raise
        with self.db.transaction() as s:
            queries.delete_login_attempt(s, attempt_id)
            queries.clear_login_failures(s, user_key)
        return actor

    def _locked_for(self, s, user_key: str, address_key: str, now: datetime) -> tuple[int, str]:
        since = now - self.limits.window
        by_user = _wait(queries.login_failure_times(s, since, username=user_key),
                        self.limits.per_username, self.limits.window, now)
        by_address = _wait(queries.login_failure_times(s, since, address=address_key),
                           self.limits.per_address, self.limits.window, now)
        wait = max(by_user, by_address)
        if wait <= timedelta(0):
            return 0, ""
        return math.ceil(wait.total_seconds()), "this username" if by_user >= by_address else "this address"

    def _begin(self, user_key: str, address_key: str) -> int:
        now = self.clock.now()
        with self.db.transaction() as s:
            queries.lock_keys(s, [f"login-user:{user_key}", f"login-address:{address_key}"])
            seconds, whose = self._locked_for(s, user_key, address_key, now)
            if seconds:
                raise TooManyAttempts(f"too many failed log-in attempts for {whose}; "
                                      f"try again in {_in_words(seconds)}", seconds)
            queries.prune_login_attempts(s, now - self.limits.window)
            attempt = LoginAttempt(username=user_key, address=address_key, at=now, cleared=False)
            s.add(attempt)
            s.flush()
            return attempt.id

    def _forget(self, attempt_id: int) -> None:
        with self.db.transaction() as s:
            queries.delete_login_attempt(s, attempt_id)
