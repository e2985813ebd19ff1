"""Bad input, as a hostile but realistic user gives it: each test is a row of the robustness issue's table
(layouts, dtypes, attenuation limits, model arguments, poisoned streams, stateless graphs, configurations)."""
import os, signal, subprocess, sys, time, warnings
from pathlib import Path
import soundfile as sf
import numpy as np, pytest, torch
from dfnb.enhance import init_df, enhance
from dfnb.onnx import export_dfn3
from dfnb.streaming import StreamingEnhancer
from dfnb.signals import speech_like, pink_noise, mix_at_snr

@pytest.fixture(scope="module")
def dfn3():
    return init_df()

@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("robust") / "dfn3"
    export_dfn3(d, graphs=("combined", "full", "stateless"))
    return d

@pytest.fixture(scope="module")
def noisy():
    clean = speech_like(1.0, seed=5)
    return np.asarray(mix_at_snr(clean, pink_noise(len(clean), seed=6), 5)[0], np.float32)

# ---------------------------------------------------------------- enhance(): layouts and dtypes
def test_samples_channels_layout_is_refused_with_a_hint(dfn3):
    m, st, _ = dfn3
    for shape in ((4800, 1), (48000, 2)):
        with pytest.raises(ValueError, match=r"looks like \[samples, channels\].*audio\.T"): enhance(m, st, np.zeros(shape, np.float32))
    with pytest.raises(ValueError, match="at most 64 channels"): enhance(m, st, np.zeros((100, 200), np.float32))

def test_int_pcm_is_scaled_like_soundfile(dfn3, noisy):
    m, st, _ = dfn3
    x = noisy[:24000]
    ref = enhance(m, st, np.round(x * 32767).astype(np.int16).astype(np.float32) / 32768)
    y16 = enhance(m, st, np.round(x * 32767).astype(np.int16))
    assert y16.dtype == np.float32 and np.abs(y16 - ref).max() < 1e-6
    y32 = enhance(m, st, (x.astype(np.float64) * 2**31).clip(-2**31, 2**31 - 1).astype(np.int32))
    assert np.abs(y32 - enhance(m, st, x)).max() < 1e-4

@pytest.mark.parametrize("dtype", [bool, np.complex64, np.int64])
def test_bool_complex_int64_refused(dfn3, dtype):
    m, st, _ = dfn3
    with pytest.raises(TypeError, match="dtype"): enhance(m, st, np.zeros(4800, dtype))
    with pytest.raises(TypeError, match="dtype"): enhance(m, st, torch.zeros(4800, dtype=torch.bool if dtype is bool else torch.complex64))

@pytest.mark.parametrize("lim", [-6, float("nan"), float("inf"), "6"])
def test_bad_atten_lim(dfn3, lim):
    m, st, _ = dfn3
    with pytest.raises((ValueError, TypeError), match="atten_lim_db"): enhance(m, st, np.zeros(4800, np.float32), atten_lim_db=lim)

def test_cli_negative_atten_lim(tmp_path, capsys):
    from dfnb.enhance import enhance_cli
    with pytest.raises(SystemExit) as e: enhance_cli(["--demo", "-o", str(tmp_path), "--atten-lim", "-6"])
    assert e.value.code == 2 and ">= 0" in capsys.readouterr().err

@pytest.mark.parametrize("arg, exc, msg", [(123, TypeError, "got int 123"), ("", ValueError, "empty string"),
                                           ("   ", ValueError, "empty string"), (3.5, TypeError, "got float")])
def test_init_df_bad_arguments(arg, exc, msg):
    with pytest.raises(exc, match=msg): init_df(arg)

def test_init_df_none_is_the_default_model():
    "As DeepFilterNet's `init_df(model_base_dir=None)`: the default model."
    assert type(init_df(None)[0]).__name__ == "DfNet3"

