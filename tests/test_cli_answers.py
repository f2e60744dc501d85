"""`incidencias answers list/render` and check-config on answers, through the real command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.configs import offline_config

from daemon.cli import main

BUILT_IN = ["address-change", "damaged", "delay", "invoice", "lost", "refund-pending", "return",
            "wrong-item"]


def _config(tmp_path: Path, overrides: dict[str, str] | None = None) -> Path:
    extra = ""
    if overrides is not None:
        root = tmp_path / "templates"
        for name, text in overrides.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text, encoding="utf-8")
        extra = f'\n[templates]\ndirectory = "{root}"\n'
    path = tmp_path / "config.toml"
    path.write_text(offline_config(f"sqlite:///{tmp_path / 't.db'}", rest=extra))
    return path


def test_answers_list_json_is_the_built_in_files_plus_the_shops_overrides(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, {"es/answers/gift-wrap.j2": "Lo envolvemos para regalo.\n",
                                "fr/answers/delay.j2": "Votre colis part demain.\n"})
    assert main(["-c", str(config), "answers", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [a["name"] for a in listed] == sorted([*BUILT_IN, "gift-wrap"])
    by_name = {a["name"]: a for a in listed}
    assert by_name["gift-wrap"] == {"name": "gift-wrap", "languages": ["es"],
                                    "first_line": "Lo envolvemos para regalo."}
    assert by_name["delay"]["languages"] == ["en", "es", "fr"]
    assert by_name["delay"]["first_line"].startswith("Tu pedido va con retraso")
    assert set(by_name["lost"]) == {"name", "languages", "first_line"}


def test_answers_list_prints_one_line_per_answer(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", str(_config(tmp_path)), "answers", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == BUILT_IN


def test_answers_render_prints_the_text_in_the_asked_language(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", str(_config(tmp_path)), "answers", "render", "delay", "--lang", "fr"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Votre commande a pris du retard")
    assert "25 novembre 2026" in out


def test_answers_render_explains_an_unknown_name_or_a_missing_language(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(_config(tmp_path, {"es/answers/only-es.j2": "Solo en español.\n"}))
    assert main(["-c", config, "answers", "render", "dealy", "--lang", "es"]) == 2
    assert "delay" in capsys.readouterr().err
    assert main(["-c", config, "answers", "render", "only-es", "--lang", "fr"]) == 2
    assert "es" in capsys.readouterr().err.rpartition("exists in:")[2]


def test_answers_render_with_a_ticket_uses_its_data(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from daemon.config import load_settings
    from daemon.runtime.service import prepare_database
    from daemon.storage import db
    from daemon.storage.models import Ticket

    config = _config(tmp_path, {"es/answers/who.j2": "Para {{ ticket.customer_name }}, "
                                                      "incidencia {{ ticket.number }}.\n"})
    settings = load_settings(config)
    with db.session_factory(prepare_database(settings))() as session, session.begin():
        session.add(Ticket(customer_email="maria@example.net", customer_name="María",
                           subject="Pedido", language="es"))
    assert main(["-c", str(config), "answers", "render", "who", "--lang", "es", "--ticket", "1"]) == 0
    assert capsys.readouterr().out == "Para María, incidencia 1.\n"
    assert main(["-c", str(config), "answers", "render", "who", "--lang", "es", "--ticket", "7"]) == 1


def test_check_config_reports_a_broken_answer_by_file_and_line_and_exits_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, {"es/answers/broken.j2": "Hola.\n{% if ticket.number %}\n"
                                                         "{{ order.number }}\n{% endif %}\n"})
    assert main(["-c", str(config), "check-config"]) == 2
    err = capsys.readouterr().err
    assert "es/answers/broken.j2:3" in err and "order" in err
