"The dfnb-enhance command: files in, files out, no overwrites, one-line errors."
import subprocess, sys
from pathlib import Path
import numpy as np, pytest, soundfile as sf
from dfnb.enhance import enhance_cli
from dfnb.signals import espeak, white_noise

MODEL = ["-m", "dfnet3-onnx"]   # same delay handling and outputs as dfnet3 (tests/test_enhance.py), cheaper to load

@pytest.fixture
def files(tmp_path):
    s = espeak("Hello world, this is a test.", sr=16000)
    st = np.stack([s + 0.02 * white_noise(len(s), 0), 0.5 * s + 0.02 * white_noise(len(s), 1)], 1)
    sf.write(tmp_path / "st16k.flac", st, 16000, subtype="PCM_16")
    sf.write(tmp_path / "mono48k.wav", (espeak("Good morning.") + 0.01 * white_noise(len(espeak("Good morning.")), 2)).astype(np.float32), 48000, subtype="FLOAT")
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("not audio")
    sf.write(tmp_path / "zero.wav", np.zeros((0, 1)), 48000)
    return tmp_path

def test_formats_rates_channels(files, capsys):
    out = files / "out"
    assert enhance_cli([str(files / "st16k.flac"), str(files / "mono48k.wav"), "-o", str(out), "-q", *MODEL]) == 0
    a, sra = sf.read(files / "st16k.flac"); b, srb = sf.read(out / "st16k_DeepFilterNet3-onnx.flac")
    assert sra == srb == 16000 and a.shape == b.shape and sf.info(out / "st16k_DeepFilterNet3-onnx.flac").subtype == "PCM_16"
    c, _ = sf.read(files / "mono48k.wav"); d, _ = sf.read(out / "mono48k_DeepFilterNet3-onnx.wav")
    assert c.shape == d.shape and np.abs(d).max() > 0.05
    assert "mono48k_DeepFilterNet3-onnx.wav" in capsys.readouterr().out

def test_bad_files_reported_others_processed(files, capsys):
    args = [str(files / f) for f in ("empty.wav", "text.wav", "zero.wav", "missing.wav", "mono48k.wav")]
    assert enhance_cli([*args, "-q", *MODEL]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(l.startswith("dfnb-enhance: error: ") for l in err)
    assert (files / "mono48k_DeepFilterNet3-onnx.wav").exists()

def test_never_overwrites(files, capsys):
    inp = files / "mono48k.wav"; before = inp.read_bytes()
    assert enhance_cli([str(inp), "--output", str(inp), "--force", "-q", *MODEL]) == 1     # never the input
    assert inp.read_bytes() == before and "input" in capsys.readouterr().err
    out = files / "o.wav"; out.write_bytes(b"keep")
    assert enhance_cli([str(inp), "--output", str(out), "-q", *MODEL]) == 1                 # existing output
    assert out.read_bytes() == b"keep" and "--force" in capsys.readouterr().err
    assert enhance_cli([str(inp), "--output", str(out), "--force", "-q", *MODEL]) == 0       # --force
    assert sf.info(out).frames == sf.info(inp).frames

def test_usage_errors(files):
    with pytest.raises(SystemExit): enhance_cli([])                                        # nothing to do
    with pytest.raises(SystemExit): enhance_cli([str(files / "mono48k.wav"), str(files / "st16k.flac"), "--output", "x.wav"])
    assert enhance_cli([str(files / "mono48k.wav"), "-m", str(files / "nope.pt")]) == 2

def test_demo_command_in_empty_dir(tmp_path):
    "The README's main job: `dfnb-enhance --demo` in an empty folder (the installed console script)."
    exe = Path(sys.executable).parent / "dfnb-enhance"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "import sys; from dfnb.enhance import enhance_cli; sys.exit(enhance_cli())"]
    r = subprocess.run([*cmd, "--demo"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "enhanced:" in r.stdout and (tmp_path / "dfnb_demo_noisy_DeepFilterNet3.wav").exists()
    r2 = subprocess.run([*cmd, "--demo"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r2.returncode == 1 and "--force" in r2.stderr