# ---------------------------------------------------------------- the streaming runtime
def test_one_nan_frame_heals(model_dir, noisy):
    """A NaN (or inf) sample is replaced by 0 and counted: the next frames are finite and equal to a stream that saw
    zeros there instead; the first time warns."""
    hops = noisy[: 60 * 480].reshape(-1, 480).copy()
    bad = hops.copy(); bad[20, 100] = np.nan; bad[20, 200] = np.inf
    ref_in = hops.copy(); ref_in[20, 100] = 0; ref_in[20, 200] = 0
    for graph in ("full", "combined"):
        se, ref = StreamingEnhancer(model_dir, graph=graph), StreamingEnhancer(model_dir, graph=graph)
        with pytest.warns(RuntimeWarning, match="NaN/inf input samples replaced by 0"):
            y = np.stack([se.process_frame(h) for h in bad])
        y_ref = np.stack([ref.process_frame(h) for h in ref_in])
        assert np.isfinite(y).all() and np.array_equal(y, y_ref) and se.nonfinite_samples == 2, graph

def test_huge_sample_restarts_the_stream(model_dir, noisy):
    "A finite but absurd sample (1e30) would make the state inf: the stream restarts, warns once, and stays finite."
    hops = noisy[: 40 * 480].reshape(-1, 480).copy(); hops[10, 5] = 1e30
    se = StreamingEnhancer(model_dir)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        y = np.stack([se.process_frame(h) for h in hops])
    assert np.isfinite(y).all() and se.state_resets >= 1
    assert all(np.isfinite(v).all() for st in se.states.values() for v in st.values())
    assert sum("restarted" in str(x.message) for x in w) == 1
    assert np.abs(y[30:]).max() > 0                                      # it keeps enhancing afterwards

def test_int16_into_process_frame(model_dir, noisy):
    x = np.round(noisy[: 20 * 480] * 32767).astype(np.int16)
    a, b = StreamingEnhancer(model_dir), StreamingEnhancer(model_dir)
    ya = np.concatenate([a.process_frame(h) for h in x.reshape(-1, 480)])
    yb = np.concatenate([b.process_frame(h) for h in (x.astype(np.float32) / 32768).reshape(-1, 480)])
    assert np.array_equal(ya, yb)
    with pytest.raises(TypeError, match="dtype bool"): a.process_frame(np.zeros(480, bool))

def test_stateless_folder_refused_at_load(model_dir, tmp_path):
    with pytest.raises(ValueError, match="stateless sequence graph"): StreamingEnhancer(model_dir / "stateless", graph="combined")
    # a folder with only combined.onnx does not borrow its parent's front/back graphs
    import shutil
    d = tmp_path / "only_net"; d.mkdir()
    for f in ("combined.onnx", "config.ini"): shutil.copy(model_dir / f, d / f)
    with pytest.raises(ValueError, match="has no front.onnx, back.onnx"): StreamingEnhancer(d, graph="combined")
    # a stateless graph named full.onnx fails at load, naming the missing inputs
    e = tmp_path / "fake_full"; e.mkdir()
    shutil.copy(model_dir / "stateless" / "combined.onnx", e / "full.onnx"); shutil.copy(model_dir / "config.ini", e / "config.ini")
    with pytest.raises(ValueError, match=r"full\.onnx lacks the inputs \['ana_mem0'"): StreamingEnhancer(e)

def test_stream_bad_atten_lim(model_dir):
    for v in (-3, float("nan")):
        with pytest.raises(ValueError, match="atten_lim_db"): StreamingEnhancer(model_dir, atten_lim_db=v)

# ---------------------------------------------------------------- configurations
@pytest.mark.parametrize("kw, msg", [(dict(norm_tau=0), "norm_tau"), (dict(norm_tau=-1.0), "norm_tau"),
                                     (dict(norm_tau=float("nan")), "norm_tau"), (dict(hop_size=320), "hop_size"),
                                     (dict(lsnr_max=float("inf")), "lsnr_max")])
def test_dfnet4_config_refuses_at_construction(kw, msg):
    from dfnb.dfnet4 import DfNet4Config
    with pytest.raises(ValueError, match=f"DfNet4Config.{msg}"): DfNet4Config(**kw)

def test_dfnet4_config_is_immutable():
    import dataclasses
    from dfnb.dfnet4 import DfNet4Config
    c = DfNet4Config()
    with pytest.raises(dataclasses.FrozenInstanceError): c.norm_tau = 0
    assert c.replace(conv_ch=16).conv_ch == 16 and c.conv_ch == 64
    with pytest.raises(ValueError, match="hop_size"): c.replace(hop_size=320)

