"""Number the book's sections, figures and tables, and resolve ``@fig-``/``@tbl-``/``@sec-`` references.

Numbers follow Quarto's book rules: chapters are numbered in book order, skipping unnumbered pages
(the index); figures and tables count per chapter ("Figure 2.3"), or alone on an unnumbered page.
Pandoc parses ``@fig-x`` as a citation, so references are Cite nodes whose key has a cross-reference
prefix; anything else is left for citeproc.
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

from effgen.book.render import tree
from effgen.book.render.errors import RenderWarning
from effgen.book.render.tree import Node

REF_KEY = re.compile(r"^(fig|tbl|sec)-")
KIND_NAMES = {"fig": "Figure", "tbl": "Table"}


@dataclass(frozen=True)
class Target:
    label: str
    kind: str  # fig, tbl or sec
    number: str | None  # "2.3"; None for an unnumbered heading
    title: str  # a heading's text, used when it has no number
    page: int  # index of the chapter in book order
    level: int = 0  # heading level for sections

    def reference_text(self, number_only: bool = False) -> str:
        if self.number is None:
            return self.title
        if number_only:
            return self.number
        if self.kind == "sec":
            return f"{'Chapter' if self.level == 1 else 'Section'} {self.number}"
        return f"{KIND_NAMES[self.kind]} {self.number}"


@dataclass(frozen=True)
class Section:
    ident: str
    level: int
    number: str | None
    title: str


@dataclass
class Registry:
    targets: dict[str, Target] = field(default_factory=dict)

    def add(self, target: Target, where: str) -> None:
        if target.label in self.targets:
            warnings.warn(f"{where}: label {target.label} is used twice; references go to the first one",
                          RenderWarning, stacklevel=3)
            return
        self.targets[target.label] = target


def number_chapter(blocks: list[Node], *, page: int, chapter: int | None, registry: Registry,
                   where: str) -> list[Section]:
    """Register the chapter's labels; return its headings with their numbers (for TOCs and pages)."""
    sections: list[Section] = []
    counters = [0] * 7
    floats = {"fig": 0, "tbl": 0}
    for node in tree.walk_nodes(blocks):
        t = node["t"]
        if t == "Header":
            level, (ident, classes, _kv), inlines = node["c"]
            number: str | None = None
            if chapter is not None and "unnumbered" not in classes and "-" not in classes:
                counters[level] += 1
                counters[level + 1:] = [0] * (len(counters) - level - 1)
                counters[1] = chapter  # the chapter's own number, whatever its heading says
                number = ".".join(str(n) for n in counters[1:level + 1])
            title = tree.stringify(inlines)
            sections.append(Section(ident, level, number, title))
            if REF_KEY.match(ident):
                registry.add(Target(ident, "sec", number, title, page, level), where)
        elif t in ("Figure", "Table"):
            ident = node["c"][0][0]
            kind = ident[:3]
            if kind in floats and ident[3:4] == "-":
                floats[kind] += 1
                number = f"{chapter}.{floats[kind]}" if chapter is not None else str(floats[kind])
                registry.add(Target(ident, kind, number, "", page), where)
    return sections


def resolve_references(blocks: list[Node], registry: Registry, href: Callable[[Target], str],
                       where: str) -> None:
    """Replace cross-reference citations by links reading "Figure 2.3"; unknown ones by a bold ?@label."""

    def rewrite(inlines: list[Node]) -> list[Node]:
        out: list[Node] = []
        for node in inlines:
            if node["t"] == "Cite" and any(REF_KEY.match(c["citationId"]) for c in node["c"][0]):
                out.extend(_cite_to_links(node, registry, href, where))
            else:
                out.append(node)
        return out

    tree.map_inline_lists(blocks, rewrite)


def _cite_to_links(cite: Node, registry: Registry, href: Callable[[Target], str], where: str) -> list[Node]:
    out: list[Node] = []
    pending: list[dict] = []  # consecutive bibliography citations stay one Cite for citeproc

    def flush() -> None:
        if pending:
            out.append({"t": "Cite", "c": [list(pending), []]})
            pending.clear()

    for index, citation in enumerate(cite["c"][0]):
        key = citation["citationId"]
        if not REF_KEY.match(key):
            pending.append(citation)
            continue
        flush()
        if index and out:
            out += [tree.text_inlines(";")[0], {"t": "Space"}]
        out += citation["citationPrefix"] + ([{"t": "Space"}] if citation["citationPrefix"] else [])
        target = registry.targets.get(key)
        if target is None:
            warnings.warn(f"{where}: unresolved cross-reference @{key}", RenderWarning, stacklevel=4)
            out.append({"t": "Strong", "c": [{"t": "Str", "c": f"?@{key}"}]})
        else:
            number_only = citation["citationMode"]["t"] == "SuppressAuthor"
            out.append(tree.link(tree.text_inlines(target.reference_text(number_only)), href(target)))
        out += citation["citationSuffix"]
    flush()
    return out
