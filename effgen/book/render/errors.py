"""What the renderer raises and warns.

``RenderError`` is an ``EffgenError`` so the CLI prints it as one line. Problems that still leave a
readable book (an unresolved cross-reference, a citation missing from the bibliography) are
``RenderWarning``s instead: the page shows ``?@fig-x`` like Quarto and the build goes on.
"""
from __future__ import annotations

from effgen.errors import EffgenError


class RenderError(EffgenError):
    """The book cannot be rendered: bad _quarto.yml, a missing chapter, a pandoc or Typst failure."""


class RenderWarning(UserWarning):
    """The book rendered, but something in it needs the author's attention."""
