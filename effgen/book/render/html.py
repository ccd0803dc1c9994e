"""Write the HTML book: one self-contained page per chapter with a chapter sidebar, TOC and prev/next.

Pandoc writes each page's body as a fragment (MathML for maths, citeproc for citations); the page
around it is ``assets/page.html`` with ``assets/book.css`` inlined and images as data URIs, so the
folder works from file:// with no network.
"""
from __future__ import annotations

import copy
import html
import posixpath
import re
from concurrent.futures import ThreadPoolExecutor
from importlib.resources import files
from pathlib import Path
from string import Template

from effgen.book.render import tree
from effgen.book.render.book import Book, Chapter, document, workers
from effgen.book.render.crossref import Section, Target, resolve_references
from effgen.book.render.ipynb import CODE_FOLD_CLASS, IMAGE_SCHEME
from effgen.book.render.pandoc import ast_to
from effgen.book.render.tree import Node

OUTPUT_CLASSES = ("cell-output", "cell-stderr", "cell-error")
_IMAGE_SRC = re.compile(r'src="(' + re.escape(IMAGE_SCHEME) + r'\d+)"')


def write_html(book: Book, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    assets = files("effgen.book.render") / "assets"
    template = Template((assets / "page.html").read_text(encoding="utf-8"))
    css = (assets / "book.css").read_text(encoding="utf-8")
    with ThreadPoolExecutor(max_workers=workers()) as pool:
        bodies = list(pool.map(lambda ch: _body(book, ch), book.chapters))
    for chapter, body in zip(book.chapters, bodies):
        page = template.substitute(
            page_title=html.escape(_page_title(book, chapter)),
            css=css,
            book_href=html.escape(_relative(chapter, book.chapters[0].html_name)),
            book_title=html.escape(book.config.title),
            chapter_list=_sidebar(book, chapter),
            title_block=_title_block(book) if chapter.page == 0 else "",
            body=body,
            page_nav=_page_nav(book, chapter),
            toc=_toc(chapter.sections),
        )
        path = out_dir / chapter.html_name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
    index = out_dir / "index.html"
    if book.chapters[0].html_name != "index.html":  # Quarto's first page is always index.html
        index.write_text(_redirect(book.chapters[0].html_name), encoding="utf-8")
    return index


def _body(book: Book, chapter: Chapter) -> str:
    blocks = copy.deepcopy(chapter.blocks)
    numbers = {s.ident: s.number for s in chapter.sections if s.number}
    resolve_references(blocks, book.registry, lambda t: _href(book, chapter, t), chapter.source)
    tree.map_block_lists(blocks, lambda bs: [_decorate(b, book, numbers) for b in bs])
    _link_pages(blocks, book, chapter)
    if book.config.bibliography is not None and _cites(blocks):
        # The chapter's own reference list, under a section heading rather than a second title.
        blocks += [{"t": "Header", "c": [2, tree.attr("references", ["unnumbered"]), tree.text_inlines("References")]},
                   tree.div(tree.attr("refs"), [])]
    fragment = ast_to("html", document(blocks, chapter.api_version), chapter.source, book.config.bibliography,
                      extra=["--mathml"], references_title=False)

    def embed(match: re.Match[str]) -> str:
        image = book.images.get(match.group(1))
        return f'src="{image.data_uri()}"' if image else match.group(0)

    return _IMAGE_SRC.sub(embed, fragment)


def _link_pages(blocks: list[Node], book: Book, here: Chapter) -> None:
    """Links to another chapter's source (``02-beta.ipynb#x``) point at its page, as in Quarto."""
    pages = {chapter.source: chapter.html_name for chapter in book.chapters}
    base = posixpath.dirname(here.source)
    for node in tree.walk_nodes(blocks):
        if node["t"] == "Link" and "://" not in node["c"][2][0]:
            path, hash_, anchor = node["c"][2][0].partition("#")
            source = posixpath.normpath(posixpath.join(base, path)) if path else ""
            if source in pages:
                node["c"][2][0] = _relative(here, pages[source]) + hash_ + anchor


def _cites(blocks: list[Node]) -> bool:
    return any(node["t"] == "Cite" for node in tree.walk_nodes(blocks))


def _decorate(block: Node, book: Book, numbers: dict[str, str]) -> Node:
    """Section numbers before headings, "Figure 2.3:" before captions, output blocks unhighlighted,
    folded code as ``<details>``."""
    if block["t"] == "Div" and CODE_FOLD_CLASS in block["c"][0][1]:
        return _details(block)
    if block["t"] == "CodeBlock" and block["c"][0][1][:1] and block["c"][0][1][0] in OUTPUT_CLASSES:
        # Pandoc reads a code block's first class as its language, and looking up an unknown one
        # costs about a second per pandoc run; outputs need no highlighting, so move the class out.
        (ident, classes, kv), text = block["c"]
        return tree.div(tree.attr(ident, classes), [{"t": "CodeBlock", "c": [tree.attr("", [], kv), text]}])
    if block["t"] == "Header":
        number = numbers.get(block["c"][1][0])
        if number:
            block["c"][2] = [tree.span(tree.attr("", ["header-section-number"]), [{"t": "Str", "c": number}]),
                             {"t": "Space"}, *block["c"][2]]
    elif block["t"] in ("Figure", "Table"):
        target = book.registry.targets.get(block["c"][0][0])
        if target is not None and target.kind in ("fig", "tbl"):
            caption = block["c"][1][1]
            label = tree.span(tree.attr("", ["caption-number"]), tree.text_inlines(target.reference_text() + ":"))
            if caption and caption[0]["t"] in ("Plain", "Para"):
                caption[0]["c"] = [label, {"t": "Space"}, *caption[0]["c"]]
            else:
                caption.insert(0, tree.plain([label]))
    return block


def _details(block: Node) -> Node:
    """A folded code cell: closed (or open, for ``code-fold: show``) behind its one-line summary."""
    (ident, _classes, kv), content = block["c"]
    values = dict(kv)
    opened = " open" if values.get("open") == "true" else ""
    summary = html.escape(values.get("summary", "Code"))
    return tree.div(tree.attr(ident, ["code-fold"]), [
        tree.raw_block("html", f'<details class="code-fold"{opened}><summary>{summary}</summary>'),
        *content,
        tree.raw_block("html", "</details>"),
    ])


def _href(book: Book, here: Chapter, target: Target) -> str:
    there = book.chapters[target.page]
    page = "" if there is here else _relative(here, there.html_name)
    return f"{page}#{target.label}"


def _relative(here: Chapter, name: str) -> str:
    return posixpath.relpath(name, posixpath.dirname(here.html_name) or ".")


def _chapter_label(chapter: Chapter) -> str:
    number = f'<span class="chapter-number">{chapter.number}</span> ' if chapter.number is not None else ""
    return f"{number}<span class=\"chapter-title\">{html.escape(chapter.title)}</span>"


def _sidebar(book: Book, here: Chapter) -> str:
    items = []
    for chapter in book.chapters:
        active = ' class="active" aria-current="page"' if chapter is here else ""
        note = ' <span class="not-executed" title="not executed in this build">not executed</span>' \
            if not chapter.executed else ""
        items.append(f'<li><a href="{html.escape(_relative(here, chapter.html_name))}"{active}>'
                     f"{_chapter_label(chapter)}</a>{note}</li>")
    return "\n".join(items)


def _page_nav(book: Book, here: Chapter) -> str:
    parts = []
    if here.page > 0:
        prev = book.chapters[here.page - 1]
        parts.append(f'<a class="prev" rel="prev" href="{html.escape(_relative(here, prev.html_name))}">'
                     f'<span class="nav-dir">← Previous</span>{_chapter_label(prev)}</a>')
    else:
        parts.append("<span></span>")
    if here.page + 1 < len(book.chapters):
        nxt = book.chapters[here.page + 1]
        parts.append(f'<a class="next" rel="next" href="{html.escape(_relative(here, nxt.html_name))}">'
                     f'<span class="nav-dir">Next →</span>{_chapter_label(nxt)}</a>')
    return f'<nav class="page-nav" aria-label="Previous and next chapter">{"".join(parts)}</nav>'


def _toc(sections: list[Section]) -> str:
    entries = [s for s in sections if s.level in (2, 3) and s.ident]
    if not entries:
        return ""
    items = "\n".join(
        f'<li class="toc-level-{s.level}"><a href="#{html.escape(s.ident)}">'
        f'{html.escape(s.number + " ") if s.number else ""}{html.escape(s.title)}</a></li>' for s in entries)
    return f'<h2>On this page</h2>\n<ul>\n{items}\n</ul>'


def _title_block(book: Book) -> str:
    config = book.config
    subtitle = f'<p class="subtitle">{html.escape(config.subtitle)}</p>' if config.subtitle else ""
    author = f'<p class="author">{html.escape(config.author)}</p>' if config.author else ""
    return (f'<header class="book-title"><h1 class="title">{html.escape(config.title)}</h1>{subtitle}'
            f'{author}<p class="date">{html.escape(config.date)}</p></header>')


def _page_title(book: Book, chapter: Chapter) -> str:
    if chapter.page == 0:
        return book.config.title
    number = f"{chapter.number} " if chapter.number is not None else ""
    return f"{number}{chapter.title} – {book.config.title}"


def _redirect(target: str) -> str:
    href = html.escape(target)
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="0; url={href}">'
            f'</head><body><a href="{href}">{href}</a></body></html>')
