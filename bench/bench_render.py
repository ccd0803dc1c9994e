"""Time render_book on a synthetic book shaped like the real one: index + 6 chapters, 30 PNG figures."""
import base64, io, shutil, sys, time, warnings
from pathlib import Path
import matplotlib
matplotlib.use("agg")
import matplotlib.pyplot as plt
import numpy as np
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from effgen.render import render_book

root = Path(sys.argv[1]); shutil.rmtree(root, ignore_errors=True); (root / "chapters").mkdir(parents=True)
shutil.copy("/work/main/references.bib", root)
names = ["index.ipynb"] + [f"chapters/0{i}-ch{i}.ipynb" for i in range(6)]
(root / "_quarto.yml").write_text("book:\n  title: Bench\n  chapters:\n" + "".join(f"    - {n}\n" for n in names)
                                  + "bibliography: references.bib\nexecute:\n  warning: false\n")
rng = np.random.default_rng(0)
def png():
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    for _ in range(3): ax.plot(rng.normal(size=200).cumsum())
    ax.set_title("training curve"); buf = io.BytesIO(); fig.savefig(buf, format="png"); plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()
table = "| a | b | c |\n|---|--:|--:|\n" + "".join(f"| r{i} | {i} | {i*i} |\n" for i in range(12))
for c, name in enumerate(names):
    cells = [new_markdown_cell(f"# Chapter {c} {{#sec-c{c}}}\n\nIntro citing [@farmer2024efficient] and $x^2$.")]
    cells.append(new_code_cell("#| echo: false\nchapter.provenance_callout(data)", outputs=[new_output(
        "execute_result", data={"text/markdown": "::: {.callout-note}\n## What produced this chapter\n- **Data:** x\n:::",
                                "text/plain": "<Markdown>"}, execution_count=1)]))
    for f in range(5 if c else 0):
        cells.append(new_markdown_cell(f"## Part {f}\n\nSee @fig-c{c}-{f} and @tbl-c{c}-{f}." + " Lorem ipsum dolor." * 30))
        cells.append(new_code_cell(f"#| label: fig-c{c}-{f}\n#| fig-cap: \"Curve {f}\"\nplot()", outputs=[new_output(
            "display_data", data={"image/png": png(), "text/plain": "<Figure>"})]))
        cells.append(new_code_cell(f"#| label: tbl-c{c}-{f}\n#| tbl-cap: \"Table {f}\"\nshow()", outputs=[new_output(
            "execute_result", data={"text/markdown": table, "text/plain": "x"}, execution_count=2)]))
        cells.append(new_code_cell("for step in range(10):\n    print(step)", outputs=[new_output("stream", name="stdout", text="0\n1\n2\n")]))
    nbformat.write(new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "P"}}), root / name)
print("figures:", 5 * 6, "notebook bytes:", sum((root / n).stat().st_size for n in names))
warnings.simplefilter("ignore")
for run in range(2):
    t = time.perf_counter()
    out = render_book(root, root, root / "_build" / "book", engine="offline")
    print(f"run {run}: render_book html+pdf {time.perf_counter() - t:.2f} s", {k: v.stat().st_size for k, v in out.items()})
