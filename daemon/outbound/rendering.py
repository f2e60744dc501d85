"""Render the daemon's messages from Jinja2 templates into subject, plain text and HTML.

Templates are shop-editable configuration, so they run in Jinja2's immutable sandbox with
StrictUndefined: a typo fails `check-config` with file and line instead of sending a broken
email. Customer text only ever arrives as context data, and the HTML part is built from the
rendered text by code, so whatever a customer wrote is escaped there and never interpreted.
"""

from __future__ import annotations

import html
import importlib.resources
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from importlib.resources.abc import Traversable
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from daemon.config import FaqEntry
from daemon.outbound.answers import ANSWERS_DIR, AnswerBook
from daemon.outbound.template_samples import answer_variants, faq_sample, sample_variants

SUBJECT_BLOCK = "subject"
BODY_BLOCK = "body"
_LANGUAGE_DIR = re.compile(r"[a-z]{2}")
_TEMPLATE_FILE = re.compile(r"([a-z][a-z0-9_]*)\.j2")
_PARTIAL_FILE = re.compile(r"_[a-z0-9_]+\.j2")
#: Sub-directories of a language holding snippets: plain text rendered into a message, no blocks.
SNIPPET_DIRS = ("faq",)


@dataclass(frozen=True)
class Rendered:
    """One message ready for the mail builder."""

    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class TemplateProblem:
    """What is wrong with a template and where, for `check-config` and the logs."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}"


class TemplateError(Exception):
    """A template could not be rendered; `problem` says which file and line."""

    def __init__(self, problem: TemplateProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


class _TraversableLoader(jinja2.BaseLoader):
    """Loads `<lang>/<name>.j2` from a directory or from package resources (which may be zipped)."""

    def __init__(self, root: Traversable) -> None:
        self.root = root

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        node = self.find(template)
        if node is None:
            raise jinja2.TemplateNotFound(template)
        # Sources change only on reload(), which builds a new environment.
        return node.read_text(encoding="utf-8"), str(node), lambda: True

    def has(self, template: str) -> bool:
        return self.find(template) is not None

    def list_templates(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            f"{lang.name}/{entry.name}"
            for lang in self.root.iterdir()
            if lang.is_dir() and _LANGUAGE_DIR.fullmatch(lang.name)
            for entry in lang.iterdir()
            if entry.is_file() and entry.name.endswith(".j2")
        )

    def stray_files(self) -> list[str]:
        """Files that do not fit the `<lang>/<name>.j2` layout and would be silently ignored."""
        if not self.root.is_dir():
            return []
        strays: list[str] = []
        for top in self.root.iterdir():
            if top.is_file() and top.name.endswith(".j2"):
                strays.append(str(top))
            elif top.is_dir() and not _LANGUAGE_DIR.fullmatch(top.name):
                strays.extend(str(e) for e in top.iterdir() if e.name.endswith(".j2"))
            elif top.is_dir():
                strays.extend(
                    str(e)
                    for e in top.iterdir()
                    if e.name.endswith(".j2")
                    and not (_TEMPLATE_FILE.fullmatch(e.name) or _PARTIAL_FILE.fullmatch(e.name))
                )
        return sorted(strays)

    def find(self, template: str) -> Traversable | None:
        parts = template.split("/")
        if len(parts) not in (2, 3) or (len(parts) == 3
                                        and parts[1] not in (ANSWERS_DIR, *SNIPPET_DIRS)):
            return None
        if not _LANGUAGE_DIR.fullmatch(parts[0]):
            return None
        node = self.root.joinpath(*parts)
        return node if node.is_file() else None


class Renderer:
    """Built-in templates, optionally overridden file by file from a shop's directory."""

    _answers: AnswerBook | None

    def __init__(self, override_dir: Path | None = None) -> None:
        self._override_dir = override_dir
        self._build()

    def render(
        self,
        name: str,
        language: str,
        context: Mapping[str, Any],
        fallback_language: str = "en",
    ) -> Rendered:
        """Render `name` in `language`, or in `fallback_language` when it has no such translation."""
        chosen = self._choose_language(name, language, fallback_language)
        path = _template_path(name, chosen)
        try:
            template = self._env.get_template(path)
            missing = [b for b in (SUBJECT_BLOCK, BODY_BLOCK) if b not in template.blocks]
            if missing:
                problem = TemplateProblem(
                    self._filename(path), None, f"missing {{% block {missing[0]} %}}"
                )
                raise TemplateError(problem)
            subject, body = _render_blocks(template, dict(context))
        except TemplateError:
            raise
        except Exception as exc:  # a template is code the shop wrote: any failure is its error
            raise TemplateError(_problem_from(exc, self._filename(path))) from exc
        text = tidy_text(body)
        subject_line = one_line(subject)
        return Rendered(subject_line, text, text_to_html(text, chosen, subject_line))

    def snippet(self, folder: str, name: str, language: str, context: Mapping[str, Any]
                ) -> str | None:
        """`<language>/<folder>/<name>.j2` rendered as plain text; None when there is no such file."""
        path = f"{_primary(language)}/{folder}/{name}.j2"
        if not any(loader.has(path) for loader in self._loaders):
            return None
        try:
            text = self._env.get_template(path).render(dict(context))
        except Exception as exc:  # the shop's own text: any failure is its template's error
            raise TemplateError(_problem_from(exc, self._filename(path))) from exc
        return tidy_text(text).strip("\n")

    def has(self, name: str, language: str) -> bool:
        """Whether message template `name` exists in exactly `language` (no fallback)."""
        return any(loader.has(_template_path(name, _primary(language))) for loader in self._loaders)

    def answers(self) -> AnswerBook:
        """The quick answers, built-in and the shop's, as found when the renderer was (re)built."""
        if self._answers is None:
            self._answers = AnswerBook([loader.root for loader in self._loaders])
        return self._answers

    def render_answer(self, name: str, language: str, context: Mapping[str, Any]) -> str:
        """The text of answer `name` in exactly `language` (no fallback: a wrong language is worse
        than none); TemplateError with file and line when it is missing or fails."""
        book = self.answers()
        path = book.path(name, language)
        if language not in book.languages(name):
            raise TemplateError(TemplateProblem(path, None, f"no answer {name!r} in {language!r}"))
        try:
            template = self._env.get_template(path)
            # the render function itself, as for blocks: Template.render() would rewrite the
            # traceback and lose the template line of an error raised in a filter
            text = "".join(template.root_render_func(template.new_context(dict(context))))
        except Exception as exc:  # shop-written, like any template
            raise TemplateError(_problem_from(exc, book.filename(name, language))) from exc
        if not text.strip():
            raise TemplateError(TemplateProblem(book.filename(name, language), None,
                                                "the answer renders empty"))
        return tidy_text(text)

    def names(self) -> list[str]:
        """Every template name, built-in or override; partials (`_name.j2`) are not listed."""
        return sorted({name for _, name in self._entries()})

    def languages(self, name: str) -> list[str]:
        """Languages in which `name` exists, built-in or override."""
        return sorted({lang for lang, entry in self._entries() if entry == name})

    def check(self) -> list[TemplateProblem]:
        """Render every template in every language with sample data; an empty list means fine."""
        problems = [
            TemplateProblem(stray, None, "ignored: templates must be <language>/<name>.j2")
            for loader in self._loaders
            for stray in loader.stray_files()
        ]
        if self._override_dir is not None and not self._override_dir.is_dir():
            problems.append(TemplateProblem(str(self._override_dir), None, "not a directory"))
        for name in self.names():
            try:
                variants = sample_variants(name)
            except KeyError:
                for language in self.languages(name):
                    path = self._filename(_template_path(name, language))
                    problems.append(TemplateProblem(path, None, f"unknown template name {name!r}"))
                continue
            for language in self.languages(name):
                problems.extend(self._check_one(name, language, variants))
        problems.extend(self._check_answers())
        return list(dict.fromkeys(problems))

    def check_faq(self, entries: Sequence[FaqEntry], languages: Sequence[str]
                  ) -> list[TemplateProblem]:
        """Each `[[faq]]` entry needs `<lang>/faq/<name>.j2` for every language it has keywords in,
        and that answer must render with sample data; keywords in a language the shop does not
        answer in would never be used."""
        problems: list[TemplateProblem] = []
        for entry in entries:
            for language in entry.keywords:
                path = f"{language}/faq/{entry.name}.j2"
                if language not in languages:
                    problems.append(TemplateProblem(
                        f"[[faq]] {entry.name}", None,
                        f"keywords.{language}: {language!r} is not in [shop] languages {list(languages)}"))
                    continue
                if not any(loader.has(path) for loader in self._loaders):
                    problems.append(TemplateProblem(
                        path, None, f"missing: the answer of [[faq]] {entry.name!r} in {language!r}"))
                    continue
                problems.extend(self._check_snippet(path, entry))
        return problems

    def _check_snippet(self, path: str, entry: FaqEntry) -> list[TemplateProblem]:
        filename = self._filename(path)
        context = {**faq_sample(), "faq": {"name": entry.name, "url": entry.url}}
        try:
            source, _, _ = self._loader.get_source(self._env, path)
            tree = self._env.parse(source, path, filename)
        except Exception as exc:
            return [_problem_from(exc, filename)]
        unknown = meta.find_undeclared_variables(tree) - set(context) - set(self._env.globals)
        if unknown:
            return [TemplateProblem(filename, None, f"{sorted(unknown)[0]!r} is undefined")]
        try:
            text = self.snippet("faq", entry.name, path.split("/")[0], context)
        except TemplateError as exc:
            return [exc.problem]
        return [] if text else [TemplateProblem(filename, None, "the answer renders empty")]

    def reload(self) -> None:
        """Forget compiled templates and directory listings so edited files take effect."""
        self._build()

    def _build(self) -> None:
        builtin = _TraversableLoader(importlib.resources.files("daemon.templates"))
        self._loaders: list[_TraversableLoader] = (
            [_TraversableLoader(self._override_dir), builtin] if self._override_dir else [builtin]
        )
        self._loader = jinja2.ChoiceLoader(self._loaders)
        self._env = _environment(self._loader)
        self._listing: list[tuple[str, str]] | None = None
        self._answers = None

    def _entries(self) -> list[tuple[str, str]]:
        if self._listing is None:
            found: set[tuple[str, str]] = set()
            for loader in self._loaders:
                for path in loader.list_templates():
                    lang, filename = path.split("/")
                    match = _TEMPLATE_FILE.fullmatch(filename)
                    if match:
                        found.add((lang, match.group(1)))
            self._listing = sorted(found)
        return self._listing

    def _choose_language(self, name: str, language: str, fallback: str) -> str:
        for candidate in (_primary(language), _primary(fallback)):
            if any(loader.has(_template_path(name, candidate)) for loader in self._loaders):
                return candidate
        message = f"no template {name!r} in {language!r} nor in {fallback!r}"
        raise TemplateError(TemplateProblem(_template_path(name, language), None, message))

    def _filename(self, path: str) -> str:
        for loader in self._loaders:
            node = loader.find(path)
            if node is not None:
                return str(node)
        return path

    def _check_one(
        self, name: str, language: str, variants: list[dict[str, Any]]
    ) -> list[TemplateProblem]:
        path = _template_path(name, language)
        filename = self._filename(path)
        try:
            source, _, _ = self._loader.get_source(self._env, path)
            tree = self._env.parse(source, path, filename)
        except Exception as exc:
            return [_problem_from(exc, filename)]
        problems = _static_problems(tree, filename, variants[0], set(self._env.globals),
                                    (SUBJECT_BLOCK, BODY_BLOCK))
        if problems:
            return problems
        for context in variants:
            try:
                rendered = self.render(name, language, context, fallback_language=language)
            except TemplateError as exc:
                return [exc.problem]
            if not rendered.subject:
                return [TemplateProblem(filename, None, "the subject renders empty")]
        return []


    def _check_answers(self) -> list[TemplateProblem]:
        book = self.answers()
        problems = [TemplateProblem(stray, None, "ignored: answers must be <language>/answers/"
                                    "<name>.j2, the name in lower-case letters, digits and -")
                    for stray in book.strays()]
        variants = answer_variants()
        for name in book.names():
            for language in book.languages(name):
                problems.extend(self._check_answer(book, name, language, variants))
        return problems

    def _check_answer(self, book: AnswerBook, name: str, language: str,
                      variants: list[dict[str, Any]]) -> list[TemplateProblem]:
        filename = book.filename(name, language)
        path = book.path(name, language)
        try:
            source, _, _ = self._loader.get_source(self._env, path)
            tree = self._env.parse(source, path, filename)
        except Exception as exc:
            return [_problem_from(exc, filename)]
        problems = _static_problems(tree, filename, variants[0], set(self._env.globals), ())
        if problems:
            return problems
        for context in variants:
            try:
                self.render_answer(name, language, context)
            except TemplateError as exc:
                return [exc.problem]
        return []