# ---------------------------------------------------------------- the model cache
def test_corrupt_cache_is_extracted_again(tmp_path, monkeypatch):
    "A damaged file in $DFNB_CACHE is detected (size and SHA-256 against the manifest) and re-extracted, with a warning."
    from dfnb.official import official_model_dir, onnx_sessions
    monkeypatch.setenv("DFNB_CACHE", str(tmp_path))
    d = official_model_dir()
    assert d.parent == tmp_path and (d / "dfnb_manifest.json").is_file()
    good = (d / "enc.onnx").read_bytes()
    (d / "enc.onnx").write_bytes(good[: len(good) // 3])                 # truncated, like a full disk would leave it
    with pytest.warns(RuntimeWarning, match="not intact .*enc.onnx"):
        d2 = official_model_dir()
    assert (d2 / "enc.onnx").read_bytes() == good and onnx_sessions(d2)
    (d / "df_dec.onnx").write_bytes(b"\x00" * (d / "df_dec.onnx").stat().st_size)   # same size, other bytes
    with pytest.warns(RuntimeWarning, match="df_dec.onnx differs"):
        official_model_dir()
    m, _, _ = init_df()                                                 # and the model loads from the repaired cache
    assert type(m).__name__ == "DfNet3"

# ---------------------------------------------------------------- dfnb-export-onnx
def test_export_cli_one_line_errors(tmp_path, capsys):
    from dfnb.onnx import export_cli
    f = tmp_path / "afile"; f.write_text("x")
    assert export_cli(["dfnet3", "-o", str(f), "--graphs", "combined"]) == 2
    err = capsys.readouterr().err
    assert "exists and is not a directory" in err and err.count("\n") == 1 and "Traceback" not in err
    ro = tmp_path / "ro"; ro.mkdir(); os.chmod(ro, 0o500)
    target = ro / "x" if not os.access(ro, os.W_OK) else Path("/proc/self/dfnb_cannot_write_here")   # root writes anywhere else
    try:
        assert export_cli(["dfnet3", "-o", str(target), "--graphs", "combined"]) == 2
        err = capsys.readouterr().err
        assert "cannot write there" in err and err.count("\n") == 1 and "Traceback" not in err
    finally: os.chmod(ro, 0o700)

# ---------------------------------------------------------------- the selective scan
def _scan_args(L, requires_grad=False):
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g)
    return dict(u=r(2, 8, L).requires_grad_(requires_grad), delta=r(2, 8, L), A=-torch.rand(8, 4, generator=g), B=r(2, 4, L), C=r(2, 4, L))

def test_scan_in_place_change_before_backward_raises():
    """As torch's own ops do: an input the numba backward needs, changed in place between forward and backward, is an
    error (autograd's version counter), never a wrong gradient."""
    from dfnb.mamba import selective_scan
    for key in ("u", "delta"):
        a = _scan_args(16, True); a["delta"].requires_grad_(True)
        x = a[key] * 1.0; args = {**a, key: x}
        y = selective_scan(**args, delta_softplus=key == "u", backend="numba")
        x.mul_(2)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"): y.sum().backward()

def test_scan_double_backward_is_a_clear_error():
    from dfnb.mamba import selective_scan
    a = _scan_args(16, True)
    y = selective_scan(**a, backend="numba")
    with pytest.raises(RuntimeError, match="first derivatives only.*backend='torch'"): torch.autograd.grad(y.sum(), a["u"], create_graph=True)
    torch.autograd.grad(selective_scan(**a, backend="torch").sum(), a["u"], create_graph=True)   # the torch backend can

@pytest.mark.parametrize("backend", ["ref", "numba", "torch"])
def test_scan_empty_sequence(backend):
    from dfnb.mamba import selective_scan
    a = _scan_args(0, True)
    y, last = selective_scan(**a, D=torch.ones(8), z=torch.ones(2, 8, 0), return_last_state=True, backend=backend)
    assert y.shape == (2, 8, 0) and last.shape == (2, 8, 4) and not last.any()
    y.sum().backward(); assert a["u"].grad.shape == (2, 8, 0)

# ---------------------------------------------------------------- dfnb-enhance: files

def _write(path, seconds=2.0, sr=48000, channels=1, subtype="PCM_16", fmt=None):
    x = np.stack([speech_like(seconds, sr, seed=c + 1) * 0.5 for c in range(channels)], 1)
    sf.write(str(path), x, sr, subtype=subtype, format=fmt)
    return x

def _cli(*args, timeout=300):
    exe = Path(sys.executable).parent / "dfnb-enhance"
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=timeout)

