"""The application core: deployments, cases, tasks and domain rules. Knows nothing of HTTP."""
