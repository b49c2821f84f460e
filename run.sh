#!/bin/sh
# Container entry point: runs `main.py COMMAND [OPTIONS]`; with no command (or only
# options) the scheduler, `schedule`. The image's CMD is ["schedule"], so
# `docker run IMAGE doctor|status|check|sync …` runs that command instead.
# `exec` replaces this shell, so the command gets SIGTERM from `docker stop` directly
# and the scheduler can finish or abort its run cleanly.
set -eu
cd "$(dirname "$0")"
case "${1:-}" in
  "" | -*) set -- schedule "$@" ;;
esac
if [ -x .venv/bin/python ]; then
  # The image's environment, built by `uv sync --frozen --no-dev`: start it directly.
  exec .venv/bin/python main.py "$@"
fi
exec uv run --frozen --no-dev main.py "$@"
