"""Contract §6 settings: defaults, every validation problem reported at once, secrets redacted."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from backtest_compilation import settings
from backtest_compilation.errors import ConfigError

LOCAL = {"MONGO_URI": "mongomock://localhost"}


def test_defaults_match_the_spec() -> None:
    s = settings.load({}, needs_drive=False)
    assert s.mongo_uri == "mongodb://localhost:27017"
    assert s.mongo_db == "apo_main"
    assert s.cache_dir == Path("cache")
    assert s.google_credentials_file == Path("config/service-credentials.json")
    assert s.log_level == "INFO"
    assert s.sentry_dsn == "" and s.sentry_trace_rate == 1.0
    assert (s.schedule, s.tz) == ("*/10 * * * *", "America/New_York")  # SPEC §6
    assert s.rename_files is True
    assert s.full_rescan_hours == 24.0
    assert s.max_delete_fraction == 0.25
    assert s.future_year_exempt == frozenset({"BEAR"})
    assert s.drive_api_endpoint == "" and s.sheets_api_endpoint == ""


def test_values_are_read_and_converted() -> None:
    s = settings.load(
        {
            "FOLDER_ID": "0ABC",
            "DRIVE_API_ENDPOINT": "http://127.0.0.1:8080/",
            "RENAME_FILES": "false",
            "MAX_DELETE_FRACTION": "0.5",
            "FUTURE_YEAR_EXEMPT": "BEAR, CSCI",
            "LOG_LEVEL": "debug",
            "SHEET_URL": "https://docs.google.com/spreadsheets/d/1aB-c_D/edit#gid=0",
            "SHEETS_API_ENDPOINT": "http://127.0.0.1:9090",
        }
    )
    assert s.folder_id == "0ABC"
    assert s.drive_api_endpoint == "http://127.0.0.1:8080"
    assert s.rename_files is False
    assert s.max_delete_fraction == 0.5
    assert s.future_year_exempt == frozenset({"BEAR", "CSCI"})
    assert s.log_level == "DEBUG"
    assert s.sheet_key == "1aB-c_D"


PROBLEMS = [
    pytest.param({}, "FOLDER_ID is not set", id="a Drive sync needs FOLDER_ID"),
    pytest.param(
        {"MONGO_URI": "postgres://x"},
        "MONGO_URI must be a mongodb://",
        id="a non-mongo URI is refused",
    ),
    pytest.param(
        {"SENTRY_TRACE_RATE": "lots"},
        "SENTRY_TRACE_RATE must be a number",
        id="a non-numeric trace rate is refused",
    ),
    pytest.param(
        {"SENTRY_TRACE_RATE": "2"},
        "SENTRY_TRACE_RATE must be a number between 0 and 1",
        id="a trace rate above one is refused",
    ),
    pytest.param(
        {"MAX_DELETE_FRACTION": "a quarter"},
        "MAX_DELETE_FRACTION must be a number",
        id="a non-numeric delete fraction is refused",
    ),
    pytest.param(
        {"MAX_DELETE_FRACTION": "nan"},
        "MAX_DELETE_FRACTION must be a number between",
        id="NaN is not a fraction",
    ),
    pytest.param(
        {"FULL_RESCAN_HOURS": "-1"},
        "FULL_RESCAN_HOURS must be a number between 0 and 8760",
        id="negative rescan hours are refused",
    ),
    pytest.param(
        {"SCHEDULE": "every day"},
        "SCHEDULE is not a valid cron expression",
        id="an invalid cron schedule is refused",
    ),
    pytest.param(
        {"TZ": "Mars/Olympus"}, "TZ is not a known time zone", id="an unknown time zone is refused"
    ),
    pytest.param(
        {"LOG_LEVEL": "LOUD"}, "LOG_LEVEL must be one of", id="an unknown log level is refused"
    ),
    pytest.param(
        {"RENAME_FILES": "maybe"},
        "RENAME_FILES must be true or false",
        id="a non-boolean rename switch is refused",
    ),
    pytest.param(
        {"FUTURE_YEAR_EXEMPT": "bear"},
        "FUTURE_YEAR_EXEMPT must be department codes",
        id="lower-case exempt codes are refused",
    ),
    pytest.param(
        {"DELEGATE_EMAIL": "admin"},
        "DELEGATE_EMAIL must be an e-mail address",
        id="a delegate without @ is refused",
    ),
    pytest.param(
        {"SHEET_URL": "https://example.com/x"},
        "SHEET_URL must be a spreadsheet URL",
        id="a URL that is no spreadsheet is refused",
    ),
    pytest.param(
        {"DRIVE_API_ENDPOINT": "127.0.0.1:8080"},
        "DRIVE_API_ENDPOINT must be an http(s) URL",
        id="an endpoint without scheme is refused",
    ),
    pytest.param(
        {"MONGO_DB": "apo.main"},
        "MONGO_DB must be a database name",
        id="a dotted database name is refused",
    ),
    pytest.param(
        {"SENTRY_DSN": "not a dsn"},
        "SENTRY_DSN must be an http(s) URL like https://<key>@<host>/<project>",
        id="a malformed DSN is refused",
    ),
    pytest.param(
        {"FOLDER_ID": "x"},
        "GOOGLE_CREDENTIALS_FILE",
        id="Drive without emulator needs the key file",
    ),
]


@pytest.mark.parametrize(("env", "message"), PROBLEMS)
def test_each_problem_is_reported(env: dict[str, str], message: str, tmp_path: Path) -> None:
    env = {"GOOGLE_CREDENTIALS_FILE": str(tmp_path / "missing.json"), **env}
    with pytest.raises(ConfigError) as caught:
        settings.load(env)
    assert any(message in line for line in caught.value.problems), caught.value.problems


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    env = {
        "MONGO_URI": "redis://x",
        "LOG_LEVEL": "LOUD",
        "SCHEDULE": "x",
        "MAX_DELETE_FRACTION": "y",
        "GOOGLE_CREDENTIALS_FILE": str(tmp_path / "nope.json"),
    }
    with pytest.raises(ConfigError) as caught:
        settings.load(env)
    assert len(caught.value.problems) == 6  # the five above and FOLDER_ID


def test_emulator_endpoints_need_no_key_file(tmp_path: Path) -> None:
    env = {
        "FOLDER_ID": "root",
        "DRIVE_API_ENDPOINT": "http://127.0.0.1:1",
        "SHEET_URL": "https://docs.google.com/spreadsheets/d/abc/edit",
        "SHEETS_API_ENDPOINT": "http://127.0.0.1:2",
        "GOOGLE_CREDENTIALS_FILE": str(tmp_path / "nope.json"),
    }
    assert settings.load(env).folder_id == "root"


def test_the_sheet_alone_needs_the_key_file(tmp_path: Path) -> None:
    env = {
        "SHEET_URL": "https://docs.google.com/spreadsheets/d/abc/edit",
        "GOOGLE_CREDENTIALS_FILE": str(tmp_path / "nope.json"),
    }
    with pytest.raises(ConfigError, match="needed for Sheets"):
        settings.load(env, needs_drive=False)


def test_secrets_are_redacted_in_repr_and_errors() -> None:
    s = settings.load(
        {
            **LOCAL,
            "MONGO_URI": "mongodb://admin:hunter2@db.example:27017/apo?authSource=admin",
            "SENTRY_DSN": "https://abcdef0123456789@o1.ingest.sentry.io/42",
        },
        needs_drive=False,
    )
    text = repr(s) + str(s)
    assert "hunter2" not in text and "abcdef0123456789" not in text
    with pytest.raises(ConfigError) as caught:
        settings.load({"MONGO_URI": "mysql://root:hunter2@db"}, needs_drive=False)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        pytest.param(
            "mongodb://localhost:27017",
            "mongodb://localhost:27017",
            id="a URI without credentials is shown whole",
        ),
        pytest.param(
            "mongodb+srv://u:p%40ss@cluster.x/db",
            "mongodb+srv://u:***@cluster.x/db",
            id="an srv password is masked",
        ),
        pytest.param(
            "mongodb://u@h/?tlsCertificateKeyFilePassword=s3cret",
            "mongodb://u@h/?***",
            id="a password option is masked",
        ),
    ],
)
def test_redact_uri(uri: str, shown: str) -> None:
    assert settings.redact_uri(uri) == shown


def test_dotenv_is_read_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("MONGO_DB=from_file\nCACHE_DIR=/tmp/c\n")
    monkeypatch.setenv("MONGO_DB", "from_env")
    env = settings.read_env(dotenv)
    assert env["MONGO_DB"] == "from_env"
    assert env["CACHE_DIR"] == "/tmp/c"


def test_sheet_names_are_configurable() -> None:
    s = settings.load(
        {"SHEET_COPIES_TAB": "Copies", "SHEET_COUNT_COLUMN": "G", "SHEET_STAMP_CELL": "Q1"},
        needs_drive=False,
    )
    assert (s.sheet_copies_tab, s.sheet_count_column, s.sheet_stamp_cell) == ("Copies", "G", "Q1")
    assert s.sheet_errors_tab == "Errors in Drive"
    with pytest.raises(ConfigError) as caught:
        settings.load({"SHEET_COUNT_COLUMN": "6", "SHEET_STAMP_CELL": "P"}, needs_drive=False)
    assert len(caught.value.problems) == 2


# Issue 11: settings that used to pass validation and fail later, or fail with a message
# that sent the user the wrong way.


@pytest.mark.parametrize(
    "schedule",
    [
        pytest.param("2 9-19/2 * * * *", id="six fields: croniter would read seconds"),
        pytest.param("0 2 9-19/2 * * * *", id="seven fields: seconds and years"),
        pytest.param("9-19/2 * * *", id="four fields"),
    ],
)
def test_schedule_needs_exactly_five_fields(schedule: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings.load({"SCHEDULE": schedule}, needs_drive=False)
    (line,) = caught.value.problems
    assert "is not a valid cron expression" in line
    assert "needs 5 fields: minute hour day-of-month month day-of-week" in line
    assert repr(schedule) in line


def test_a_five_field_schedule_is_accepted() -> None:
    assert settings.load({"SCHEDULE": "*/5 * * * 1-5"}, needs_drive=False).schedule == (
        "*/5 * * * 1-5"
    )


QUOTED = [
    pytest.param("MONGO_URI", '"mongodb://u:hunter2@db:27017"', id="MONGO_URI in double quotes"),
    pytest.param("FOLDER_ID", "'0AbCdEf'", id="FOLDER_ID in single quotes"),
    pytest.param("SENTRY_DSN", '"https://abcdef@o1.ingest.sentry.io/42"', id="the DSN in quotes"),
    pytest.param("SCHEDULE", '"2 9-19/2 * * *"', id="SCHEDULE in quotes"),
    pytest.param("TZ", "'America/New_York'", id="TZ in quotes"),
    pytest.param("SHEET_URL", '"https://docs.google.com/spreadsheets/d/k/edit"', id="SHEET_URL"),
    pytest.param("MONGO_DB", '"apo_main"', id="MONGO_DB in quotes"),
    pytest.param("RENAME_FILES", "'false'", id="a boolean in quotes"),
]


@pytest.mark.parametrize(("name", "value"), QUOTED)
def test_a_value_in_quotes_says_remove_the_quotes(name: str, value: str) -> None:
    env = {"DRIVE_API_ENDPOINT": "http://127.0.0.1:1", "SHEETS_API_ENDPOINT": "http://h:2"}
    with pytest.raises(ConfigError) as caught:
        settings.load({**env, "FOLDER_ID": "0AbCdEf", name: value})
    # One line for the setting, and no second, misleading one about its value.
    assert caught.value.problems == [
        f"{name} is wrapped in quotes: remove the quotes (docker --env-file keeps them)"
    ]
    assert "hunter2" not in str(caught.value) and "abcdef" not in str(caught.value)


def test_quotes_inside_a_value_are_not_flagged() -> None:
    s = settings.load({"SHEET_COPIES_TAB": '"Copies" 2024', "FOLDER_ID": "x'y"}, needs_drive=False)
    assert s.sheet_copies_tab == '"Copies" 2024' and s.folder_id == "x'y"


@pytest.mark.parametrize(
    "value",
    [
        "https://drive.google.com/drive/folders/0AbC_d-E9fGhIjKlMnOpQrStUv",
        "https://drive.google.com/drive/u/0/folders/0AbC_d-E9fGhIjKlMnOpQrStUv?usp=sharing",
        "https://drive.google.com/drive/u/2/folders/0AbC_d-E9fGhIjKlMnOpQrStUv#x",
        "https://drive.google.com/open?id=0AbC_d-E9fGhIjKlMnOpQrStUv",
        "0AbC_d-E9fGhIjKlMnOpQrStUv",
    ],
)
def test_folder_id_may_be_a_drive_url(value: str) -> None:
    s = settings.load({"FOLDER_ID": value, "DRIVE_API_ENDPOINT": "http://127.0.0.1:1"})
    assert s.folder_id == "0AbC_d-E9fGhIjKlMnOpQrStUv"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param(
            "https://drive.google.com/file/d/1xYz/view?usp=sharing",
            "FOLDER_ID is not a folder's address: it must be the shared drive or the top folder",
            id="a file's URL",
        ),
        pytest.param(
            "https://docs.google.com/spreadsheets/d/1xYz/edit",
            "FOLDER_ID is not a folder's address",
            id="a spreadsheet's URL",
        ),
        pytest.param(
            "https://example.com/folders/abc",
            "FOLDER_ID is not a folder's address",
            id="a URL that is not Drive's",
        ),
    ],
)
def test_folder_id_url_that_names_no_folder(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings.load({"FOLDER_ID": value, "DRIVE_API_ENDPOINT": "http://127.0.0.1:1"})
    assert len(caught.value.problems) == 1 and caught.value.problems[0].startswith(message)


# Issue 20 item 1: one settings table, read by loading, --help, the README and .env.example;
# unknown names and values that used to crash later are refused when loaded.

ROOT = Path(__file__).resolve().parent.parent
MAIN = str(ROOT / "main.py")


def run_cli(tmp_path: Path, *args: str, dotenv: str = "", **env: str) -> CompletedProcess[str]:
    """main.py in `tmp_path` (with `dotenv` as its .env) and only the environment given."""
    (tmp_path / ".env").write_text(dotenv)
    return subprocess.run(
        [sys.executable, MAIN, *args],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "MONGO_URI": "mongomock://settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_readme_table_is_the_settings_table() -> None:
    rows = [
        f"| `{name}` | {f'`{d}`' if (d := f.metadata['default']) else '—'} | {f.metadata['help']} |"
        for name, f in settings.TABLE.items()
    ]
    table = "\n".join(["| variable | default | meaning |", "| --- | --- | --- |", *rows, ""])
    assert table in (ROOT / "README.md").read_text(), f"README.md: paste this table\n{table}"


def env_example() -> str:
    """`.env.example` as the settings table makes it: every setting with its help; the ones to
    fill in are set, the others commented out at their default (so a later default applies)."""
    out = [
        "# backtest-compilation settings, generated from backtest_compilation/settings.py by",
        "# tests/test_settings.py (which prints this file when it differs).",
        "# Copy to .env (git-ignored) and fill in; the environment wins over this file.",
    ]
    for name, f in settings.TABLE.items():
        out.append("")
        out += textwrap.wrap(
            f.metadata["help"].replace("`", ""), 84, initial_indent="# ", subsequent_indent="# "
        )
        example = f.metadata["example"]
        out.append(f"# {name}={f.metadata['default']}" if example is None else f"{name}={example}")
    return "\n".join(out) + "\n"


def test_env_example_is_generated_from_the_settings_table() -> None:
    expected = env_example()
    assert (ROOT / ".env.example").read_text() == expected, f"write .env.example:\n{expected}"


def test_help_lists_every_setting_with_its_default(tmp_path: Path) -> None:
    out = run_cli(tmp_path, "--help")
    assert out.returncode == 0, out.stderr
    flat = " ".join(out.stdout.split())
    for name, f in settings.TABLE.items():
        assert f"{name}:" in flat
        if default := f.metadata["default"]:
            assert f"(default {default})" in flat, name


@pytest.mark.parametrize(
    ("line", "hint"),
    [
        pytest.param("SHEETS_URL=https://x", "did you mean SHEET_URL?", id="SHEETS_URL"),
        pytest.param("RENAME_FILE=false", "did you mean RENAME_FILES?", id="RENAME_FILE"),
        pytest.param("MONGO_URL=mongodb://db", "did you mean MONGO_URI?", id="MONGO_URL"),
        pytest.param("COLOUR=blue", 'README.md "Configuration" lists them', id="no look-alike"),
    ],
)
def test_a_name_in_dotenv_that_is_no_setting_exits_2_naming_the_closest(
    tmp_path: Path, line: str, hint: str
) -> None:
    out = run_cli(tmp_path, "sync", "--source", str(tmp_path), dotenv=line + "\n")
    assert out.returncode == 2, out.stderr
    name = line.split("=")[0]
    assert f"configuration: {name} is not a setting; {hint}" in out.stderr.splitlines()


def test_a_look_alike_in_the_environment_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "drive").mkdir()
    out = run_cli(
        tmp_path, "sync", "--source", str(tmp_path / "drive"), "--dry-run", SHEETS_URL="x"
    )
    assert out.returncode == 0, out.stderr
    assert "SHEETS_URL is not a setting; did you mean SHEET_URL? (in the environment)" in (
        out.stderr
    )
    # Other variables (PATH, MONGO_URI) get no warning.
    assert out.stderr.count("is not a setting") == 1


@pytest.mark.parametrize(
    ("env", "line"),
    [
        pytest.param(
            {"FULL_RESCAN_HOURS": "inf"},
            "FULL_RESCAN_HOURS must be a number between 0 and 8760, not 'inf'",
            id="infinite rescan hours",
        ),
        pytest.param(
            {"RUN_TIMEOUT_S": "inf"},
            "RUN_TIMEOUT_S must be a number between 1 and 86400, not 'inf'",
            id="an infinite run timeout",
        ),
        pytest.param(
            {"RENAME_BUDGET_S": "nan"},
            "RENAME_BUDGET_S must be a number between 0 and 86400, not 'nan'",
            id="a NaN budget",
        ),
        pytest.param(
            {"SCHEDULE": "0 0 30 2 *"},
            "SCHEDULE never fires within a year: '0 0 30 2 *'",
            id="30 February never comes",
        ),
        pytest.param(
            {"DRIVE_WRITES_PER_S": "0"},
            "DRIVE_WRITES_PER_S must be a number between 0.1 and 100, not '0'",
            id="no Drive writes at all",
        ),
    ],
)
def test_values_that_crashed_later_are_refused_with_one_line(
    tmp_path: Path, env: dict[str, str], line: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        settings.load(env, needs_drive=False)
    assert caught.value.problems == [line]
    out = run_cli(tmp_path, "sync", "--source", str(tmp_path), **env)
    assert (out.returncode, out.stderr) == (2, f"configuration: {line}\n")


@pytest.mark.parametrize("tz", ["EST", "MST", "Etc/GMT+5"])
def test_a_fixed_offset_zone_is_refused(tz: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings.load({"TZ": tz}, needs_drive=False)
    (line,) = caught.value.problems
    assert line.startswith(f"TZ {tz!r} is a fixed offset, without daylight saving")
    assert "America/New_York" in line


@pytest.mark.parametrize(
    "tz", ["UTC", "Etc/UTC", "America/Phoenix", "Asia/Kolkata", "EST5EDT", "Japan"]
)
def test_utc_and_places_are_accepted(tz: str) -> None:
    assert settings.load({"TZ": tz}, needs_drive=False).tz == tz


def test_a_key_file_that_is_a_directory_says_so(tmp_path: Path) -> None:
    env = {"FOLDER_ID": "x", "GOOGLE_CREDENTIALS_FILE": str(tmp_path)}
    with pytest.raises(ConfigError) as caught:
        settings.load(env)
    (line,) = caught.value.problems
    assert line.startswith(f"GOOGLE_CREDENTIALS_FILE {str(tmp_path)!r} is a directory:")


def test_drive_writes_per_s_is_read() -> None:
    assert settings.Settings().drive_writes_per_s == 3.0
    assert settings.load({"DRIVE_WRITES_PER_S": "1.5"}, needs_drive=False).drive_writes_per_s == 1.5


def test_doctor_names_a_misspelled_setting(tmp_path: Path) -> None:
    """The example of issue 20: `SHEETS_URL=` in `.env` once passed doctor's settings check."""
    out = run_cli(tmp_path, "doctor", dotenv="FOLDER_ID=x\nSHEETS_URL=https://x\n")
    assert out.returncode == 2
    assert "✗ settings: SHEETS_URL is not a setting; did you mean SHEET_URL?" in out.stdout
