"""Execute every notebook in notebooks/ and check that no cell fails and the pictures appear.

To refresh the outputs stored in the notebooks after changing them: python tests/test_notebooks.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import need

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

# What each notebook must show: kinds of pictures, and text its outputs must contain.
EXPECTED: dict[str, dict[str, Any]] = {
    "01_derivative_of_a_simple_function.ipynb": {"images": {"image/png": 2}, "text": ["20.0", "14.0"]},
    "02_value_and_manual_backprop.ipynb": {
        "images": {"image/svg+xml": 2},
        "text": ["-7.286496"],
        "explorers": 1,
    },
    "03_backward_and_a_neuron.ipynb": {
        "images": {"image/svg+xml": 4},
        "text": ["'w1': 1.0", "2.0"],
        "explorers": 1,
    },
    "04_the_course_variable_api.ipynb": {
        "images": {"image/svg+xml": 1},
        "text": [
            "Result = 20",
            "Value: 4, Gradient: 11.0",
            "Second time: 22.0 8.0",
            "After zeroing: 11.0 4.0",
            "a ** b: 48.0 88.722839111673",
            "exp(16 / a): -54.59815003314423",
            "645.1200000000001",
        ],
    },
    "05_checking_gradients_three_ways.ipynb": {
        "images": {"image/svg+xml": 1},
        "text": ["(-0.1875, -0.046875, 0.125)", "True"],
    },
    "06_your_own_operation.ipynb": {
        "images": {"image/svg+xml": 2},
        "text": [
            "8.0 cube 12.0",  # the hand-built cube's _backward, called by hand
            # the lecture's neuron, stepped through with _backward() node by node
            "x1.grad = -1.5\nw1.grad = 1.0\nx2.grad = 0.5\nw2.grad = 0.0",
            "7.194893834566 7.194893834566",  # hand-built and table ops mixed, against **
            "has no _backward: give it one",
            "by hand, a.grad = 1.0",  # the seeds' `=` bug, stepped by hand
            "with '=' (it set it to 1.0): write '+=' instead",  # ... and caught by backward()
            "a.grad is still 0.0",
            "12.0 12.0 6.0",  # grad(grad(grad(cube))) made with defop
            "its _backward works on numbers, so its gradient cannot be differentiated again",
            "True True",  # compiled on a numpy batch, against eager
            "[ 3.   12.    0.75]",  # on a Tensor
            "compile: node (op 'cube') was built by hand with its own _backward",
        ],
    },
}


def execute(path: Path) -> Any:
    """Run a notebook top to bottom in a fresh python3 kernel; return it with its outputs."""
    nbformat = need("nbformat")
    nbclient = need("nbclient")
    need("ipykernel")
    book = nbformat.read(path, as_version=4)
    for cell in book.cells:
        cell.metadata.pop("execution", None)  # timestamps from an older run
    client = nbclient.NotebookClient(
        book,
        timeout=120,
        kernel_name="python3",
        record_timing=False,  # keeps the stored notebooks free of timestamps
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
    return book


def outputs(book: Any) -> list[dict[str, Any]]:
    return [output for cell in book.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]


def output_text(book: Any) -> str:
    """All text a notebook shows: each cell's stdout and stderr as printed, then its results.

    A kernel may split one `print` into several stream messages (ipykernel flushes on a timer, so on
    a loaded machine "12.0 12.0 6.0" can arrive as "12.0 12.0" and " 6.0"). The pieces of one stream
    are joined as they were written, with nothing in between, as Jupyter shows them; only separate
    kinds of output are separated by a newline.
    """
    parts = []
    for cell in book.cells:
        if cell.cell_type != "code":
            continue
        streams: dict[str, list[str]] = {}
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                streams.setdefault(output.get("name", "stdout"), []).append(output.get("text", ""))
            elif "data" in output and "text/plain" in output["data"]:
                parts.append(output["data"]["text/plain"])
        parts.extend("".join(pieces) for pieces in streams.values())
    return "\n".join(parts)


def test_output_text_does_not_depend_on_how_the_kernel_splits_a_stream() -> None:
    nbformat = need("nbformat")
    one_print = ["12.0 12.0 6.0\nx1.grad = -1.5\n"]
    split = ["12.0 12", ".0", " 6.0\nx1.grad", " = -1.5\n"]
    texts = []
    for pieces in (one_print, split):
        cell = nbformat.v4.new_code_cell("print(...)")
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=t) for t in pieces]
        cell.outputs.insert(1, nbformat.v4.new_output("stream", name="stderr", text="a warning\n"))
        texts.append(output_text(nbformat.v4.new_notebook(cells=[cell])))
    assert texts[0] == texts[1]
    assert "12.0 12.0 6.0\nx1.grad = -1.5" in texts[1] and "a warning" in texts[1]


def test_every_notebook_is_checked() -> None:
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs_and_shows_its_pictures(name: str) -> None:
    need("graphviz")
    need("matplotlib")
    start = time.perf_counter()
    book = execute(NOTEBOOKS / name)
    elapsed = time.perf_counter() - start
    all_outputs = outputs(book)
    assert not [o for o in all_outputs if o.get("output_type") == "error"]
    # a picture that failed to render shows up as a stderr traceback from the display formatter
    stderr = "".join(o.get("text", "") for o in all_outputs if o.get("name") == "stderr")
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    for mime, count in EXPECTED[name]["images"].items():
        found = [o["data"][mime] for o in all_outputs if mime in o.get("data", {})]
        assert len(found) == count, f"{name}: {len(found)} {mime} pictures, expected {count}"
        if mime == "image/svg+xml":
            assert all("<svg" in svg and "data " in svg for svg in found)  # drawn records, not blank
    # `explore(...)` shows its page inline: an iframe holding the page, graph and records included
    html = [o.get("data", {}).get("text/html", "") for o in all_outputs]
    pages = [page for page in html if "srcdoc=" in page]
    assert len(pages) == EXPECTED[name].get("explorers", 0)
    assert all("&lt;svg" in page and "cr-data" in page for page in pages)
    text = output_text(book)
    for expected in EXPECTED[name]["text"]:
        assert expected in text, f"{name}: {expected!r} not in the outputs"
    assert elapsed < 60  # each takes a few seconds; generous for a loaded CI machine


def test_committed_notebooks_hold_their_pictures() -> None:
    """The notebooks in git are stored executed, so the pictures show on GitHub without running them."""
    nbformat = need("nbformat")
    for name, expected in EXPECTED.items():
        book = nbformat.read(NOTEBOOKS / name, as_version=4)
        for mime in expected["images"]:
            assert any(mime in o.get("data", {}) for o in outputs(book)), f"{name} is stored without {mime}"


if __name__ == "__main__":  # refresh the stored outputs
    import nbformat

    for notebook in sorted(NOTEBOOKS.glob("*.ipynb")):
        started = time.perf_counter()
        nbformat.write(execute(notebook), notebook)
        print(f"{notebook.name}: {time.perf_counter() - started:.1f} s")
    sys.exit(0)
