"""Users, roles held in organisations, passwords and API tokens."""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from werkzeug.security import check_password_hash, generate_password_hash

from storage import queries
from storage.db import Database
from storage.models import ApiToken, Organisation, RoleGrant, User

from .access import Actor
from .clock import Clock
from .errors import InvalidData, NotAuthenticated, NotFound
from .roles import ROLES

TOKEN_LIFETIME = timedelta(days=30)
# A hash to compare against when the user does not exist, so both paths cost the same.
_DUMMY_HASH = generate_password_hash("not-a-password")

MIN_PASSWORD_LENGTH = 10
# Passwords long enough to pass the other rules that still head every leaked-password list
# (lower-cased; compared ignoring case).
COMMON_PASSWORDS = frozenset({
    "password12", "password123", "password1234", "passw0rd123", "p@ssw0rd123", "qwertyuiop",
    "qwerty1234", "qwerty12345", "qwerty123456", "1q2w3e4r5t", "1qaz2wsx3edc", "zaq12wsxcde",
    "a123456789", "a1234567890", "aa123456789", "abc1234567", "abcd123456", "abcdefghij",
    "asdfghjkl1", "zxcvbnm123", "iloveyou12", "woaini1314", "welcome123", "letmein123",
    "changeme123", "administrator", "admin12345", "perfbudget", "perfbudget1", "perfbudget123",
})


def password_problems(username: str, password: str) -> list[str]:
    """What makes a new password too weak; empty when it is acceptable."""
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(f"it must have at least {MIN_PASSWORD_LENGTH} characters")
    if password.isdigit():
        problems.append("it must not be only digits")
    if username and username.casefold() in password.casefold():
        problems.append("it must not contain the username")
    if password.casefold() in COMMON_PASSWORDS:
        problems.append("it is one of the most common passwords")
    return problems


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def actor_of(user: User, grants) -> Actor:
    return Actor(user.id, user.username, user.display_name, tuple(sorted(grants)))


class AccountService:
    def __init__(self, db: Database, clock: Clock):
        self.db = db
        self.clock = clock

    def authenticate(self, username: str, password: str) -> Actor:
        with self.db.reading() as s:
            user = queries.user_by_username(s, username or "")
            stored = user.password_hash if user else _DUMMY_HASH
            if not check_password_hash(stored, password or "") or user is None or not user.active:
                raise NotAuthenticated("wrong username or password")
            return actor_of(user, queries.grants_of(s, user.id))

    def actor(self, user_id: int) -> Actor | None:
        with self.db.reading() as s:
            user = queries.get_by_id(s, User, user_id)
            if user is None or not user.active:
                return None
            return actor_of(user, queries.grants_of(s, user.id))

    def issue_token(self, actor: Actor) -> str:
        token = secrets.token_urlsafe(32)
        now = self.clock.now()
        with self.db.transaction() as s:
            s.add(ApiToken(user_id=actor.id, token_hash=_token_hash(token), created_at=now,
                           expires_at=now + TOKEN_LIFETIME))
        return token

    def actor_for_token(self, token: str) -> Actor | None:
        # One Core statement (user and grants joined) instead of an ORM session with three: this
        # runs on every API request. Not cached, so a revoked token, a deactivated user or a
        # withdrawn grant takes effect on the very next request.
        with self.db.read_connection() as conn:
            rows = queries.actor_rows_by_token_hash(conn, _token_hash(token), self.clock.now())
        if not rows:
            return None
        first = rows[0]
        return Actor(first.id, first.username, first.display_name,
                     tuple(sorted({(r.role, r.org_id) for r in rows if r.role is not None})))

    def ensure_user(self, username: str, display_name: str | None = None, password: str | None = None, *,
                    enforce_policy: bool = True, email: str | None = None) -> User:
        """Create the user if missing; set the password when one is given. A new password must
        pass the password policy unless enforce_policy is False (the demo data only). An e-mail
        address given is set ('' removes it): notifications are mailed there."""
        if email is not None:
            email = email.strip()
            if email and (len(email) > 254 or email.count("@") != 1 or any(c.isspace() for c in email)
                          or not all(email.split("@"))):
                raise InvalidData(f"not an e-mail address: {email!r}", {"email": "Not an e-mail address."})
        if not username or len(username) > 80:
            raise InvalidData("a username of 1 to 80 characters is required")
        if password and enforce_policy:
            problems = password_problems(username, password)
            if problems:
                message = "the password is too weak: " + "; ".join(problems)
                raise InvalidData(message, {"password": message})
        with self.db.transaction() as s:
            user = queries.user_by_username(s, username)
            if user is None:
                if not password:
                    raise InvalidData(f"user {username} does not exist; give a password to create it")
                user = User(username=username, display_name=display_name or username,
                            password_hash=generate_password_hash(password), active=True,
                            created_at=self.clock.now(), email=email or None)
                s.add(user)
            else:
                if display_name:
                    user.display_name = display_name
                if password:
                    user.password_hash = generate_password_hash(password)
                if email is not None:
                    user.email = email or None
            s.flush()
            return user

    def grant(self, username: str, role: str, org_code: str) -> None:
        if role not in ROLES:
            raise InvalidData(f"unknown role '{role}'; roles are: {', '.join(ROLES)}")
        with self.db.transaction() as s:
            user = queries.user_by_username(s, username)
            if user is None:
                raise NotFound(f"user {username} does not exist")
            org = queries.org_by_code(s, org_code)
            if org is None:
                raise NotFound(f"organisation {org_code} does not exist")
            if (role, org.id) not in queries.grants_of(s, user.id):
                s.add(RoleGrant(user_id=user.id, role=role, org_id=org.id))

    def ensure_org(self, code: str, name: str, kind: str, parent_code: str | None = None) -> Organisation:
        with self.db.transaction() as s:
            org = queries.org_by_code(s, code)
            parent = queries.org_by_code(s, parent_code) if parent_code else None
            if org is None:
                org = Organisation(code=code, name=name, kind=kind, parent_id=parent.id if parent else None)
                s.add(org)
            else:
                org.name, org.kind = name, kind
                org.parent_id = parent.id if parent else None
            s.flush()
            return org
