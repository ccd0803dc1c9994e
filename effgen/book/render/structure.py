"""Shape a parsed chapter into what both writers expect, before anything is numbered.

- ``.effgen-figure`` / ``.effgen-table`` divs (from labelled cells) become pandoc Figure / Table nodes
  carrying the label as id and the caption;
- Quarto callouts (``.callout-note`` ...) and error outputs become one normalised Div:
  ``.callout.callout-KIND > (.callout-title, .callout-body)``, the title taken from a ``title``
  attribute or the callout's first heading (so that heading is neither numbered nor in the TOC);
- images referenced by relative path in prose join the image store, so pages stay self-contained;
- every chapter opens with exactly one level-1 heading: its title.
"""
from __future__ import annotations

import base64
import mimetypes
import warnings
from pathlib import Path

from effgen.book.render import tree
from effgen.book.render.errors import RenderWarning
from effgen.book.render.ipynb import IMAGE_SCHEME, Image, ImageStore
from effgen.book.render.tree import Node

CALLOUT_TITLES = {"note": "Note", "warning": "Warning", "tip": "Tip", "important": "Important",
                  "caution": "Caution", "error": "Error"}


def shape_chapter(blocks: list[Node], *, images: ImageStore, base_dir: Path, where: str,
                  fallback_title: str) -> str:
    """Normalise ``blocks`` in place and return the chapter's title as plain text."""
    tree.map_block_lists(blocks, _callouts)
    tree.map_block_lists(blocks, lambda bs: _figures_and_tables(bs, images, where))
    _collect_local_images(blocks, images, base_dir, where)
    return _one_title(blocks, fallback_title)


def _callouts(blocks: list[Node]) -> list[Node]:
    out: list[Node] = []
    for block in blocks:
        kind = _callout_kind(block)
        if kind is None:
            out.append(block)
            continue
        ident, _classes, kv = block["c"][0]
        body = list(block["c"][1])
        title = dict(kv).get("title")
        if title is not None:
            title_inlines = tree.text_inlines(title)
        elif body and body[0]["t"] == "Header":
            title_inlines = body.pop(0)["c"][2]
        else:
            title_inlines = tree.text_inlines(CALLOUT_TITLES[kind])
        # Headings inside a box are emphasis, not document structure.
        body = [tree.para([{"t": "Strong", "c": b["c"][2]}]) if b["t"] == "Header" else b for b in body]
        out.append(tree.div(tree.attr(ident, ["callout", f"callout-{kind}"]), [
            tree.div(tree.attr("", ["callout-title"]), [tree.plain(title_inlines)]),
            tree.div(tree.attr("", ["callout-body"]), body),
        ]))
    return out


def _callout_kind(block: Node) -> str | None:
    if block["t"] != "Div":
        return None
    classes = block["c"][0][1]
    if "callout" in classes:  # already normalised
        return None
    if "effgen-error" in classes:
        return "error"
    for css in classes:
        if css.startswith("callout-") and css.removeprefix("callout-") in CALLOUT_TITLES:
            return css.removeprefix("callout-")
    return None


def _figures_and_tables(blocks: list[Node], images: ImageStore, where: str) -> list[Node]:
    out: list[Node] = []
    for block in blocks:
        classes = block["c"][0][1] if block["t"] == "Div" else []
        if "effgen-figure" in classes:
            out.append(_figure(block, images))
        elif "effgen-table" in classes:
            out.extend(_table(block, where))
        else:
            out.append(block)
    return out


def _split_caption(block: Node) -> tuple[str, list[Node], list[Node]]:
    label = block["c"][0][0]
    caption: list[Node] = []
    body: list[Node] = []
    for child in block["c"][1]:
        if child["t"] == "Div" and "effgen-caption" in child["c"][0][1]:
            caption = [tree.plain(b["c"]) if b["t"] == "Para" else b for b in child["c"][1]]
        else:
            body.append(child)
    return label, caption, body


def _figure(block: Node, images: ImageStore) -> Node:
    label, caption, body = _split_caption(block)
    caption_text = tree.stringify(caption)
    for node in tree.walk_nodes(body):
        if node["t"] == "Image":
            image = images.get(node["c"][2][0])
            alt = (image.alt if image and image.alt else caption_text)
            node["c"][1] = tree.text_inlines(alt)
    # An image alone in a paragraph is a Plain inside a figure, as pandoc itself would write it.
    body = [tree.plain(b["c"]) if b["t"] == "Para" and len(b["c"]) == 1 and b["c"][0]["t"] == "Image" else b
            for b in body]
    return {"t": "Figure", "c": [tree.attr(label, ["effgen-figure"]), [None, caption], body]}


def _table(block: Node, where: str) -> list[Node]:
    label, caption, body = _split_caption(block)
    for index, child in enumerate(body):
        if child["t"] == "Table":
            child["c"][0] = tree.attr(label, child["c"][0][1], child["c"][0][2])
            child["c"][1] = [None, caption]
            return body[:index] + [child] + body[index + 1:]
    warnings.warn(f"{where}: {label} has no Markdown table output (emit it with DataFrame.to_markdown()); "
                  "it is shown as a captioned block", RenderWarning, stacklevel=2)
    return [{"t": "Figure", "c": [tree.attr(label, ["effgen-table"]), [None, caption], body]}]


def _collect_local_images(blocks: list[Node], images: ImageStore, base_dir: Path, where: str) -> None:
    for node in tree.walk_nodes(blocks):
        if node["t"] != "Image":
            continue
        target = node["c"][2][0]
        if target.startswith((IMAGE_SCHEME, "data:")):
            continue
        if "://" in target:
            warnings.warn(f"{where}: image {target} is remote; the page will need the network to show it",
                          RenderWarning, stacklevel=2)
            continue
        path = base_dir / target
        mime = mimetypes.guess_type(path.name)[0]
        if not path.is_file() or mime not in ("image/png", "image/svg+xml", "image/jpeg", "image/gif"):
            warnings.warn(f"{where}: image {target} not found (or not PNG/SVG/JPEG/GIF)", RenderWarning,
                          stacklevel=2)
            continue
        node["c"][2][0] = images.add(Image(mime, base64.b64encode(path.read_bytes()).decode("ascii")))


def _one_title(blocks: list[Node], fallback_title: str) -> str:
    """Keep the first level-1 heading as the title; later ones become sections; add one if missing."""
    title: str | None = None
    for node in tree.walk_nodes(blocks):
        if node["t"] == "Header" and node["c"][0] == 1:
            if title is None:
                title = tree.stringify(node["c"][2])
            else:
                node["c"][0] = 2
    if title is None:
        title = fallback_title
        blocks.insert(0, {"t": "Header", "c": [1, tree.attr(), tree.text_inlines(title)]})
    return title
