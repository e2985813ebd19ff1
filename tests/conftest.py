import os
os.environ.setdefault("MPLBACKEND", "Agg")
import numpy as np, pytest, torch

@pytest.fixture(autouse=True)
def _seed():
    "Every test starts from the same random state."
    torch.manual_seed(0); np.random.seed(0)
