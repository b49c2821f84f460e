"""The real MongoDB-wire server (SecantusDB) for integration tests.

`mongo_server` starts one `secantusd-py` per session on a free 127.0.0.1 port, in
memory, and stops it with SIGTERM at the end. It is found through `SECANTUSD` (set by
`.ci/run`) or `.ci-tools/secantus/bin/secantusd-py`; when it is missing the tests that
need it are skipped locally and FAIL in CI (`CI=true`). Each test gets its own
database name from `mongo_db_name`. Mark such tests `@pytest.mark.mongo_server`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from emulators.secantus import MongoServer, ServerUnavailable, running_server

__all__ = ["MongoServer", "mongo_auth_server", "mongo_db_name", "mongo_server"]


def _start(stack: ExitStack, *extra_args: str) -> MongoServer:
    try:
        return stack.enter_context(running_server(*extra_args))
    except ServerUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{exc} (CI=true: the integration tests must run)", pytrace=False)
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[MongoServer]:
    """One real MongoDB-wire server for the whole session."""
    with ExitStack() as stack:
        yield _start(stack)


@pytest.fixture(scope="session")
def mongo_auth_server() -> Iterator[MongoServer]:
    """A second server that requires authentication and knows no user: every
    credential is rejected, as a wrong password is by a real deployment."""
    with ExitStack() as stack:
        yield _start(stack, "--auth")


@pytest.fixture
def mongo_db_name() -> str:
    """A database name of its own for each test (the server is shared)."""
    return f"t_{uuid.uuid4().hex[:16]}"
