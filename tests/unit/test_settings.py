"""A bad setting ends with one line naming the variable, exit status 2, no traceback."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from core.cli import main
from core.config import load_settings, redact_url
from core.errors import ConfigError

BAD_SETTINGS = [
    ("DATABASE_URL", "mysql://u:pw@db/x", "must be sqlite:///PATH or postgresql://"),
    ("DATABASE_URL", "sqlite:///", "names no SQLite file"),
    ("DATABASE_URL", "postgresql://u@db:5432/x?sslmode=sometimes", "use one of disable"),
    ("LOG_FORMAT", "xml", "'console' or 'json'"),
    ("LOG_LEVEL", "LOUD", "'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
    ("ADMIN_PORT", "http", "valid integer"),
    ("ADMIN_PORT", "70000", "less than or equal to 65535"),
    ("TIME_SCALE", "0", "greater than 0"),
    ("TIME_SCALE", "inf", "finite number"),
    ("OUTBOX_POLL_SECONDS", "nan", "finite number"),
    ("LEASE_SECONDS", "1e999", "finite number"),
    ("LEASE_SECONDS", "-5", "greater than 0"),
    ("ENABLED_SERVICES", "discord,slack", "'discord' or 'calendar'"),
    ("REMINDER_OFFSETS_MINUTES", "60,soon", "comma-separated list of whole numbers"),
    ("SENTRY_ATTEMPT_MILESTONES", "0", "every number must be positive"),
    ("GOOGLE_IMPERSONATE_SUBJECT", "teacher", "email address of the Workspace user"),
    ("CALENDAR_PUSH_URL", "http://example.org/push", "must be https"),
    ("CALENDAR_PUSH_URL", "push.example.org", "absolute https URL"),
]


@pytest.mark.parametrize(("variable", "value", "says"), BAD_SETTINGS)
def test_each_bad_setting_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    says: str,
) -> None:
    monkeypatch.setenv(variable, value)

    code = main(["run"])

    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith(f"groupsync: configuration error: {variable}: ")
    assert says in err
    assert "Traceback" not in err


def test_database_password_is_not_echoed_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://user:hunter22@db/x")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "hunter22" not in str(caught.value)


def test_secrets_are_reduced_to_set_in_the_logged_summary() -> None:
    settings = load_settings(
        discord_bot_token=SecretStr("abc.def.ghi-secret"),
        database_url="postgresql://gs:pw123@db:5432/gs",
    )
    summary = str(settings.public_summary())
    assert "abc.def.ghi-secret" not in summary
    assert "pw123" not in summary
    assert settings.public_summary()["discord_bot_token"] == "set"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+asyncpg://u:p@h:5432/d", "postgresql+asyncpg://u:***@h:5432/d"),
        ("sqlite+aiosqlite:///./var/x.db", "sqlite+aiosqlite:///./var/x.db"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_plain_postgres_url_gets_the_async_driver() -> None:
    settings = load_settings(database_url="postgresql://u@h/d")
    assert settings.database_url == "postgresql+asyncpg://u@h/d"


def test_run_without_credentials_for_an_enabled_service_refuses_and_names_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("DISCORD_BOT_TOKEN", "GOOGLE_CREDENTIALS_FILE", "ENABLED_SERVICES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ENABLED_SERVICES", "discord")

    code = main(["run"])

    err = capsys.readouterr().err
    assert code == 2
    assert "DISCORD_BOT_TOKEN" in err
    assert "GOOGLE_CREDENTIALS_FILE" not in err
    assert "python main.py demo" in err


def test_secret_values_cover_tokens_dsn_and_the_database_password() -> None:
    settings = load_settings(
        discord_bot_token=SecretStr("bot-token-value"), admin_token=SecretStr("admin-value"),
        sentry_dsn=SecretStr("https://publickey123@o1.ingest.sentry.io/42"),
        database_url="postgresql://gs:db-password@db/gs",
    )

    assert set(settings.secret_values()) == {
        "bot-token-value", "admin-value", "https://publickey123@o1.ingest.sentry.io/42",
        "publickey123", "db-password",
    }


def test_the_scrubber_removes_a_pem_key_even_from_a_repr() -> None:
    from core.observability import REDACTED, SecretScrubber

    key = "-----BEGIN KEY-----\n" + "A" * 64 + "\n" + "B" * 40 + "\n-----END KEY-----\n"
    scrubber = SecretScrubber([key])
    event = {"extra": {"info": repr({"private_key": key})}, "tags": {"token": "t"},
             "list": [f"partial {'B' * 40} line"]}

    scrubbed = scrubber.scrub_tree(event)

    assert "A" * 64 not in str(scrubbed)
    assert "B" * 40 not in str(scrubbed)
    assert scrubbed["tags"]["token"] == REDACTED
URL_FORMS = [
    ("sqlite:///var/gs.db", "sqlite+aiosqlite:///var/gs.db"),
    ("sqlite:////abs/gs.db", "sqlite+aiosqlite:////abs/gs.db"),
    ("sqlite+aiosqlite:///var/gs.db", "sqlite+aiosqlite:///var/gs.db"),
    ("postgresql://gs:pw@db:5432/gs", "postgresql+asyncpg://gs:pw@db:5432/gs"),
    ("postgres://gs:pw@db/gs", "postgresql+asyncpg://gs:pw@db/gs"),
    ("postgresql+asyncpg://gs@db/gs", "postgresql+asyncpg://gs@db/gs"),
    ("postgres://gs:pw@db/gs?sslmode=require", "postgresql+asyncpg://gs:pw@db/gs?ssl=require"),
    (" postgresql://gs@db/gs?sslmode=disable ", "postgresql+asyncpg://gs@db/gs?ssl=disable"),
]


@pytest.mark.parametrize(("given", "used"), URL_FORMS)
def test_every_documented_url_form_becomes_the_async_driver_url(given: str, used: str) -> None:
    assert load_settings(database_url=given).database_url == used


def test_sslmode_goes_back_to_libpq_spelling_for_asyncpg_connect() -> None:
    from core.db.urls import asyncpg_dsn

    url = load_settings(database_url="postgres://gs:pw@db/gs?sslmode=verify-full").database_url
    assert asyncpg_dsn(url) == "postgresql://gs:pw@db/gs?sslmode=verify-full"


@pytest.mark.parametrize("url", ["https://example.org/hooks/calendar",
                                 "http://127.0.0.1:8765/calendar/push",
                                 "http://localhost/calendar/push"])
def test_calendar_push_url_is_https_or_loopback_http(url: str) -> None:
    assert load_settings(calendar_push_url=url).calendar_push_url == url
