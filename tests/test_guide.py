"""The DeepFilterNet4 migration guide's calls, as written (with `dfnb` for `df`): its "New APIs" table imports from
`dfnb.dfnet4`, each name the very object of the module that defines it, without importing those modules early;
its ASR-loss and Whisper-adapter snippets."""
import subprocess, sys

GUIDE = ["DfNet4Config", "DfNet4", "DfNet4Lite", "DfNet4Discriminator", "MambaBlock", "HybridEncoder", "prepare_qat",
         "DistillationLoss", "SpectralLoss", "MaskLoss", "LSNRLoss"]
HOMES = {"DfNet4Discriminator": "dfnb.discriminators", "MambaBlock": "dfnb.mamba", "prepare_qat": "dfnb.quantize",
         "DistillationLoss": "dfnb.distill", "SpectralLoss": "dfnb.losses", "MaskLoss": "dfnb.losses", "LSNRLoss": "dfnb.losses"}


def test_new_apis_table_imports_from_dfnet4():
    import importlib
    import dfnb.dfnet4 as m
    got = {n: getattr(m, n) for n in GUIDE}
    for n, home in HOMES.items():
        assert got[n] is getattr(importlib.import_module(home), n), n
    assert set(GUIDE) <= set(dir(m))


def test_importing_dfnet4_imports_no_training_module():
    code = ("import sys, dfnb.dfnet4; bad = [m for m in ('dfnb.distill', 'dfnb.quantize', 'dfnb.discriminators', 'dfnb.losses') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_asr_snippets():
    from dfnb.losses import ASRLoss                          # "from df.loss import ASRLoss"
    from dfnb.whisper_adapter import get_whisper_backend, is_apple_silicon
    assert callable(ASRLoss) and callable(get_whisper_backend) and isinstance(is_apple_silicon(), bool)