def test_output_format_follows_the_extension(tmp_path):
    _write(tmp_path / "in.wav")
    from dfnb.enhance import enhance_cli
    assert enhance_cli([str(tmp_path / "in.wav"), "--output", str(tmp_path / "out.flac"), "-q"]) == 0
    assert sf.info(str(tmp_path / "out.flac")).format == "FLAC"
    _write(tmp_path / "in.mp3", fmt="MP3", subtype="MPEG_LAYER_III")
    assert enhance_cli([str(tmp_path / "in.mp3"), "--output", str(tmp_path / "x.wav"), "-q"]) == 0
    i = sf.info(str(tmp_path / "x.wav")); assert i.format == "WAV" and i.frames == sf.info(str(tmp_path / "in.mp3")).frames
    r = _cli(tmp_path / "in.wav", "--output", tmp_path / "out.xyz")
    assert r.returncode == 2 and "'.xyz' is not an audio format" in r.stderr and not (tmp_path / "out.xyz").exists()

def test_disk_full_leaves_no_file_under_the_final_name(tmp_path, monkeypatch, dfn3):
    "A write that fails half way (ENOSPC) leaves neither a file under the final name nor a temporary one."
    import errno
    from dfnb.enhance import enhance_file
    _write(tmp_path / "in.wav", seconds=25.0)
    calls = {"n": 0}; real = sf.SoundFile.write
    def failing(self, data):
        calls["n"] += 1
        if calls["n"] == 2: raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)
    monkeypatch.setattr(sf.SoundFile, "write", failing)
    m, st, _ = dfn3
    with pytest.raises(OSError, match="No space left"): enhance_file(m, st, tmp_path / "in.wav", tmp_path / "out.wav")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]

