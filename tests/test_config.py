from pathlib import Path

import pytest

from iot.cli.toolkit import CliError, settings


def test_secrets_come_from_files_and_never_show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "iot_influxdb_token").write_text("s3cret-token")
    monkeypatch.setenv("IOT_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("IOT_BATCH_SIZE", "250")
    s = settings(flush_interval=0.5)
    assert s.influxdb_token is not None and s.influxdb_token.get_secret_value() == "s3cret-token"
    assert "s3cret-token" not in repr(s) and "s3cret-token" not in str(s.model_dump())
    assert (s.batch_size, s.flush_interval) == (250, 0.5)


def test_bad_setting_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IOT_BATCH_SIZE", "lots")
    with pytest.raises(CliError, match="IOT_BATCH_SIZE"):
        settings()


def test_registry_password_joins_the_url_escaped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A password with URL metacharacters, from IOT_SECRETS_DIR, reaches the driver intact."""
    from sqlalchemy.engine import make_url

    password = "p@ss:w/rd%?#&+ =x"
    (tmp_path / "iot_registry_password").write_text(password + "\n")
    monkeypatch.setenv("IOT_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("IOT_REGISTRY_URL", "postgresql+psycopg://iot@db.example:5432/iot")
    url = make_url(settings().resolved_registry_url())
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "iot",
        password,
        "db.example",
        5432,
        "iot",
    )
    # a password already in the URL wins; a URL without a user is left alone
    monkeypatch.setenv("IOT_REGISTRY_URL", "postgresql+psycopg://iot:inline@db.example/iot")
    assert make_url(settings().resolved_registry_url()).password == "inline"
    monkeypatch.setenv("IOT_REGISTRY_URL", "postgresql+psycopg:///iot")
    assert settings().resolved_registry_url() == "postgresql+psycopg:///iot"


def test_sources_in_order_and_a_secret_file_outside_its_directory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given values over the environment over .env over secret files; a mapping merges per key; a
    secret file that resolves outside IOT_SECRETS_DIR (a symlink) is not read."""
    secrets, outside = tmp_path / "secrets", tmp_path / "outside"
    secrets.mkdir()
    outside.mkdir()
    (secrets / "IOT_INFLUXDB_TOKEN").write_text(" tok \n")  # any case
    (secrets / "iot_notify_secrets").write_text('{"a": "file", "b": "file"}')
    (outside / "pw").write_text("not-for-us")
    (secrets / "iot_broker_password").symlink_to(outside / "pw")
    (tmp_path / ".env").write_text("IOT_BATCH_SIZE=7\niot_topic_root=dotenv\nIOT_CLIENT_ID=dotenv\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IOT_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("iot_client_id", "env")
    monkeypatch.setenv("IOT_NOTIFY_SECRETS", '{"a": "env"}')
    with pytest.warns(UserWarning, match="outside"):
        s = settings(topic_root="given")
    assert (s.batch_size, s.topic_root, s.client_id) == (7, "given", "env")
    assert s.reveal(s.influxdb_token) == "tok" and s.broker_password is None
    assert {k: v.get_secret_value() for k, v in s.notify_secrets.items()} == {"a": "env", "b": "file"}
