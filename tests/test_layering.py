"""The layers of daemon/: a module may import its own layer and the ones below it, never above.

Read top to bottom as the mail's journey: what an email says (mail) and the shops' platforms (shop)
need only the settings; storage keeps what happened; outbound renders and queues mail; tickets
decide what a message does to a ticket; inbound fetches mail and hands it to the router; runtime
wires and runs it all; cli is what people type. Function-level imports count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

DAEMON = Path(__file__).resolve().parent.parent / "daemon"

# Equal numbers are siblings that must not import each other either (shop and storage).
LAYERS = {"config": 0, "mail": 1, "shop": 2, "storage": 2, "outbound": 3, "tickets": 4,
          "inbound": 5, "runtime": 6, "cli": 7, "__main__": 8}


def _layer_of_module(name: str) -> str | None:
    """The layer of `daemon.x.y` ("x"); None for modules outside and for the package's own
    attributes (`daemon.__version__`)."""
    parts = name.split(".")
    if parts[0] != "daemon" or len(parts) == 1:
        return None
    if parts[1].startswith("__") and parts[1] != "__main__":
        return None
    return parts[1]


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) for every absolute import anywhere in the tree, `from daemon import x` as daemon.x."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"line {node.lineno}: relative import; daemon uses absolute ones"
            module = node.module or ""
            if module == "daemon":
                found += [(node.lineno, f"daemon.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, module))
    return found


def _modules() -> list[tuple[str, Path]]:
    return [(path.relative_to(DAEMON).parts[0].removesuffix(".py"), path)
            for path in sorted(DAEMON.rglob("*.py"))
            if path.relative_to(DAEMON).parts[0] != "__init__.py"]


def test_every_part_of_daemon_has_a_layer() -> None:
    unknown = {layer for layer, _ in _modules()} - set(LAYERS)
    assert not unknown, f"give {sorted(unknown)} a place in LAYERS (and README's Layout)"


def _violations(layer: str, path: Path) -> list[str]:
    mine = LAYERS[layer]
    found = []
    for line, module in _imports(ast.parse(path.read_text(encoding="utf-8"))):
        other = _layer_of_module(module)
        if other is None or other == layer:
            continue
        if LAYERS.get(other, 99) >= mine:
            where = path.relative_to(DAEMON).as_posix() if path.is_relative_to(DAEMON) else path.name
            found.append(f"daemon/{where}:{line} ({layer}) "
                         f"imports {module} ({other})")
    return found


def test_no_layer_imports_a_higher_or_sibling_layer() -> None:
    offenders = [v for layer, path in _modules() if layer in LAYERS for v in _violations(layer, path)]
    assert offenders == []


@pytest.mark.parametrize(("layer", "source", "bad"), [
    ("mail", "from daemon.storage.models import Ticket\n", True),
    ("mail", "def f():\n    from daemon.tickets import state\n", True),
    ("mail", "from daemon import tickets\n", True),
    ("mail", "import daemon.outbound.queue\n", True),
    ("storage", "from daemon.shop import client\n", True),
    ("shop", "from daemon.mail.parsing import parse\nfrom daemon.config import Config\n", False),
    ("cli", "from daemon.runtime.service import build\n", False),
    ("tickets", "from daemon.tickets.state import apply\n", False),
])
def test_the_check_catches_upward_imports_wherever_they_are(tmp_path: Path, layer: str,
                                                           source: str, bad: bool) -> None:
    module = tmp_path / "m.py"
    module.write_text(source)
    assert bool(_violations(layer, module.resolve())) is bad
