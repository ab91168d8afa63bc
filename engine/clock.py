"""The time source. Tests replace it to move time without sleeping."""
from __future__ import annotations

from datetime import datetime, timezone


class Clock:
    def now(self) -> datetime:
        # Naive UTC everywhere in storage: SQLite has no time zones.
        return datetime.now(timezone.utc).replace(tzinfo=None)


class FixedClock(Clock):
    def __init__(self, start: datetime):
        self.current = start

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta) -> None:
        from datetime import timedelta
        self.current += timedelta(**delta)