def _environment(loader: jinja2.BaseLoader) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["bare_subject"] = bare_subject
    env.filters["quote"] = quote
    env.filters["long_date"] = long_date
    env.filters["filesize"] = filesize
    return env


def _render_blocks(template: jinja2.Template, context: dict[str, Any]) -> tuple[str, str]:
    """The template's subject and body blocks; text outside them is ignored."""
    ctx = template.new_context(context)
    subject = "".join(template.blocks[SUBJECT_BLOCK](ctx))
    body = "".join(template.blocks[BODY_BLOCK](ctx))
    return subject, body


def _problem_from(exc: BaseException, filename: str) -> TemplateProblem:
    """File and line of the innermost template frame (an include's, when the error is there)."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return TemplateProblem(exc.filename or filename, exc.lineno, exc.message or str(exc))
    file, line = filename, None
    for frame_file, frame_line in _template_frames(exc.__traceback__):
        file, line = frame_file, frame_line
    if isinstance(exc, jinja2.TemplateNotFound):
        return TemplateProblem(file, line, f"template not found: {exc.name}")
    if isinstance(exc, jinja2.TemplateError):
        return TemplateProblem(file, line, exc.message or type(exc).__name__)
    return TemplateProblem(file, line, f"{type(exc).__name__}: {exc}")


def _template_frames(tb: TracebackType | None) -> Iterator[tuple[str, int]]:
    while tb is not None:
        template = tb.tb_frame.f_globals.get("__jinja_template__")
        if isinstance(template, jinja2.Template) and template.filename:
            yield template.filename, template.get_corresponding_lineno(tb.tb_lineno)
        tb = tb.tb_next


def _static_problems(
    tree: nodes.Template, filename: str, sample: Mapping[str, Any], globals_: set[str],
    required_blocks: tuple[str, ...],
) -> list[TemplateProblem]:
    """Unknown variables and mapping keys, found even in branches the sample data does not take."""
    problems: list[TemplateProblem] = []
    blocks = {block.name for block in tree.find_all(nodes.Block)}
    for block in required_blocks:
        if block not in blocks:
            problems.append(TemplateProblem(filename, None, f"missing {{% block {block} %}}"))
    unknown = meta.find_undeclared_variables(tree) - set(sample) - globals_
    for node in tree.find_all(nodes.Name):
        if node.name in unknown and node.ctx == "load":
            problems.append(TemplateProblem(filename, node.lineno, f"{node.name!r} is undefined"))
            unknown.discard(node.name)
    assigned = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    for getattr_node in tree.find_all(nodes.Getattr):
        missing = _missing_key(getattr_node, sample, assigned)
        if missing:
            problems.append(TemplateProblem(filename, getattr_node.lineno, missing))
    return problems


def _missing_key(node: nodes.Getattr, sample: Mapping[str, Any], assigned: set[str]) -> str | None:
    """For `a.b.c` rooted in the context, the first attribute the sample mapping does not have."""
    chain: list[str] = []
    current: nodes.Node = node
    while isinstance(current, nodes.Getattr):
        chain.append(current.attr)
        current = current.node
    if not isinstance(current, nodes.Name) or current.name in assigned:
        return None
    value: Any = sample.get(current.name)
    path = current.name
    for attr in reversed(chain):
        if not isinstance(value, Mapping) or hasattr(value, attr):
            return None
        if attr not in value:
            return f"{path!r} has no attribute {attr!r}"
        value, path = value[attr], f"{path}.{attr}"
    return None


def _template_path(name: str, language: str) -> str:
    return f"{language}/{name}.j2"


def _primary(language: str) -> str:
    return re.split(r"[-_]", language.strip(), maxsplit=1)[0].lower()


# --- text helpers: pure functions, also used as template filters ---------------------------

_REPLY_PREFIX = re.compile(
    r"^\s*(?:(?:re|aw|sv|vs|r|rif|res|fw|fwd|tr|wg|rv|enc|i)\s*(?:\[\d+\])?\s*:\s*"
    r"|\[#\d+\]\s*)+",
    re.IGNORECASE,
)
_TICKET_TAG = re.compile(r"\s*\[#\d+\]\s*")


def bare_subject(subject: str) -> str:
    """The customer's subject without reply/forward prefixes (Re, RV, TR, AW…) or ticket tags."""
    return one_line(_TICKET_TAG.sub(" ", _REPLY_PREFIX.sub("", subject)))


