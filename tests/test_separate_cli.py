"""`dfnb.separate.separate` / `separate_file` / `dfnb-separate` / `dfnb-export-onnx hdemucs`: the splitting checked
against a plain re-statement of demucs's `apply_model`, streaming against the in-memory result, and the command's flags."""
import contextlib, io, random, tracemalloc
import numpy as np, pytest, soundfile as sf, torch
import torch.nn.functional as F
from dfnb.checkpoint import MODEL_NAMES
from dfnb.hdemucs import HDemucs, SOURCES
from dfnb.hdemucs_onnx import ort_runner
from dfnb.separate import separate, separate_file, separate_cli, export_cli
from dfnb.metrics import snr
from dfnb.onnx import export_cli as export_onnx_cli

_SMALL = dict(MODEL_NAMES["random-small"].kwargs)    # the small untrained HDemucs that `-n random-small` names

# ---- demucs's apply_model, restated as plainly as possible -------------------------------------------------------------
def ref_apply(model, mix, seg, overlap, split=True, power=1.0):
    "One pass, no shifts: mix [C, L] -> [S, C, L]. Each piece centred in a seg-sample window of real context (zeros outside)."
    C, L = mix.shape
    if not split: return model(mix[None])[0]
    stride = int((1 - overlap) * seg)
    weight = torch.cat([torch.arange(1, seg // 2 + 1), torch.arange(seg - seg // 2, 0, -1)]).float()
    weight = (weight / weight.max()) ** power
    out, total = None, torch.zeros(L)
    for offset in range(0, L, stride):
        n = min(seg, L - offset)
        start = offset - (seg - n) // 2                      # TensorChunk.padded: centre the piece in seg samples
        window = torch.zeros(C, seg)
        for t in range(seg):                                  # explicit: a sample of the mix where there is one, else 0
            if 0 <= start + t < L: window[:, t] = mix[:, start + t]
        y = model(window[None])[0]
        y = y[..., (seg - n) // 2:(seg - n) // 2 + n]         # center_trim back to the piece
        if out is None: out = torch.zeros(y.shape[0], C, L)
        out[..., offset:offset + n] += weight[:n] * y
        total[offset:offset + n] += weight[:n]
    return out / total

def ref_shifts(model, mix, sample_rate, seg, overlap, shifts, seed, split=True, power=1.0):
    "demucs's shifts: pad by max_shift zeros both sides, separate from a random offset, keep the song's part, average."
    C, L = mix.shape; M = int(0.5 * sample_rate); rng = random.Random(seed)
    padded = torch.cat([torch.zeros(C, M), mix, torch.zeros(C, M)], -1)
    out = 0
    for _ in range(shifts):
        s = rng.randint(0, M)
        shifted = padded[:, s:L + M]                          # TensorChunk(padded_mix, offset, length + max_shift - offset)
        out = out + ref_apply(model, shifted, seg, overlap, split, power)[..., M - s:]
    return out / shifts

class Echo(torch.nn.Module):
    "Stem k = (k+1) * mix: exact values known."
    sources, audio_channels = SOURCES, 2
    def forward(self, x): return x[:, None] * torch.arange(1., 5.)[None, :, None, None]

class Context(torch.nn.Module):
    "Depends on where each sample sits in the window and on its neighbours: catches wrong padding, centring or weights."
    sources, audio_channels = SOURCES, 2
    def forward(self, x):
        ramp = torch.linspace(0.5, 1.5, x.shape[-1])
        return torch.stack([x * ramp, x.cumsum(-1) * 0.01, x.flip(-1), F.avg_pool1d(x, 5, 1, 2)], 1)

@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0); return HDemucs(**_SMALL).eval()

@pytest.mark.parametrize("L", [1, 37, 250, 300, 301, 1000, 1003])       # < 1 segment, multiples, odd lengths
@pytest.mark.parametrize("seg,ov", [(100, 0.25), (64, 0.0), (99, 0.5), (100, 0.9)])
def test_split_equals_restatement(L, seg, ov):
    mix = torch.randn(2, L)
    got = separate(Context(), mix, sample_rate=1000, segment=seg / 1000, overlap=ov, shifts=0)
    torch.testing.assert_close(got, ref_apply(Context(), mix, seg, ov), rtol=1e-5, atol=1e-5)

@pytest.mark.parametrize("shifts,seed", [(1, 0), (3, 7), (2, None)])
def test_shifts_equal_restatement(shifts, seed):
    mix, sr = torch.randn(2, 777), 200                                  # max_shift = 100 samples
    got = separate(Context(), mix, sample_rate=sr, segment=0.5, overlap=0.25, shifts=shifts, seed=seed if seed is not None else 5)
    want = ref_shifts(Context(), mix, sr, 100, 0.25, shifts, seed if seed is not None else 5)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)

def test_no_split_and_power():
    mix = torch.randn(2, 555)
    torch.testing.assert_close(separate(Context(), mix, 200, split=False, shifts=2, seed=1),
                               ref_shifts(Context(), mix, 200, 0, 0.25, 2, 1, split=False))
    torch.testing.assert_close(separate(Context(), mix, 1000, segment=0.1, transition_power=2.0, shifts=0),
                               ref_apply(Context(), mix, 100, 0.25, power=2.0), rtol=1e-5, atol=1e-5)

def test_echo_is_exact():
    mix = torch.randn(2, 1234)
    want = mix[None] * torch.arange(1., 5.)[:, None, None]
    for sh in (0, 1, 3): torch.testing.assert_close(separate(Echo(), mix, 1000, segment=0.1, shifts=sh), want)

def test_small_hdemucs_equals_restatement(small):
    mix = torch.randn(2, 2345)
    with torch.no_grad():
        torch.testing.assert_close(separate(small, mix, 1000, segment=1.0, overlap=0.25, shifts=2, seed=3),
                                   ref_shifts(small, mix, 1000, 1000, 0.25, 2, 3), rtol=1e-4, atol=1e-5)

def test_bad_split_arguments():
    for kw, msg in ((dict(overlap=1.0), "overlap must be in"), (dict(overlap=-0.1), "overlap must be in"),
                    (dict(segment=0), "segment must be > 0"), (dict(shifts=-1), "shifts must be"),
                    (dict(transition_power=0.5), "transition_power")):
        with pytest.raises(ValueError, match=msg): separate(Echo(), torch.randn(2, 100), **kw)

# ---- files, streamed ----------------------------------------------------------------------------------------------------
def _song(path, seconds, sr=44100, ch=2, seed=0):
    x = (np.random.default_rng(seed).standard_normal((int(seconds * sr), ch)) * 0.1).astype("float32")
    sf.write(str(path), x, sr, subtype="FLOAT"); return x

def test_file_equals_memory(small, tmp_path):
    x = _song(tmp_path / "a.wav", 0.3)
    ps = separate_file(small, tmp_path / "a.wav", tmp_path / "o", segment=0.1, shifts=2, seed=4, bits="float32", clip_mode="none")
    want = separate(small, torch.from_numpy(x.T), segment=0.1, shifts=2, seed=4)
    for k, p in enumerate(ps):
        got, sr = sf.read(str(p), dtype="float32"); assert sr == 44100
        np.testing.assert_allclose(got.T, want[k].numpy(), atol=1e-6)

def test_memory_does_not_grow_with_length(tmp_path):
    "The largest read is one window, and the Python-heap peak (numpy blocks) is the same for 20 s and 60 s."
    from dfnb import separate as sep
    peaks, reads = [], []
    for sec in (20, 60):
        _song(tmp_path / f"{sec}.wav", sec)
        orig = sep._FileWindow.__init__
        tracemalloc.start()
        ws = []
        def init(self, *a, **k): orig(self, *a, **k); ws.append(self)
        sep._FileWindow.__init__ = init
        try: separate_file(Echo(), tmp_path / f"{sec}.wav", tmp_path / f"o{sec}", segment=1.0, shifts=1, bits="float32")
        finally: sep._FileWindow.__init__ = orig
        peaks.append(tracemalloc.get_traced_memory()[1]); tracemalloc.stop(); reads.append(ws[0].max_read)
    assert reads == [44100, 44100]                                      # one 1 s window at a time
    assert peaks[1] < 1.3 * peaks[0], peaks                             # 3x the audio, not 3x the memory
    assert peaks[1] < 60 * 44100 * 2 * 4 / 4, peaks                     # far below a quarter of the 60 s mix in float32

def test_resampled_and_mono_input(small, tmp_path):
    _song(tmp_path / "m.wav", 0.2, sr=22050, ch=1)
    ps = separate_file(small, tmp_path / "m.wav", tmp_path / "o", segment=0.1)
    i = sf.info(str(ps[0])); assert (i.samplerate, i.channels, i.subtype) == (44100, 2, "PCM_16")
    assert abs(i.frames - 8820) <= 2

# ---- the command ------------------------------------------------------------------------------------------------------
def cli(*args, f=separate_cli):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try: rc = f([str(a) for a in args])
        except SystemExit as e: rc = e.code
    return rc, out.getvalue()

BASE = ("-n", "random-small", "--segment", "0.1")

def _stems(d, names, ext="wav"):
    return {n: sf.read(str(d / f"{n}.{ext}"), dtype="float32")[0] for n in names}

def test_torch_and_onnx_backends_agree(tmp_path):
    _song(tmp_path / "s.wav", 0.25)
    for be in ("torch", "onnx"):
        rc, out = cli(tmp_path / "s.wav", *BASE, "-o", tmp_path / be, "--backend", be, "--float32", "--clip-mode", "none", "--shifts", "2")
        assert rc == 0, out
    a = _stems(tmp_path / "torch" / "random-small" / "s", SOURCES); b = _stems(tmp_path / "onnx" / "random-small" / "s", SOURCES)
    worst = min(snr(a[s], b[s]) for s in SOURCES)
    print(f"torch vs onnx worst stem SNR {worst:.1f} dB")
    assert worst >= 80, worst

def test_two_stems_arithmetic(tmp_path):
    x = _song(tmp_path / "s.wav", 0.2)
    cli(tmp_path / "s.wav", *BASE, "-o", tmp_path / "all", "--float32", "--clip-mode", "none")
    full = _stems(tmp_path / "all" / "random-small" / "s", SOURCES)
    for method in ("add", "minus", "none"):
        rc, out = cli(tmp_path / "s.wav", *BASE, "-o", tmp_path / method, "--two-stems", "vocals", "--other-method", method,
                      "--float32", "--clip-mode", "none")
        assert rc == 0, out
        d = tmp_path / method / "random-small" / "s"
        names = sorted(p.name for p in d.iterdir())
        assert names == (["vocals.wav"] if method == "none" else ["no_vocals.wav", "vocals.wav"])
        np.testing.assert_allclose(_stems(d, ["vocals"])["vocals"], full["vocals"], atol=1e-6)
        if method == "add": np.testing.assert_allclose(_stems(d, ["no_vocals"])["no_vocals"], full["drums"] + full["bass"] + full["other"], atol=1e-5)
        if method == "minus": np.testing.assert_allclose(_stems(d, ["no_vocals"])["no_vocals"], x - full["vocals"], atol=1e-6)

def test_filename_template_and_formats(tmp_path):
    _song(tmp_path / "t.wav", 0.15)
    for flags, ext, sub in (([], "wav", "PCM_16"), (["--int24"], "wav", "PCM_24"), (["--float32"], "wav", "FLOAT"),
                            (["--flac"], "flac", "PCM_16"), (["--flac", "--int24"], "flac", "PCM_24")):
        o = tmp_path / ("o" + "".join(flags))
        rc, out = cli(tmp_path / "t.wav", *BASE, "-o", o, "--filename", "{stem}-{track}.{trackext}.{ext}", *flags)
        assert rc == 0, out
        for s in SOURCES:
            p = o / "random-small" / f"{s}-t.wav.{ext}"; i = sf.info(str(p))
            assert (i.subtype, i.samplerate, i.channels) == (sub, 44100, 2), (p, i.subtype)
            assert np.isfinite(sf.read(str(p))[0]).all()
        assert not [p for p in o.rglob(".*")], "no temporary files left"

def test_clip_modes(tmp_path):
    x = _song(tmp_path / "loud.wav", 0.15) * 200
    sf.write(str(tmp_path / "loud.wav"), x, 44100, subtype="FLOAT")       # a float mix far above full scale: so are its stems
    got = {}
    for mode in ("rescale", "clamp", "none"):
        rc, out = cli(tmp_path / "loud.wav", *BASE, "-o", tmp_path / mode, "--clip-mode", mode, "--float32")
        assert rc == 0, out
        got[mode] = _stems(tmp_path / mode / "random-small" / "loud", SOURCES)
    for s in SOURCES:
        peak = np.abs(got["none"][s]).max()
        np.testing.assert_allclose(got["rescale"][s], got["none"][s] / max(1.01 * peak, 1), atol=1e-6)
        np.testing.assert_allclose(got["clamp"][s], np.clip(got["none"][s], -0.99, 0.99), atol=1e-7)
        assert np.abs(got["rescale"][s]).max() < 1
    assert max(np.abs(v).max() for v in got["none"].values()) > 1, "the test needs a stem above full scale"

@pytest.mark.parametrize("extra,msg", [
    (["--two-stems", "piano"], "--two-stems piano: the model's stems are drums, bass, other, vocals"),
    (["--overlap", "1"], "--overlap must be in [0, 1)"), (["--overlap", "-0.5"], "--overlap must be in [0, 1)"),
    (["--segment", "0"], "--segment must be a positive"), (["--segment", "-1"], "--segment must be a positive"),
    (["-n", "MISSING.pt"], "no such checkpoint"), (["--no-split", "--backend", "onnx"], "--no-split needs --backend torch"),
    (["--flac", "--float32"], "FLAC holds integer samples"), (["--filename", "{track}.{ext}"], "several stems one file name"),
    (["--filename", "{song}/{stem}.{ext}"], "use only {track}, {trackext}, {stem}, {ext}"),
])
def test_bad_input_exit_2(tmp_path, extra, msg):
    _song(tmp_path / "s.wav", 0.05)
    rc, out = cli(tmp_path / "s.wav", *BASE, "-o", tmp_path / "o", *extra)
    assert rc == 2 and msg in out and len(out.strip().splitlines()) == 1, out
    assert not (tmp_path / "o").exists() or not [p for p in (tmp_path / "o").rglob("*") if p.is_file()]

def test_missing_and_unreadable(tmp_path):
    rc, out = cli(tmp_path / "nope.wav", *BASE); assert rc == 2 and "nope.wav: no such file" in out
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint"); _song(tmp_path / "s.wav", 0.05)
    rc, out = cli(tmp_path / "s.wav", "-n", tmp_path / "bad.pt", "-o", tmp_path / "o")
    assert rc == 2 and "not a readable HDemucs checkpoint" in out and len(out.strip().splitlines()) == 1
    (tmp_path / "junk.wav").write_bytes(b"RIFF....junk")
    rc, out = cli(tmp_path / "junk.wav", *BASE, "-o", tmp_path / "o2"); assert rc == 2, out
    assert not (tmp_path / "o2").exists() or not [p for p in (tmp_path / "o2").rglob("*") if p.is_file()]

def test_never_overwrites_the_input(tmp_path):
    x = _song(tmp_path / "vocals.wav", 0.05)
    rc, out = cli(tmp_path / "vocals.wav", *BASE, "-o", tmp_path, "--filename", "../{stem}.{ext}")
    assert rc == 2 and "is an input" in out, out
    np.testing.assert_array_equal(sf.read(str(tmp_path / "vocals.wav"), dtype="float32")[0], x)
    _song(tmp_path / "a.wav", 0.05)                                     # nor another track of the same call
    rc, out = cli(tmp_path / "a.wav", tmp_path / "vocals.wav", *BASE, "-o", tmp_path, "--filename", "../{stem}.{ext}")
    assert rc == 2 and "is an input" in out, out
    np.testing.assert_array_equal(sf.read(str(tmp_path / "vocals.wav"), dtype="float32")[0], x)

def test_checkpoint_model(small, tmp_path):
    from dfnb.checkpoint import save_model
    save_model(small, tmp_path / "mine.pt"); torch.save(small.state_dict(), tmp_path / "sd.pt"); _song(tmp_path / "s.wav", 0.05)
    rc, out = cli(tmp_path / "s.wav", "-n", tmp_path / "mine.pt", "--segment", "0.1", "-o", tmp_path / "o")
    assert rc == 0 and (tmp_path / "o" / "mine" / "s" / "vocals.wav").is_file(), out

def test_export_cli(tmp_path):
    rc, out = cli("hdemucs", "-n", "random-small", "--segment", "0.05", "-o", tmp_path / "hd.onnx", f=export_onnx_cli)
    assert rc == 0, out
    run = ort_runner(tmp_path / "hd.onnx"); torch.manual_seed(0); m = HDemucs(**_SMALL).eval()
    x = torch.randn(1, 2, 2205)
    with torch.no_grad(): assert snr(m(x), run(x)) >= 80
    rc, out = cli("hdemucs", "--segment", "0", "-o", tmp_path / "b.onnx", f=export_onnx_cli)
    assert rc == 2 and "--segment must be a positive" in out and not (tmp_path / "b.onnx").exists()
    rc, out = cli("-n", "nope.pt", "--segment", "1", "-o", tmp_path / "c.onnx", f=export_cli)
    assert rc == 2 and "no such checkpoint" in out
