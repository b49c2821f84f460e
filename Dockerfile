# backtest-compilation: the scheduled sync (`run.sh` → `main.py schedule`).
#   docker build -t backtest-compilation .
#   docker run -d --env-file .env --stop-timeout 2760 \
#     -v "$PWD/config:/app/config:ro" -v backtest-cache:/app/cache backtest-compilation
# Any other command runs instead of the scheduler (`docker run … IMAGE doctor`), and
# compose.yaml runs it with MongoDB (README "Operating it").
# On SIGTERM the scheduler lets a running sync finish; --stop-timeout gives it the time:
# RUN_TIMEOUT_S (2700 s, renames included) plus a minute. Docker's default is 10 s, after
# which a SIGKILL is still safe (the state file is written atomically and the next run
# converges) but a first run's renames would stop midway.
FROM python:3.11-slim

COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /uvx /bin/

# UV_NO_CACHE: the image keeps no uv download cache (it would only add size).
ENV PYTHONUNBUFFERED=1 \
    UV_NO_CACHE=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never

WORKDIR /app

# Dependencies first, so code changes do not reinstall them.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project

COPY . .
RUN uv sync --frozen --no-dev \
    && useradd --system --uid 10001 --user-group --home-dir /app --no-create-home app \
    && mkdir -p config cache \
    && chown app:app cache

USER app
VOLUME ["/app/config", "/app/cache"]

# Healthy while the last run succeeded and the scheduler's heartbeat file (rewritten
# every minute while it waits, whatever SCHEDULE says; default every 10 minutes) is
# younger than 15 minutes or names a run still within its time: `main.py status`. The start period leaves a
# first run RUN_TIMEOUT_S (45 min) to finish.
HEALTHCHECK --interval=60s --timeout=20s --start-period=50m --retries=3 \
    CMD ["/app/.venv/bin/python", "/app/main.py", "status", "-q"]

ENTRYPOINT ["/app/run.sh"]
CMD ["schedule"]