def one_line(value: str) -> str:
    """Collapse line breaks, control characters and runs of whitespace: safe for a header."""
    cleaned = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in value)
    return " ".join(cleaned.split())


def quote(text: str) -> str:
    """Prefix every line with "> ", the plain-text way to cite a message."""
    return "\n".join(f"> {line}".rstrip() for line in text.strip("\n").splitlines())


def tidy_text(text: str) -> str:
    """Trailing spaces off, at most one blank line in a row, one final newline.

    The signature separator "-- " keeps its space, as mail clients recognise it only with it.
    """
    lines = [
        line if line == "-- " else line.rstrip()
        for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    ]
    tidy: list[str] = []
    for line in lines:
        if line or (tidy and tidy[-1]):
            tidy.append(line)
    while tidy and not tidy[-1]:
        tidy.pop()
    return "\n".join(tidy) + "\n"


_MONTHS: dict[str, tuple[str, ...]] = {
    "es": ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
           "septiembre", "octubre", "noviembre", "diciembre"),
    "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
           "septembre", "octobre", "novembre", "décembre"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"),
    "de": ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August",
           "September", "Oktober", "November", "Dezember"),
    "it": ("gennaio", "febbraio", "marzo", "aprile", "maggio", "giugno", "luglio", "agosto",
           "settembre", "ottobre", "novembre", "dicembre"),
    "pt": ("janeiro", "fevereiro", "março", "abril", "maio", "junho", "julho", "agosto",
           "setembro", "outubro", "novembro", "dezembro"),
}  # fmt: skip


