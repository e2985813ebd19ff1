import os
os.environ.setdefault("MPLBACKEND", "Agg")
import numpy as np, pytest, torch

@pytest.fixture(autouse=True)
def _seed():
    "Every test starts from the same random state."
    torch.manual_seed(0); np.random.seed(0)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    "A tiny synthetic-voice corpus (dfnb-make-corpus, 0.3 min per split): what the trainer tests train on."
    from dfnb.corpus import make_corpus
    return make_corpus(tmp_path_factory.mktemp("cli") / "corpus", minutes=0.3, sources=("synth",), noise_minutes=0.1,
                       n_rirs=2, progress=lambda m: None)
