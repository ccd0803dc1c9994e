"""Small helpers for pandoc's JSON AST (pandoc-types 1.23), so transforms read like the document.

A node is ``{"t": type, "c": content}``; an attribute is ``[id, classes, [[key, value], ...]]``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

Node = dict[str, Any]
Attr = list[Any]


def attr(ident: str = "", classes: list[str] | None = None, kv: list[list[str]] | None = None) -> Attr:
    return [ident, list(classes or []), list(kv or [])]


def text_inlines(text: str) -> list[Node]:
    """Plain text as Str/Space inlines (what pandoc's reader would produce for words)."""
    out: list[Node] = []
    for i, word in enumerate(text.split(" ")):
        if i:
            out.append({"t": "Space"})
        if word:
            out.append({"t": "Str", "c": word})
    return out


def para(inlines: list[Node]) -> Node:
    return {"t": "Para", "c": inlines}


def plain(inlines: list[Node]) -> Node:
    return {"t": "Plain", "c": inlines}


def div(a: Attr, blocks: list[Node]) -> Node:
    return {"t": "Div", "c": [a, blocks]}


def span(a: Attr, inlines: list[Node]) -> Node:
    return {"t": "Span", "c": [a, inlines]}


def link(inlines: list[Node], target: str) -> Node:
    return {"t": "Link", "c": [attr(), inlines, [target, ""]]}


def raw_block(fmt: str, text: str) -> Node:
    return {"t": "RawBlock", "c": [fmt, text]}


def raw_inline(fmt: str, text: str) -> Node:
    return {"t": "RawInline", "c": [fmt, text]}


def node_attr(node: Node) -> Attr | None:
    """The attribute of a node that has one (Div, Header, Figure, Table, Image, Span, CodeBlock...)."""
    t, c = node.get("t"), node.get("c", [])
    if t in ("Div", "Span", "Figure", "Table", "CodeBlock", "Code"):
        return c[0]
    if t == "Header":
        return c[1]
    if t in ("Image", "Link"):
        return c[0]
    return None


def stringify(nodes: Any) -> str:
    """Plain text of inlines/blocks, for titles in the sidebar and link texts."""
    parts: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                visit(item)
        elif isinstance(node, dict):
            t = node.get("t")
            if t == "Str":
                parts.append(node["c"])
            elif t in ("Space", "SoftBreak", "LineBreak"):
                parts.append(" ")
            elif t in ("Code", "Math"):
                parts.append(node["c"][1])
            elif t in ("RawInline", "Note"):
                return
            elif "c" in node:
                visit(node["c"])

    visit(nodes)
    return "".join(parts).strip()


def walk_nodes(value: Any) -> Iterator[Node]:
    """Every node below ``value``, depth first, parents before children."""
    if isinstance(value, list):
        for item in value:
            yield from walk_nodes(item)
    elif isinstance(value, dict):
        if "t" in value:
            yield value
        content = value.get("c")
        if isinstance(content, (list, dict)):
            yield from walk_nodes(content)


def map_inline_lists(value: Any, fn: Callable[[list[Node]], list[Node]]) -> None:
    """Call ``fn`` on every list of inlines in place (bottom up), so it can replace one inline by many.

    A list counts as a list of inlines when its first element is an inline node; that is enough
    for the node kinds pandoc produces, because inlines and blocks never share a list.
    """
    if isinstance(value, list):
        for item in value:
            map_inline_lists(item, fn)
        if value and isinstance(value[0], dict) and value[0].get("t") in INLINE_TYPES:
            value[:] = fn(value)
    elif isinstance(value, dict):
        content = value.get("c")
        if isinstance(content, (list, dict)):
            map_inline_lists(content, fn)


def map_block_lists(value: Any, fn: Callable[[list[Node]], list[Node]]) -> None:
    """Call ``fn`` on every list of blocks in place (bottom up)."""
    if isinstance(value, list):
        for item in value:
            map_block_lists(item, fn)
        if value and isinstance(value[0], dict) and value[0].get("t") in BLOCK_TYPES:
            value[:] = fn(value)
    elif isinstance(value, dict):
        content = value.get("c")
        if isinstance(content, (list, dict)):
            map_block_lists(content, fn)


INLINE_TYPES = frozenset({
    "Str", "Emph", "Underline", "Strong", "Strikeout", "Superscript", "Subscript", "SmallCaps",
    "Quoted", "Cite", "Code", "Space", "SoftBreak", "LineBreak", "Math", "RawInline", "Link",
    "Image", "Note", "Span",
})
BLOCK_TYPES = frozenset({
    "Plain", "Para", "LineBlock", "CodeBlock", "RawBlock", "BlockQuote", "OrderedList",
    "BulletList", "DefinitionList", "Header", "HorizontalRule", "Table", "Figure", "Div",
})
