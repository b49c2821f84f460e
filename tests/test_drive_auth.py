"""Service-account auth with domain-wide delegation, against the emulator's OAuth token
endpoint: the narrowest scopes, rejected credentials as configuration errors (exit 2),
and no key material in any message. The key is generated per test, never stored."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backtest_compilation.adapters import drive_source
from backtest_compilation.drive import SCOPE_READ, SCOPE_RENAME, DriveSource
from backtest_compilation.errors import ConfigError
from backtest_compilation.google import credentials as load_credentials
from backtest_compilation.settings import load
from emulators.drive import DriveEmulator

DELEGATE = "backtests@chapter.example.org"
NOW = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def key_file(service_account_key: Callable[..., Path], drive_emulator: DriveEmulator) -> Path:
    return service_account_key(
        drive_emulator.url + "/token", client_email="sync@test.iam.gserviceaccount.com"
    )


@pytest.fixture
def drive(drive_emulator: DriveEmulator) -> str:
    drive = drive_emulator.add_drive("Backtests")
    course = drive_emulator.add_folder(drive, "CSCI-1200 Data Structures")
    drive_emulator.add_file(course, "E1F22.pdf", file_id="t1")
    return drive


def _source(emu: DriveEmulator, root: str, key: Path, scopes: tuple[str, ...]) -> DriveSource:
    return DriveSource(
        root,
        credentials=load_credentials(key, DELEGATE, scopes),
        endpoint=emu.url,
        delegate=DELEGATE,
        scopes=scopes,
        allow_renames=SCOPE_RENAME in scopes,
        sleep=emu.clock.sleep,  # type: ignore[attr-defined]  # a QuotaClock (fixture)
    )


def test_delegated_read_only_access(
    drive_emulator: DriveEmulator, drive: str, key_file: Path
) -> None:
    drive_emulator.grant(DELEGATE, SCOPE_READ)
    got = _source(drive_emulator, drive, key_file, (SCOPE_READ,)).read(None, now=NOW)
    assert [c.name for c in got.tree.children] == ["CSCI-1200 Data Structures"]
    assert drive_emulator.stats.by_method["oauth.token"] == 1


def test_renames_with_the_metadata_scope(
    drive_emulator: DriveEmulator, drive: str, key_file: Path
) -> None:
    from backtest_compilation.catalog import Rename

    drive_emulator.grant(DELEGATE, SCOPE_READ, SCOPE_RENAME)
    source = _source(drive_emulator, drive, key_file, (SCOPE_READ, SCOPE_RENAME))
    result = source.rename([Rename("t1", "CSCI / x", "E1F22.pdf", "CSCI-1200 E1F22.pdf")])
    assert result.applied == {"t1"}
    assert drive_emulator.files["t1"].name == "CSCI-1200 E1F22.pdf"


@pytest.mark.parametrize(
    "granted",
    [
        pytest.param((), id="delegation not granted"),
        pytest.param((SCOPE_READ,), id="scope missing"),
    ],
)
def test_rejected_credentials_are_a_configuration_error(
    granted: tuple[str, ...],
    drive_emulator: DriveEmulator,
    drive: str,
    key_file: Path,
    rsa_pem: str,
) -> None:
    drive_emulator.grant("someone-else@chapter.example.org", SCOPE_READ)
    if granted:
        drive_emulator.grant(DELEGATE, *granted)
    source = _source(drive_emulator, drive, key_file, (SCOPE_READ, SCOPE_RENAME))
    with pytest.raises(ConfigError) as info:
        source.read(None, now=NOW)
    message = str(info.value)
    assert info.value.exit_code == 2
    assert "unauthorized_client" in message and DELEGATE in message
    assert rsa_pem.splitlines()[1] not in message and "BEGIN" not in message


def test_malformed_key_file_is_named_without_its_content(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    path.write_text(json.dumps({"type": "service_account", "private_key": "s3cr3t-material"}))
    with pytest.raises(ConfigError) as info:
        load_credentials(path, DELEGATE, (SCOPE_READ,))
    assert str(path) in str(info.value) and "s3cr3t" not in str(info.value)


@pytest.mark.parametrize(
    ("env", "renames", "scopes"),
    [
        pytest.param({}, True, (SCOPE_READ, SCOPE_RENAME), id="renames on: read + metadata"),
        pytest.param(
            {"RENAME_FILES": "false"}, True, (SCOPE_READ,), id="RENAME_FILES=false: read only"
        ),
        pytest.param({}, False, (SCOPE_READ,), id="--no-rename / --dry-run: read only"),
    ],
)
def test_scopes_follow_the_rename_setting(
    env: dict[str, str],
    renames: bool,
    scopes: tuple[str, ...],
    drive_emulator: DriveEmulator,
    drive: str,
) -> None:
    settings = load({"FOLDER_ID": drive, "DRIVE_API_ENDPOINT": drive_emulator.url, **env})
    source = drive_source(settings, renames=renames)
    assert source.scopes == scopes and source.allow_renames == (SCOPE_RENAME in scopes)
    # With an endpoint, anonymous credentials: no key file needed.
    assert source.read(None, now=NOW).tree.children


def test_unreachable_token_endpoint_is_a_runtime_failure(
    drive_emulator: DriveEmulator, drive: str, key_file: Path
) -> None:
    from backtest_compilation.errors import ServiceError

    drive_emulator.grant(DELEGATE, SCOPE_READ)
    data = json.loads(key_file.read_text())
    data["token_uri"] = "http://127.0.0.1:9/token"  # discard port: nothing listens
    key_file.write_text(json.dumps(data))
    with pytest.raises(ServiceError) as info:
        _source(drive_emulator, drive, key_file, (SCOPE_READ,)).read(None, now=NOW)
    assert info.value.exit_code == 1 and "cannot reach Google" in str(info.value)


SERVICE_ACCOUNT = "sync@test.iam.gserviceaccount.com"


def _undelegated(emu: DriveEmulator, root: str, key: Path) -> DriveSource:
    """DELEGATE_EMAIL unset: the service account acts as itself."""
    return DriveSource(
        root,
        credentials=load_credentials(key, "", (SCOPE_READ,)),
        endpoint=emu.url,
        scopes=(SCOPE_READ,),
        sleep=lambda s: None,
    )


def test_without_delegate_email_messages_name_the_service_account(
    drive_emulator: DriveEmulator, drive: str, key_file: Path
) -> None:
    """Issue 11 item 15: not "the account in use", but the key file's e-mail."""
    from backtest_compilation.errors import ServiceError

    drive_emulator.grant(SERVICE_ACCOUNT, SCOPE_READ)
    with pytest.raises(ServiceError) as info:
        _undelegated(drive_emulator, "no-such-folder", key_file).read(None, now=NOW)
    message = str(info.value)
    assert f"not shared with the service account {SERVICE_ACCOUNT}" in message
    assert "DELEGATE_EMAIL is not set" in message and "account in use" not in message
    # Credentials Google rejects name it too.
    drive_emulator.grants = {"someone-else@chapter.example.org": frozenset({SCOPE_READ})}
    with pytest.raises(ConfigError) as rejected:
        _undelegated(drive_emulator, drive, key_file).read(None, now=NOW)
    assert f"acting as the service account {SERVICE_ACCOUNT}" in str(rejected.value)


def test_folder_id_of_a_file_says_it_is_a_file_without_contradiction(
    drive_emulator: DriveEmulator, drive: str, key_file: Path
) -> None:
    """Issue 11 item 13: a file is no "does not exist or is not shared"."""
    from backtest_compilation.errors import ServiceError

    drive_emulator.grant(DELEGATE, SCOPE_READ)
    with pytest.raises(ServiceError) as info:
        _source(drive_emulator, "t1", key_file, (SCOPE_READ,)).read(None, now=NOW)
    message = str(info.value)
    assert "FOLDER_ID 't1' is a file (application/pdf)" in message
    assert "FOLDER_ID must be the shared drive or the top folder" in message
    assert "does not exist" not in message and "not shared" not in message
