"""Persistence: SQLAlchemy models, sessions and queries. Knows nothing of SpiffWorkflow or Flask."""
