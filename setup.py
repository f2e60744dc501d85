"""What goes into the package; everything else about the project is in pyproject.toml.

Computed rather than listed because template folders come and go (a language, its `answers/`
and `faq/`): each folder under templates/ is packaged as `daemon.templates.<lang>[.<folder>]`
with its files, so setuptools installs them without warnings and nothing is left out.
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
TEMPLATE_FILES = ["*.j2", "*.md", "*.txt"]


def template_packages() -> dict[str, str]:
    """`daemon.templates...` package name → its folder, for templates/ and every folder below."""
    root = HERE / "templates"
    folders = [root, *sorted(p for p in root.rglob("*") if p.is_dir() and p.name != "__pycache__")]
    return {".".join(["daemon", "templates", *p.relative_to(root).parts]): p.relative_to(HERE).as_posix()
            for p in folders}


templates = template_packages()
setup(
    packages=[*find_packages(include=["daemon", "daemon.*"]), *templates,
              "daemon.migrations", "daemon.migrations.versions"],
    package_dir={**templates, "daemon.migrations": "migrations",
                 "daemon.migrations.versions": "migrations/versions"},
    package_data={"daemon": ["py.typed"], **{name: TEMPLATE_FILES for name in templates},
                  "daemon.migrations": ["script.py.mako", "alembic.ini"]},
)
