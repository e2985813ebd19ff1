"""The notebooks' `cuda`-flagged cells, run on the CPU.

`nbdev-test` skips cells tagged `#| cuda` unless asked for them, so on a machine without a GPU nothing ever runs
them and a name they use but nobody defines only fails on the first GPU machine. These cells pick
`device = "cuda" if torch.cuda.is_available() else "cpu"`, so they run anywhere: this test executes each listed
notebook whole, in one namespace (as `nbdev-test` does) with the `cuda` cells forced on.
"""
import json
from pathlib import Path
import pytest
from nbdev.test import test_nb as run_nb

NBS = Path(__file__).resolve().parents[1] / "nbs"
NOTEBOOKS = ["10_mamba_scan.ipynb"]


def cuda_cells(fn):
    "Sources of the cells flagged `#| cuda` in notebook `fn`."
    cells = json.loads(fn.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code" and "".join(c["source"]).lstrip().startswith("#| cuda")]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_cuda_cells_run_on_cpu(name):
    fn = NBS / name
    cells = cuda_cells(fn)
    assert cells, f"{name} has no `#| cuda` cell"
    for src in cells:                      # the cell chooses its device, so it can run without a GPU
        assert 'device = "cuda" if torch.cuda.is_available() else "cpu"' in src
    ok, _ = run_nb(fn, force_flags=["cuda"], showerr=True)
    assert ok, f"{name}: a cell failed with the `cuda` cells forced on (traceback above)"
