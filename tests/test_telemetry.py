"""Sentry reporting against a local endpoint that receives the real SDK's envelopes."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from backtest_compilation import adapters, telemetry
from backtest_compilation.errors import ServiceError
from backtest_compilation.settings import Settings
from tests.support.isolation import environment
from tests.support.sentry_ingest import Endpoint

MONGO_PASSWORD = "hunter2-Sup3rSecret"
# A fake key, assembled at run time so no file in the repository looks like key material.
PEM = (
    "-----BEGIN " + "PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nABCDEFGHIJKLMNOP\n"
    "-----END PRIVATE KEY-----\n"
)
EXAM_TEXT = "%PDF-1.4 confidential exam answers"  # a drive file's content
TOKEN = "ya29.a0AfH6SMBx-secret-access-token"


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    ep = Endpoint()
    yield ep
    ep.close()


@pytest.fixture
def sentry(endpoint: Endpoint) -> Iterator[telemetry.Telemetry]:
    config = Settings(
        sentry_dsn=endpoint.dsn,
        mongo_uri=f"mongodb://backtest:{MONGO_PASSWORD}@db.example.org:27017/apo_main",
    )
    handle = adapters.start_telemetry(config)
    yield handle
    handle.close()


def events(endpoint: Endpoint) -> list[Any]:
    return [e for r in endpoint.all() for e in r.of_type("event")]


def fail_with_secrets(pdf: Path) -> None:
    password = MONGO_PASSWORD  # local variables must never be sent
    file_contents = pdf.read_text()
    raise ServiceError(
        f"MongoDB at mongodb://backtest:{password}@db.example.org failed; "
        f"key {PEM} header Authorization: Bearer {TOKEN} ({len(file_contents)} bytes)"
    )


def test_no_dsn_means_nothing_is_initialised_or_sent(endpoint: Endpoint) -> None:
    handle = telemetry.init("")
    assert not handle.enabled
    handle.report_failure(RuntimeError("x"))
    handle.close()
    assert endpoint.all() == []


def test_a_failure_arrives_without_any_secret(
    endpoint: Endpoint,
    sentry: telemetry.Telemetry,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    import sentry_sdk

    assert sentry_sdk.get_client().should_send_default_pii() is False
    caplog.set_level(logging.INFO, logger="backtest_compilation")
    pdf = tmp_path / "E1F22.pdf"
    pdf.write_text(EXAM_TEXT)
    logging.getLogger("backtest_compilation.test").info(
        "connecting with Authorization: Bearer %s to %s", TOKEN, endpoint.dsn
    )
    try:
        fail_with_secrets(pdf)
    except ServiceError as exc:
        sentry.report_failure(exc, exit_code=1)
    sentry_sdk.flush()
    received = endpoint.all()
    assert [r.path for r in received] == ["/api/1/envelope/"]
    [event] = received[0].of_type("event")
    [exception] = event["exception"]["values"]
    assert exception["type"] == "ServiceError"
    assert "mongodb://backtest:***@db.example.org failed" in exception["value"]
    assert "[private key removed]" in exception["value"] and "Bearer ***" in exception["value"]
    assert event["tags"]["exit_code"] == "1"
    frames = exception["stacktrace"]["frames"]
    assert frames[-1]["function"] == "fail_with_secrets"
    assert all("vars" not in frame for frame in frames)
    crumbs = event["breadcrumbs"]["values"]
    assert any("Bearer ***" in (c.get("message") or "") for c in crumbs)
    raw = received[0].raw.decode()
    for secret in (MONGO_PASSWORD, "MIIEvQIBADANBgkqhkiG9w0", TOKEN, "confidential exam answers"):
        assert secret not in raw
    payload = json.dumps(event)
    assert endpoint.dsn not in payload and "user" not in event


def test_a_later_failure_carries_the_summary_line_as_a_breadcrumb(
    endpoint: Endpoint, sentry: telemetry.Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    """Every run logs its summary line at INFO: a failure reported later carries it."""
    import sentry_sdk

    caplog.set_level(logging.INFO, logger="backtest_compilation")
    line = "summary: sync exit 1 (failed: sheet); 1 department, 1 course, 3 problems"
    logging.getLogger("backtest_compilation.pipeline").info("%s", line)
    sentry_sdk.flush()
    assert endpoint.all() == []  # a breadcrumb alone sends nothing
    sentry.report_failure(exit_code=4)  # locked: not reported
    sentry.report_failure(exit_code=1)
    sentry_sdk.flush()
    [event] = events(endpoint)
    assert event["level"] == "error" and event["message"] == "run failed with exit code 1"
    assert line in [c.get("message") for c in event["breadcrumbs"]["values"]]


SCRUB_CASES = [
    ("mongo URI password", f"mongodb://u:{MONGO_PASSWORD}@h/db", "mongodb://u:***@h/db"),
    (
        "srv URI password",
        "mongodb+srv://u:p%40ss@cluster0.x.net",
        "mongodb+srv://u:***@cluster0.x.net",
    ),
    (
        "URI without password kept",
        "mongodb://localhost:27017/apo_main",
        "mongodb://localhost:27017/apo_main",
    ),
    ("PEM block", f"before {PEM}after", "before [private key removed]\nafter"),
    ("PEM cut off", "-----BEGIN RSA " + "PRIVATE KEY-----\nMIIabc", "[private key removed]"),
    (
        "service-account JSON",
        '{"private_key": "abc\\ndef", "type": "x"}',
        '{"private_key": "***", "type": "x"}',
    ),
    ("bearer token", "Authorization: Bearer abc.def-ghi", "Authorization: Bearer ***"),
    ("google access token alone", f"token {TOKEN} used", "token *** used"),
    (
        "query password",
        "https://h/x?user=a&password=p4ss&x=1",
        "https://h/x?user=a&password=***&x=1",
    ),
    (
        "odd names are data",
        'CSCI / "quoted" \\ back 🎓 (.*)+?.pdf',
        'CSCI / "quoted" \\ back 🎓 (.*)+?.pdf',
    ),
]


@pytest.mark.parametrize(("case", "text", "expected"), SCRUB_CASES, ids=[c[0] for c in SCRUB_CASES])
def test_scrub_text(case: str, text: str, expected: str) -> None:
    assert telemetry.scrub_text(text) == expected


def test_scrub_masks_known_secrets_at_any_depth() -> None:
    secrets = telemetry.secrets_of(
        sentry_dsn="https://abcdef123@o1.ingest.sentry.io/42",
        mongo_uri=f"mongodb://u:{MONGO_PASSWORD}@h",
    )
    event = {
        "request": {"headers": {"Authorization": "Basic dXNlcjpwYXNz", "Accept": "*/*"}},
        "message": f"dsn https://abcdef123@o1.ingest.sentry.io/42 and pw {MONGO_PASSWORD} here",
        "list": [[{"deep": f"pw {MONGO_PASSWORD}"}]],
        "count": 3,
    }
    out = telemetry.scrub(event, secrets)
    assert out["request"]["headers"] == {"Authorization": "Basic ***", "Accept": "*/*"}
    assert out["message"] == "dsn *** and pw *** here"
    assert out["list"] == [[{"deep": "pw ***"}]]
    assert out["count"] == 3
    assert event["message"].startswith("dsn https://abcdef123")  # the input is not changed


def test_secrets_of_ignores_short_or_missing_passwords() -> None:
    assert telemetry.secrets_of(mongo_uri="mongodb://localhost:27017") == ()
    assert telemetry.secrets_of(mongo_uri="mongodb://u:ab@h") == ()
    assert telemetry.scrub_text("mongodb://u:ab@h") == "mongodb://u:***@h"


def test_the_sdk_is_not_imported_unless_sentry_is_on(tmp_path: Path) -> None:
    # Importing sentry_sdk costs ~0.2 s of the warm run's 2 s budget.
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from backtest_compilation import adapters\n"
        "from backtest_compilation.settings import Settings\n"
        "adapters.start_telemetry(Settings()).report_failure(RuntimeError('x'))\n"
        "print('sentry_sdk' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "False"


_SAFE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."


@settings(max_examples=200, deadline=None)
@given(
    before=st.text(alphabet=st.characters(exclude_characters="@"), max_size=40),
    after=st.text(alphabet=st.characters(exclude_characters="@"), max_size=40),
    user=st.text(alphabet=_SAFE, min_size=1, max_size=12),
    password=st.text(alphabet=_SAFE + "!$%^&()=+", min_size=8, max_size=24),
    scheme=st.sampled_from(["mongodb", "mongodb+srv", "https", "http"]),
)
def test_a_password_in_a_uri_never_survives(before, after, user, password, scheme) -> None:
    masked = f"{before} {scheme}://{user}:***@db.example.org:27017/x {after}"
    # The rest of the text must not be able to spell the password on its own.
    assume(password not in masked)
    # "Bearer" or "Basic" right before the URI makes it a token, masked whole (rightly).
    assume(not re.search(r"\b(bearer|basic)\s*$", before, re.IGNORECASE))
    text = masked.replace(":***@", f":{password}@")
    assert telemetry.scrub_text(text) == masked
