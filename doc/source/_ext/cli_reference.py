"""``.. cli-reference:: module:function``: a command's reference from its argparse parser.

The function returns the top-level ``argparse.ArgumentParser``. Each (sub)command gets a
section with its usage, description, options and epilog (examples), all taken from the parser,
so the page cannot drift from the code. Text is put in as text nodes, never parsed as reST.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive
from sphinx.application import Sphinx

_WIDTH = 62  # usage lines wrap to fit the page's text column


def _load(spec: str) -> argparse.ArgumentParser:
    module_name, _, attr = spec.partition(":")
    parser = getattr(importlib.import_module(module_name), attr)()
    if not isinstance(parser, argparse.ArgumentParser):
        raise TypeError(f"{spec} returned {type(parser).__name__}, not an ArgumentParser")
    return parser


def _formatter(parser: argparse.ArgumentParser) -> argparse.HelpFormatter:
    return argparse.HelpFormatter(parser.prog, width=_WIDTH)


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    found: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.extend(action.choices.items())
    return found


def _options(parser: argparse.ArgumentParser) -> nodes.definition_list:
    formatter = _formatter(parser)
    items = nodes.definition_list()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
            continue
        term = nodes.term()
        term += nodes.literal(text=formatter._format_action_invocation(action))
        definition = nodes.definition()
        help_text = formatter._expand_help(action) if action.help else ""
        definition += nodes.paragraph(text=help_text)
        items += nodes.definition_list_item("", term, definition)
    return items


def _text_block(text: str) -> nodes.literal_block:
    block = nodes.literal_block(text=text)
    block["language"] = "text"  # not highlighted as Python
    return block


def _section(name: str, parser: argparse.ArgumentParser, document: Any) -> nodes.section:
    section = nodes.section(ids=[nodes.make_id(name)], names=[nodes.fully_normalize_name(name)])
    document.note_implicit_target(section)
    section += nodes.title(text=name)
    usage = _formatter(parser)
    usage.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    section += _text_block(usage.format_help().strip())
    if parser.description:
        section += nodes.paragraph(text=parser.description)
    options = _options(parser)
    if options.children:
        section += options
    if parser.epilog:
        section += _text_block(parser.epilog.strip())
    for sub_name, sub_parser in _subcommands(parser):
        section += _section(f"{name} {sub_name}", sub_parser, document)
    return section


class CliReference(Directive):
    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        parser = _load(self.arguments[0])
        return [_section(parser.prog, parser, self.state.document)]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("cli-reference", CliReference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