def long_date(value: str | date, language: str) -> str:
    """A date as people write it in `language` ("31 de diciembre de 2026"); unknown input as is."""
    if isinstance(value, datetime):
        day = value.date()
    elif isinstance(value, date):
        day = value
    else:
        try:
            day = date.fromisoformat(value.strip()[:10])
        except ValueError:
            return value
    months = _MONTHS.get(_primary(language))
    if months is None:
        return day.isoformat()
    month = months[day.month - 1]
    patterns = {
        "es": f"{day.day} de {month} de {day.year}",
        "fr": f"{'1er' if day.day == 1 else day.day} {month} {day.year}",
        "en": f"{day.day} {month} {day.year}",
        "de": f"{day.day}. {month} {day.year}",
        "it": f"{'1º' if day.day == 1 else day.day} {month} {day.year}",
        "pt": f"{day.day} de {month} de {day.year}",
    }
    return patterns[_primary(language)]


def filesize(size: int, language: str = "en") -> str:
    """A byte count for people: "850 B", "12 KB", "3,4 MB"; decimal comma and "Ko" where usual."""
    lang = _primary(language)
    units = ("o", "Ko", "Mo", "Go") if lang == "fr" else ("B", "KB", "MB", "GB")
    value, unit = float(size), units[0]
    for bigger in units[1:]:
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    number = f"{value:.0f}" if value >= 10 or unit == units[0] else f"{value:.1f}"
    if lang != "en":
        number = number.replace(".", ",")
    return f"{number}\u00a0{unit}"


