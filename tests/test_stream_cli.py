"""`dfnb-stream`: raw PCM through a pipe, equal to `StreamingEnhancer.process`, any rate and channel count, bad
arguments, and (DFNB_SLOW=1) an hour of audio in flat memory."""
import os, subprocess, sys, threading, time
from pathlib import Path
import numpy as np, pytest
from dfnb.onnx import export_dfn3
from dfnb.streaming import StreamingEnhancer
from dfnb.signals import speech_like, pink_noise, mix_at_snr
from dfnb.metrics import snr

@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("pipe") / "dfn3"; export_dfn3(d, graphs=("full",)); return d

def _noisy(seconds, sr=48000, seed=0):
    return np.asarray(mix_at_snr(speech_like(seconds, sr, seed=seed), pink_noise(int(seconds * sr), seed=seed + 1), 5)[0], np.float32) * 0.5

def _pipe(args, data: bytes, timeout=300):
    exe = Path(sys.executable).parent / "dfnb-stream"
    return subprocess.run([str(exe), *map(str, args)], input=data, capture_output=True, timeout=timeout)

def test_pipe_equals_streaming_enhancer(model_dir):
    x = _noisy(2.5)[: 48000 * 2 + 333]                               # not a whole number of hops
    r = _pipe(["--format", "f32", "--model-dir", model_dir, "--block", "1000"], x.astype("<f4").tobytes())
    assert r.returncode == 0, r.stderr
    y = np.frombuffer(r.stdout, "<f4")
    assert len(y) == len(x) and np.array_equal(y, StreamingEnhancer(model_dir).process(x))

def test_pipe_s16_stereo_16k(model_dir):
    import soxr
    x = np.stack([_noisy(3.0, 16000, seed=s) for s in (1, 5)], 1)
    pcm = np.round(x * 32767).astype("<i2")
    r = _pipe(["--rate", "16000", "--channels", "2", "--model-dir", model_dir], pcm.tobytes())
    assert r.returncode == 0, r.stderr
    y = np.frombuffer(r.stdout, "<i2").reshape(-1, 2).astype(np.float32) / 32768
    assert y.shape == x.shape
    for c in range(2):                                               # against one-shot resampling around the stream
        x48 = soxr.resample(pcm[:, c].astype(np.float32) / 32768, 16000, 48000)
        ref = soxr.resample(StreamingEnhancer(model_dir).process(x48), 48000, 16000)[: len(x)]
        assert snr(ref[2000:-2000], y[2000:-2000, c]) > 25

def test_raw_stream_is_delayed(model_dir):
    x = _noisy(1.0)
    r = _pipe(["--format", "f32", "--model-dir", model_dir, "--no-align"], x.astype("<f4").tobytes())
    y = np.frombuffer(r.stdout, "<f4")
    assert len(y) == len(x) // 480 * 480 and np.array_equal(y, StreamingEnhancer(model_dir).process(x, align=False)[: len(y)])

@pytest.mark.parametrize("args, msg", [(["--rate", "100"], "--rate"), (["--channels", "0"], "--channels"),
                                       (["--atten-lim", "-3"], "--atten-lim"), (["--format", "u8"], "invalid choice")])
def test_bad_arguments(model_dir, args, msg):
    r = _pipe(args + ["--model-dir", model_dir], b"")
    assert r.returncode == 2 and msg in r.stderr.decode() and b"Traceback" not in r.stderr

def test_bad_model_dir(tmp_path):
    r = _pipe(["--model-dir", tmp_path], b"\x00" * 960)
    assert r.returncode == 2 and b"has no full.onnx" in r.stderr and b"Traceback" not in r.stderr

@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("DFNB_SLOW"), reason="an hour of audio (about 5 min): set DFNB_SLOW=1")
def test_one_hour_flat_memory(model_dir):
    "An hour of 48 kHz s16 audio through the pipe: RSS after 55 minutes within 10 % (and 20 MiB) of RSS after 5."
    exe = Path(sys.executable).parent / "dfnb-stream"
    p = subprocess.Popen([str(exe), "--model-dir", str(model_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    chunk = np.round(_noisy(60.0) * 32767).astype("<i2").tobytes()
    got = [0]
    reader = threading.Thread(target=lambda: [got.__setitem__(0, got[0] + len(b)) for b in iter(lambda: p.stdout.read(1 << 16), b"")]); reader.start()
    rss = lambda: int(next(l for l in open(f"/proc/{p.pid}/status") if l.startswith("VmRSS")).split()[1]) / 1024
    marks = {}
    for minute in range(60):
        p.stdin.write(chunk)
        if minute in (5, 55): time.sleep(0.5); marks[minute] = rss()
    p.stdin.close(); reader.join(); p.wait(timeout=600)
    assert p.returncode == 0 and got[0] == 60 * len(chunk)
    print(f"RSS after 5 min {marks[5]:.0f} MiB, after 55 min {marks[55]:.0f} MiB")
    assert marks[55] <= max(1.1 * marks[5], marks[5] + 20)
