"""Test helpers: fixture plugins, the CLI fork server, sample store data, the website."""
