"""Test helpers: fixture plugins, the CLI fork server, sample store data, the website,
the plan's table of cases and a fake Sentry ingest endpoint."""
