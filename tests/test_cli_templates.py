"""Template commands and check-config, through the real command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.configs import offline_config

from daemon.cli import main


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(offline_config(f"sqlite:///{tmp_path / 't.db'}", rest=extra))
    return path


def test_templates_list_names_every_message_with_its_languages(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", str(_config(tmp_path)), "templates", "list"]) == 0
    out = capsys.readouterr().out
    assert "acknowledgement" in out and "agent_new_ticket" in out
    assert "fr" in out.split("acknowledgement", 1)[1].splitlines()[0]


def test_templates_render_previews_a_message_in_the_asked_language(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", str(_config(tmp_path)), "templates", "render", "acknowledgement",
                 "--lang", "fr"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Subject: ") and "Content-Language: fr" in out
    assert "Tienda Ejemplo" in out


def test_check_config_reports_a_broken_override_by_file_and_line_and_exits_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    overrides = tmp_path / "templates" / "es"
    overrides.mkdir(parents=True)
    (overrides / "acknowledgement.j2").write_text(
        "{% block subject %}Hola{% endblock %}\n{% block body %}\nHola\n{{ ticket.numbr }}\n"
        "{% endblock %}\n")
    config = _config(tmp_path, f'\n[templates]\ndirectory = "{tmp_path / "templates"}"\n')
    assert main(["-c", str(config), "check-config"]) == 2
    err = capsys.readouterr().err
    assert "acknowledgement.j2:4" in err and "numbr" in err


def test_check_config_passes_on_the_built_in_templates(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", str(_config(tmp_path)), "check-config"]) == 0
    assert "valid" in capsys.readouterr().out