# --- HTML ------------------------------------------------------------------------------------

_URL = re.compile(r"\bhttps?://[^\s<>\"]+", re.IGNORECASE)
_URL_TRAILING = ".,;:!?'\"»”\u2019)]"
_LIST_ITEM = re.compile(r"[-•*] ")
_STYLE_BODY = "margin:0;padding:16px;background:#ffffff;color:#1a1a1a;"
_STYLE_ARTICLE = "max-width:40em;font-family:sans-serif;font-size:16px;line-height:1.5;"
_STYLE_QUOTE = "margin:0 0 1em 0;padding-left:1em;border-left:3px solid #8a8a8a;color:#3a3a3a;"


def text_to_html(text: str, language: str, title: str) -> str:
    """A small accessible HTML document carrying exactly `text`: escaped, no remote resources."""
    lang = html.escape(_primary(language) or "en")
    label = html.escape(title)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{label}</title>\n</head>\n"
        f'<body style="{_STYLE_BODY}">\n'
        f'<div role="article" aria-label="{label}" lang="{lang}" style="{_STYLE_ARTICLE}">\n'
        f"{_blocks_html(text)}\n</div>\n</body>\n</html>\n"
    )


def _blocks_html(text: str) -> str:
    """Paragraphs separated by blank lines; "> " paragraphs become quotes, "- " ones lists."""
    out: list[str] = []
    for block in re.split(r"\n[ \t]*\n", text.strip("\n")):
        lines = block.split("\n")
        if not block.strip():
            continue
        if all(line.startswith(">") for line in lines):
            inner = "\n".join(re.sub(r"^> ?", "", line) for line in lines)
            out.append(f'<blockquote style="{_STYLE_QUOTE}">\n{_blocks_html(inner)}\n</blockquote>')
        elif all(_LIST_ITEM.match(line) for line in lines):
            items = "".join(f"<li>{_inline_html(line[2:])}</li>\n" for line in lines)
            out.append(f"<ul>\n{items}</ul>")
        else:
            out.append("<p>" + "<br>\n".join(_inline_html(line) for line in lines) + "</p>")
    return "\n".join(out)


def _inline_html(line: str) -> str:
    """Escape a line and turn bare http(s) URLs into links."""
    out: list[str] = []
    position = 0
    for match in _URL.finditer(line):
        url = match.group(0)
        while url and url[-1] in _URL_TRAILING and not (url[-1] == ")" and "(" in url):
            url = url[:-1]
        end = match.start() + len(url)
        out.append(html.escape(line[position : match.start()]))
        out.append(f'<a href="{html.escape(url)}">{html.escape(url)}</a>')
        position = end
    out.append(html.escape(line[position:]))
    return "".join(out)