def test_sigint_leaves_nothing_and_exits_130(tmp_path):
    _write(tmp_path / "long.wav", seconds=60.0, channels=2)
    exe = Path(sys.executable).parent / "dfnb-enhance"
    for sig in (signal.SIGINT, signal.SIGTERM):
        p = subprocess.Popen([str(exe), str(tmp_path / "long.wav"), "-o", str(tmp_path / "out"), "-q"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        t0 = time.time()
        while not list((tmp_path / "out").glob(".*.part")) and time.time() - t0 < 120: time.sleep(0.05)
        time.sleep(0.5); p.send_signal(sig)
        out, err = p.communicate(timeout=120)
        assert p.returncode == 130, (sig, p.returncode, err)
        assert "Traceback" not in err and err.strip().count("\n") == 0 and "interrupted" in err
        assert list((tmp_path / "out").iterdir()) == []

def test_truncated_wav_warns(tmp_path):
    _write(tmp_path / "t.wav", seconds=2.0)
    b = (tmp_path / "t.wav").read_bytes(); (tmp_path / "t.wav").write_bytes(b[: len(b) // 2])   # header says 2 s
    r = _cli(tmp_path / "t.wav", "-o", tmp_path / "o", "-q")
    assert r.returncode == 0 and "warning" in r.stderr and "96000 frames" in r.stderr and "could be read" in r.stderr

def test_long_file_streams_equal_to_the_whole_signal(tmp_path, dfn3):
    "File in, file out, block by block (at 48 kHz: the same as enhance() on the whole signal), progress within the file."
    from dfnb.enhance import enhance_file
    m, st, _ = dfn3
    x = _write(tmp_path / "in.wav", seconds=23.3, channels=2, subtype="FLOAT")
    seen = []
    enhance_file(m, st, tmp_path / "in.wav", tmp_path / "out.wav", progress=seen.append, block_seconds=4.0)
    y, _ = sf.read(str(tmp_path / "out.wav"), dtype="float32", always_2d=True)
    ref = enhance(m, st, np.ascontiguousarray(x.T.astype(np.float32)), block_frames=None).T
    assert y.shape == x.shape and np.abs(y - ref).max() < 1e-4
    assert len(seen) == 6 and abs(sum(seen) - 23.3) < 1e-6
    x16 = _write(tmp_path / "in16.wav", seconds=7.7, sr=16000, subtype="FLOAT")
    enhance_file(m, st, tmp_path / "in16.wav", tmp_path / "out16.flac", block_seconds=2.0)
    i = sf.info(str(tmp_path / "out16.flac")); assert (i.samplerate, i.frames, i.format) == (16000, len(x16), "FLAC")

# ---------------------------------------------------------------- what deepFilter users expect of the command
def test_post_filter_equals_the_official_runtime(dfn3):
    "dfnb's post-filter (beta 0.02) against the official Rust runtime's own post-filter, same audio."
    from dfnb.official import OfficialRuntime
    from dfnb.metrics import snr
    from dfnb.signals import espeak
    m, st, _ = dfn3
    clean = espeak("The birch canoe slid on the smooth planks.")
    x = np.asarray(mix_at_snr(clean, pink_noise(len(clean), seed=0), 5)[0], np.float32) * 0.5
    with OfficialRuntime(post_filter_beta=0.02) as rt: ref, _ = rt.process(x)
    y, y0 = enhance(m, st, x, post_filter_beta=0.02), enhance(m, st, x)
    assert snr(ref, y) > 80 and snr(y0, y) < 60          # equal to the runtime's, and not a no-op
    yb = enhance(m, st, np.tile(x, 4), post_filter_beta=0.02, block_frames=150)   # block by block: the same
    assert np.abs(yb - enhance(m, st, np.tile(x, 4), post_filter_beta=0.02, block_frames=None)).max() < 1e-4

def test_cli_pf_and_delay(tmp_path):
    from dfnb.enhance import enhance_cli
    x = _write(tmp_path / "in.wav", subtype="FLOAT")[:, 0]
    assert enhance_cli([str(tmp_path / "in.wav"), "--output", str(tmp_path / "pf.wav"), "--pf", "-q"]) == 0
    assert enhance_cli([str(tmp_path / "in.wav"), "--output", str(tmp_path / "raw.wav"), "--no-compensate-delay", "-q"]) == 0
    assert enhance_cli([str(tmp_path / "in.wav"), "--output", str(tmp_path / "al.wav"), "-q"]) == 0
    pf, raw, al = (sf.read(str(tmp_path / f), dtype="float32")[0] for f in ("pf.wav", "raw.wav", "al.wav"))
    assert pf.shape == raw.shape == al.shape == x.shape and np.abs(pf - al).max() > 1e-4
    # without compensation the output is 480 samples (10 ms) late; the last ~30 ms differ (no padded tail to look ahead at)
    assert np.abs(raw[480:-1440] - al[:-1920]).max() < 1e-5
    with pytest.raises(SystemExit): enhance_cli([str(tmp_path / "in.wav"), "--pf", "--pf-beta", "-1"])

def test_memory_is_flat_in_the_length(tmp_path):
    "Peak RSS of dfnb-enhance on 2 minutes of stereo is within 1.5x of that on 10 s (one-shot it was 3.4x)."
    code = ("import resource, sys; from dfnb.enhance import enhance_cli; rc = enhance_cli(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")
    peak = {}
    for sec in (10, 120):
        x = _write(tmp_path / f"s{sec}.wav", seconds=10.0, channels=2)
        if sec > 10: sf.write(str(tmp_path / f"s{sec}.wav"), np.tile(x, (sec // 10, 1)), 48000, subtype="PCM_16")
        r = subprocess.run([sys.executable, "-c", code, str(tmp_path / f"s{sec}.wav"), "-o", str(tmp_path / "o"), "-q"],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        peak[sec] = int(r.stdout.strip().splitlines()[-1]) / 1024
    assert peak[120] <= 1.5 * peak[10], peak

def test_dfnet4_stream_heals_too(tmp_path):
    from dfnb.onnx import export_dfnet4
    from dfnb.dfnet4 import DfNet4Lite
    torch.manual_seed(0); export_dfnet4(DfNet4Lite().eval(), tmp_path / "lite")
    x = speech_like(0.5, seed=3)[: 40 * 480].reshape(-1, 480).copy(); z = x.copy()
    x[7, 9] = np.nan; z[7, 9] = 0
    a, b = StreamingEnhancer(tmp_path / "lite"), StreamingEnhancer(tmp_path / "lite")
    with pytest.warns(RuntimeWarning): ya = np.stack([a.process_frame(h) for h in x])
    yb = np.stack([b.process_frame(h) for h in z])
    assert np.isfinite(ya).all() and np.array_equal(ya, yb)
