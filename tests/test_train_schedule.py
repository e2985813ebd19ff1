"""dfnb.train's learning-rate and weight-decay curves against DeepFilterNet's own `df.lr.cosine_scheduler` (the
deepfilternet wheel, importable beside our torch through the stand-in torchaudio of tests/_stubs)."""
import importlib, importlib.util, sys
from pathlib import Path
import numpy as np, pytest
from dfnb.train import cosine_at

if importlib.util.find_spec("df") is None:
    pytest.skip("deepfilternet is not installed: pip install --no-deps deepfilternet==0.5.6 loguru", allow_module_level=True)
try: importlib.import_module("torchaudio")
except Exception: sys.path.insert(0, str(Path(__file__).parent / "_stubs")); sys.modules.pop("torchaudio", None)
lr = importlib.import_module("df.lr")

@pytest.mark.parametrize("epochs,per_ep,warm,start", [(10, 37, 3, 1e-4), (120, 75, 3, 1e-4), (5, 11, 0, 0.0), (7, 1, 2, 1e-5)])
def test_lr_schedule_equals_deepfilternet(epochs, per_ep, warm, start):
    ref = lr.cosine_scheduler(1e-3, 1e-6, epochs=epochs, niter_per_ep=per_ep, warmup_epochs=warm, start_warmup_value=start)
    ours = np.array([cosine_at(t, 1e-3, 1e-6, epochs * per_ep, warm * per_ep, start) for t in range(epochs * per_ep)])
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-18)

def test_weight_decay_schedule_equals_deepfilternet():
    ref = lr.cosine_scheduler(1e-12, 0.01, niter_per_ep=75, epochs=120)
    ours = np.array([cosine_at(t, 1e-12, 0.01, 9000) for t in range(9000)])
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-18)
