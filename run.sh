#!/bin/sh
# Container entry point: the scheduler (`main.py schedule`), forever.
# `exec` replaces this shell, so the scheduler gets SIGTERM from `docker stop` directly
# and can finish or abort its run cleanly. Extra arguments are passed on.
set -eu
cd "$(dirname "$0")"
if [ -x .venv/bin/python ]; then
  # The image's environment, built by `uv sync --frozen --no-dev`: start it directly.
  exec .venv/bin/python main.py schedule "$@"
fi
exec uv run --frozen --no-dev main.py schedule "$@"
