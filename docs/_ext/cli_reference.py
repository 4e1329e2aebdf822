"""``.. cli-reference::``: the command-line reference, rendered from the argparse parser.

The parser is the one ``crucible-actors`` itself runs (``crucible_actors.cli._parser()``),
so this page cannot drift from the CLI: every command and sub-command becomes a section
with its usage line, its description and each argument with its help, default and choices.
"""

from __future__ import annotations

import argparse
import importlib
import os
from typing import TYPE_CHECKING, Any

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

if TYPE_CHECKING:
    from sphinx.application import Sphinx


def _parser(spec: str) -> argparse.ArgumentParser:
    module_name, _, attr = spec.partition(":")
    parser = getattr(importlib.import_module(module_name), attr)()
    if not isinstance(parser, argparse.ArgumentParser):
        raise TypeError(f"cli-reference: {spec} returned {type(parser).__name__}, not a parser")
    return parser


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            seen: set[int] = set()
            for name, sub in action.choices.items():
                if id(sub) in seen:  # an alias of a command already listed
                    continue
                seen.add(id(sub))
                found.append((name, helps.get(name, ""), sub))
    return found


def _argument_term(action: argparse.Action) -> str:
    if not action.option_strings:
        return action.metavar if isinstance(action.metavar, str) else action.dest.upper()
    if action.nargs == 0:
        return ", ".join(action.option_strings)
    metavar = action.metavar
    if metavar is None:
        metavar = (
            "{" + ",".join(map(str, action.choices)) + "}"
            if action.choices
            else action.dest.upper()
        )
    if isinstance(metavar, tuple):
        metavar = " ".join(metavar)
    return ", ".join(f"{opt} {metavar}" for opt in action.option_strings)


def _argument_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    text = parser._get_formatter()._expand_help(action) if action.help else ""
    extra = []
    if action.choices and not isinstance(action, argparse._SubParsersAction):
        extra.append("one of " + ", ".join(map(str, action.choices)))
    default = action.default
    if (
        action.option_strings
        and action.nargs != 0
        and default not in (None, argparse.SUPPRESS, [], "")
        and "default" not in text
    ):
        extra.append(f"default: {default}")
    return "; ".join(p for p in [text, *extra] if p)


class CliReference(SphinxDirective):
    """Render the parser named by the argument (``module:function``) and its sub-commands."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        # argparse wraps usage lines to the terminal's width: fix it, so every build
        # renders the same page.
        saved = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = "88"
        try:
            parser = _parser(self.arguments[0])
            return [self._section(parser, parser.prog, "")]
        finally:
            if saved is None:
                del os.environ["COLUMNS"]
            else:
                os.environ["COLUMNS"] = saved

    def _section(self, parser: argparse.ArgumentParser, title: str, summary: str) -> nodes.section:
        section = nodes.section(ids=[nodes.make_id("cli " + title)])
        section += nodes.title(text=title)
        self.state.document.note_implicit_target(section)
        description = parser.description or summary
        if description:
            section += nodes.paragraph(text=description)
        usage = parser.format_usage().removeprefix("usage: ").strip()
        section += nodes.literal_block(usage, usage, language="none")
        items = nodes.definition_list()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
                continue
            if action.help == argparse.SUPPRESS:
                continue
            term = nodes.term()
            term += nodes.literal(text=_argument_term(action))
            definition = nodes.definition()
            definition += nodes.paragraph(text=_argument_help(parser, action) or "-")
            items += nodes.definition_list_item("", term, definition)
        if len(items):
            section += items
        if parser.epilog:
            section += nodes.paragraph(text=parser.epilog)
        for name, help_text, sub in _subcommands(parser):
            section += self._section(sub, f"{title} {name}", help_text)
        return section


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("cli-reference", CliReference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
