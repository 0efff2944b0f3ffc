"""The documentation builds with warnings as errors (``./dev docs``, ``./dev releasenotes``),
and its generated pages say what the code says: every option, every CLI subcommand and
option, every release note."""

from __future__ import annotations

import argparse
import html
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import datera_glance
from datera_glance import cli, options

ROOT = Path(__file__).resolve().parents[2]
NOTES = sorted((ROOT / "releasenotes" / "notes").glob("*.yaml"))

pytestmark = pytest.mark.slow


def _build(command: str, out: Path) -> None:
    done = subprocess.run(
        [str(ROOT / "dev"), command, str(out)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"./dev {command} failed:\n{done.stdout}\n{done.stderr}"


def _text(page: Path) -> str:
    """A built page as plain text."""
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("docs")
    _build("docs", out)
    yield out


def test_configuration_reference_lists_every_option(docs: Path) -> None:
    page = _text(docs / "configuration.html")
    for opt in options.get_opts():
        assert opt.name in page, opt.name
        for deprecated in opt.deprecated_opts:
            assert deprecated.name and deprecated.name in page, deprecated.name


def _parsers(
    parser: argparse.ArgumentParser,
) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_cli_reference_follows_the_parser(docs: Path) -> None:
    page = _text(docs / "cli.html")
    parsers = list(_parsers(cli.build_parser()))
    assert len(parsers) > 1, "no subcommands found"
    for parser in parsers:
        assert parser.prog in page, parser.prog
        for action in parser._actions:
            for flag in action.option_strings:
                assert flag in page, (parser.prog, flag)


def test_benchmark_page_shows_the_plot_and_the_results(docs: Path) -> None:
    assert (docs / "_images" / "throughput-full.png").is_file()
    page = _text(docs / "benchmarks.html")
    assert "copier write vs best of dd/fio" in page  # a row of summary-full.md's table


def test_release_notes_page_has_every_note(docs: Path) -> None:
    page = " ".join(_text(docs / "releasenotes.html").split())
    assert NOTES
    for note in NOTES:
        body = yaml.safe_load(note.read_text())
        for section in body.values():
            first = section if isinstance(section, str) else section[0]
            words = " ".join(re.sub(r"``", "", first).split()[:6])
            assert words in page, (note.name, words)


def test_upgrade_notes_name_every_deprecated_option_name() -> None:
    """A rename without its upgrade note (and its line on the upgrade page) fails here."""
    upgrade = " ".join(
        text for note in NOTES for text in yaml.safe_load(note.read_text()).get("upgrade", [])
    )
    page = (ROOT / "doc" / "source" / "upgrade.rst").read_text()
    renames = [(d.name, o.name) for o in options.get_opts() for d in o.deprecated_opts]
    assert renames
    for old, new in renames:
        assert f"``{old}`` is now ``{new}``" in upgrade, old
        assert re.search(rf"``{old}``\s+``{new}``", page), old


def test_release_notes_build(tmp_path: Path) -> None:
    _build("releasenotes", tmp_path)
    page = _text(tmp_path / "index.html")
    assert "Upgrade Notes" in page and "datera_chunk_size" in page
    # Without a tag reno says "0.0.0"; the notes are those of the version being released.
    headings = re.findall(r"<h2>([^<]+)", (tmp_path / "index.html").read_text())
    assert headings[0].strip() == datera_glance.__version__ == "1.0.0"
    assert "0.0.0" not in headings


def test_reno_names_the_version_being_released() -> None:
    config = yaml.safe_load((ROOT / "releasenotes" / "config.yaml").read_text())
    assert config["unreleased_version_title"] == datera_glance.__version__


def _source_text() -> str:
    """Every module of the package, with adjacent string literals joined (``"a " "b"``)."""
    text = "\n".join(p.read_text() for p in (ROOT / "src" / "datera_glance").rglob("*.py"))
    return re.sub(r"\"\s*\n\s*f?\"", "", text)


def test_troubleshooting_quotes_messages_the_code_still_has() -> None:
    """Each message the guide explains (a quoted term of its definition lists) is still made
    by the code: placeholders (``...``, NAME, option names) and the ": " that joins a message
    to its fix aside, every run of two or more words must appear in src/."""
    guide = (ROOT / "doc" / "source" / "troubleshooting.rst").read_text()
    messages = guide.split("The store does not start\n", 1)[1]  # not the check names above it
    terms = re.findall(r"^``(.+)``$", messages, re.M)
    assert len(terms) >= 5, terms
    source = _source_text()
    for term in terms:
        for fragment in re.split(r"'\.\.\.'|\.\.\.|: |\b[A-Z][A-Z_:-]+\b|datera_\w+|[()]", term):
            fragment = fragment.strip(" :;,.")
            if len(fragment.split()) >= 2:
                assert fragment in source, (term, fragment)


def test_troubleshooting_explains_every_check() -> None:
    """The names ``datera-glance check`` prints (``Result("name", ...)``, and the connector
    strategies' ``Prerequisite("name", ...)`` and ``_on_path("command", ...)`` it shows) and
    the guide's."""
    code = (ROOT / "src" / "datera_glance" / "cli" / "check.py").read_text()
    made = set(re.findall(r'Result\(\s*"([^"]+)"', code))
    strategies = (ROOT / "src" / "datera_glance" / "attach" / "connectors.py").read_text()
    made |= set(re.findall(r'(?:Prerequisite|_on_path)\(\s*"([^"]+)"', strategies))
    guide = (ROOT / "doc" / "source" / "troubleshooting.rst").read_text()
    body = guide.split("What ``check`` reports\n", 1)[1].split("\n", 1)[1]  # past the underline
    section = body.split("\n====", 1)[0]
    terms = [line for line in section.splitlines() if line.startswith("``")]
    names = {name for line in terms for name in re.findall(r"``([^`]+)``", line)}
    assert made, "no Result(...) found in cli/check.py"
    assert made == names, (sorted(made - names), sorted(names - made))
