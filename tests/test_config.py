"""Config validation: good files load, and every mistake names its key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.config import ConfigError, load_settings, parse_duration

REPO_CONFIG = Path(__file__).resolve().parents[1] / "config.toml"

MINIMAL = """
[shop]
name = "Tienda"
address = "Incidencias@Example.com"
languages = ["es", "en"]
default_language = "es"

[imap]
host = "127.0.0.1"
security = "none"
username = "incidencias"
password = "imap-secret"

[smtp]
host = "127.0.0.1"
security = "none"
password_file = "smtp-password"
"""


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "smtp-password").write_text("smtp-secret\n")
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_the_shipped_example_config_is_valid_once_its_secret_files_exist(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch
                                                                        ) -> None:
    for name in ("imap-password", "smtp-password", "agent-secret"):
        (tmp_path / name).write_text("x")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    settings = load_settings(REPO_CONFIG)
    assert settings.config.updates.every == timedelta(days=3)
    assert settings.config.imap.processed_folder == "Procesados"


def test_minimal_config_loads_with_defaults_and_reads_the_password_file(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, MINIMAL))
    assert settings.config.shop.address == "incidencias@example.com"
    assert settings.config.imap.port == 993
    assert settings.secrets.smtp_password is not None
    assert settings.secrets.smtp_password.get_secret_value() == "smtp-secret"
    assert "smtp-secret" not in repr(settings) and "imap-secret" not in repr(settings)


def test_password_file_is_read_from_the_credentials_directory(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "smtp-password").write_text("from-systemd")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    settings = load_settings(_write(tmp_path, MINIMAL))
    assert settings.secrets.smtp_password is not None
    assert settings.secrets.smtp_password.get_secret_value() == "from-systemd"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (('port = 993', 'port = "many"'), "[imap] port"),
        (('security = "none"\nusername', 'security = "ssl"\nusername'), "[imap] security"),
        (('default_language = "es"', 'default_language = "de"'), "default_language"),
        (('name = "Tienda"', 'name = "Tienda"\ncolour = "red"'), "[shop] colour: unknown key"),
        (('address = "Incidencias@Example.com"', 'address = "nobody"'), "[shop] address"),
    ],
)
def test_each_mistake_names_its_key(tmp_path: Path, change: tuple[str, str], named: str) -> None:
    text = MINIMAL.replace('security = "none"\nusername', 'port = 993\nsecurity = "none"\nusername', 1)
    text = text.replace(*change, 1)
    with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace("]", r"\]")):
        load_settings(_write(tmp_path, text))


def test_updates_every_a_week_or_more_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[updates\] every: must be shorter than 7 days"):
        load_settings(_write(tmp_path, MINIMAL + '\n[updates]\nevery = "7d"\n'))


def test_plaintext_to_a_remote_server_is_refused_unless_allowed(tmp_path: Path) -> None:
    remote = MINIMAL.replace('host = "127.0.0.1"', 'host = "imap.example.com"', 1)
    with pytest.raises(ConfigError, match=r"\[imap\].*refused for non-loopback host"):
        load_settings(_write(tmp_path, remote))
    allowed = remote.replace('username = "incidencias"', 'username = "incidencias"\nallow_insecure = true')
    assert load_settings(_write(tmp_path, allowed)).config.imap.allow_insecure


def test_missing_password_file_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL)
    (tmp_path / "smtp-password").unlink()
    with pytest.raises(ConfigError, match=r"\[smtp\] password_file: cannot read"):
        load_settings(path)


@pytest.mark.parametrize("text", ["90s", "15m", "4h", "3d", "1.5h"])
def test_durations_in_the_documented_forms_parse(text: str) -> None:
    assert parse_duration(text) > timedelta(0)


def test_unknown_duration_unit_is_an_error() -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration("3 weeks")


def test_cli_exits_2_on_a_config_error_and_names_the_key(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, MINIMAL + '\n[updates]\nevery = "10d"\n')
    assert main(["-c", str(path), "tickets", "list"]) == 2
    assert "[updates] every" in capsys.readouterr().err


def test_cli_exits_2_when_the_config_file_is_missing(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", str(tmp_path / "nope.toml"), "tickets", "list"]) == 2
    assert "file not found" in capsys.readouterr().err
