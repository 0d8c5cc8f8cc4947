"""The notebooks in ``notebooks/`` run top to bottom (small-data mode) and are committed clean.

Each notebook runs in a fresh kernel whose working directory is a temporary folder (its outputs
go there, not into the repository), with ``TFKWS_NOTEBOOK_FAST=1`` (tiny data, 1-2 epochs) and
``PYTHONPATH`` led by this checkout, so the kernel imports the tfkws under test.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
ANSI = re.compile(r"\x1b\[[0-9;]*m")
CELL_TIMEOUT_S = 900  # per cell; a fast-mode notebook takes about a minute in all


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def test_the_notebooks_exist() -> None:
    names = {p.name for p in NOTEBOOKS}
    assert {"quickstart.ipynb", "slimmable.ipynb", "repcnn.ipynb", "qat_vs_ptq.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_clean(path: Path) -> None:
    """No outputs or execution counts in git; the first code cell is the tagged parameter cell
    with the FAST switch the test relies on."""
    nb = _read(path)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    dirty = [i for i, c in enumerate(nb.cells) if c.get("outputs") or c.get("execution_count")]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; strip them before committing"
    assert code and "parameters" in code[0].metadata.get("tags", []), (
        f"{path.name}: the first code cell must carry the 'parameters' tag"
    )
    assert "TFKWS_NOTEBOOK_FAST" in code[0].source, f"{path.name}: no FAST switch"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TFKWS_NOTEBOOK_FAST", "1")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    nb = _read(path)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    failure = None
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError) as err:
        failure = ANSI.sub("", str(err))  # the failing cell's source and traceback
    if failure:
        pytest.fail(f"{path.name}: {failure}", pytrace=False)
    assert any(tmp_path.iterdir()), f"{path.name}: wrote nothing into its working directory"
