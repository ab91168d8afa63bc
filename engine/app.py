"""The engine's entry point: one object per process that wires the services together."""
from __future__ import annotations

from storage.db import Database
from storage.schema import upgrade

from .accounts import AccountService
from .attachments import AttachmentService
from .campaigns import CampaignService
from .cases import CaseService
from .clock import Clock
from .deadlines import DeadlineService
from .notifications import EmailOutbox, NotificationService
from .processes import ProcessService
from .project_import import ProjectImportService
from .queries import ReadService
from .records import RecordService
from .settings import SettingsService
from .specs import SpecCache


class PerfBudget:
    def __init__(self, database_url: str, clock: Clock | None = None):
        self.db = Database(database_url)
        self.clock = clock or Clock()
        self.specs = SpecCache(self.db)
        self.processes = ProcessService(self.db, self.specs, self.clock)
        self.settings = SettingsService(self.db, self.clock)
        self.cases = CaseService(self.db, self.specs, self.clock, self.settings)
        self.attachments = AttachmentService(self.db, self.clock, self.cases)
        self.campaigns = CampaignService(self.db, self.cases, self.clock, self.settings)
        self.accounts = AccountService(self.db, self.clock)
        self.reads = ReadService(self.db, self.specs, self.clock, self.settings)
        self.records = RecordService(self.db, self.clock)
        self.notifications = NotificationService(self.db, self.clock)
        self.deadlines = DeadlineService(self.db, self.clock)
        self.email = EmailOutbox(self.db, self.clock)
        self.project_import = ProjectImportService(self.db, self.clock, self.settings)

    def init_schema(self) -> None:
        upgrade(self.db)

    def init(self) -> list:
        """Create or upgrade the schema and deploy every model under processes/."""
        self.init_schema()
        return self.processes.deploy_all()

    def close(self) -> None:
        self.db.dispose()
