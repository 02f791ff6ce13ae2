"""The notebooks run top to bottom (code cells executed in order, in a scratch folder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def run_notebook(notebook: Path) -> dict:
    namespace: dict = {}
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), notebook.name, "exec"), namespace)
    return namespace


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("HEATENGINE_BENCH_SIZES", "20000,40000")
    monkeypatch.setenv("HEATENGINE_STREAM_SIZES", "30000,60000")
    return tmp_path


def test_quickstart_notebook(scratch):
    run_notebook(Path(__file__).parent.parent / "notebooks" / "quickstart.ipynb")
    assert (scratch / "quickstart-output" / "checkout-ios.png").stat().st_size > 10_000


def test_benchmarks_notebook(scratch):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    namespace = run_notebook(Path(__file__).parent.parent / "notebooks" / "benchmarks.ipynb")
    plt.close("all")
    results = namespace["results"]
    assert set(results["taps"]) == {20000, 40000}
    assert "heatengine" in set(results["tool"])
    streamed = namespace["streamed"]
    assert set(streamed["taps"]) == {30000, 60000}
    assert set(streamed["tool"]) == {"heatengine --streaming", "polars streaming engine"}


def test_every_notebook_is_tested():
    names = {p.name for p in NOTEBOOKS}
    assert names == {"quickstart.ipynb", "benchmarks.ipynb"}
