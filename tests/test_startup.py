"""Start-up cost: ``effgen --help`` and each command's --help never import torch (about 2 s)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_python(code: str) -> str:
    """What ``code`` prints, run in a fresh interpreter from the project root."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parent.parent).stdout


def test_cli_help_does_not_import_torch() -> None:
    """``effgen --help`` and every command's --help stay fast: torch is imported only by the work itself."""
    code = ("import sys, contextlib, io\n"
            "from effgen.commands import build_parser\n"
            "parser = build_parser()\n"
            "for argv in (['--help'], ['fid', '--help'], ['data', 'addnist', '--help'], ['train', 'gan', '--help']):\n"
            "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "        parser.parse_args(argv)\n"
            "heavy = sorted(m for m in ('torch', 'torchvision', 'pandas') if m in sys.modules)\n"
            "print(','.join(heavy))\n")
    assert run_python(code).strip() == ""


def test_reading_a_notebook_skips_the_iri_grammars() -> None:
    """Reading a notebook, as `effgen run` and `effgen tune` do, leaves out jsonschema's IRI checker (about 40
    grammars compiled at import, 1-3 s per process), and the notebook still validates against its schema."""
    code = ("import sys\n"
            "from pathlib import Path\n"
            "from effgen.book.notebook_file import read_notebook\n"
            "notebook = read_notebook(Path('chapters/00-data.ipynb'))\n"
            "import nbformat\n"
            "nbformat.validate(notebook)\n"
            "print(len(notebook.cells) > 0, sys.modules.get('rfc3987_syntax', 'absent'))\n")
    assert run_python(code).split() == ["True", "None"]
