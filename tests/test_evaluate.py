"""`dfnb-evaluate` on folders of recordings (paired: the VoiceBank-DEMAND layout; unpaired: DNSMOS only), its refusals,
its atomic result files, and the generated-set mode it had before."""
import csv, importlib, importlib.util, json
import numpy as np, pytest, soundfile as sf, soxr
from dfnb import evaluate as E
from dfnb.metrics import dnsmos_model_path

def _have_dnsmos_model() -> bool:
    try: dnsmos_model_path(); return True
    except FileNotFoundError: return False

needs_dnsmos = pytest.mark.skipif(not _have_dnsmos_model(), reason="the DNSMOS model file comes from the speechmos wheel: pip install speechmos")

@pytest.fixture(scope="module")
def utterances():
    "Two 1.2 s noisy/clean pairs at 16 kHz (eSpeak NG in white and pink noise at 5 dB, a -70 dBFS floor under the clean)."
    items = E.make_eval_set(seed=3, snrs=(5,), noises=("white", "pink"), duration=1.2)
    floor = 10 ** (-70 / 20) * np.random.default_rng(0).standard_normal(len(items[0]["clean"]))
    return {it["id"]: (soxr.resample(it["noisy"], 48000, 16000), soxr.resample(it["clean"] + floor, 48000, 16000)) for it in items}

def _write(root, pairs, sr=16000, clean=True):
    (root / "noisy").mkdir(parents=True, exist_ok=True)
    if clean: (root / "clean").mkdir(exist_ok=True)
    for k, (n, c) in pairs.items():
        sf.write(root / "noisy" / f"{k}.wav", n, sr, subtype="PCM_16")
        if clean: sf.write(root / "clean" / f"{k}.wav", c, sr, subtype="PCM_16")
    return root / "noisy", root / "clean"

@needs_dnsmos
def test_paired_folder(tmp_path, utterances, capsys):
    noisy, clean = _write(tmp_path, utterances)
    out = [tmp_path / "res" / f"r.{x}" for x in ("csv", "json", "md")]
    assert E.evaluate_cli(["--noisy-dir", str(noisy), "--clean-dir", str(clean), "--model", "dfnet3", "--out", *map(str, out)]) == 0
    printed = capsys.readouterr().out
    assert "| noisy | 2 |" in printed and "| dfnet3 | 2 |" in printed and "CSIG" in printed and "OVRL" in printed
    rows = list(csv.DictReader(open(out[0])))
    assert [(r["id"], r["system"]) for r in rows] == [(k, s) for k in sorted(f"{i}.wav" for i in utterances) for s in ("noisy", "dfnet3")]
    for r in rows:
        assert all(np.isfinite(float(r[m])) for m in E.FOLDER_METRICS), r
        assert all(1 <= float(r[m]) <= 5 for m in ("csig", "cbak", "covl", "sig", "bak", "ovrl")), r
    assert json.loads(out[1].read_text())[0]["system"] == "noisy" and out[2].read_text().startswith("| system | files |")
    assert sorted(p.name for p in out[0].parent.iterdir()) == ["r.csv", "r.json", "r.md"]      # no temporary files left
    mean = lambda m, s: np.mean([float(r[m]) for r in rows if r["system"] == s])
    for m in ("pesq", "si_sdr", "cbak", "bak", "ovrl"): assert mean(m, "dfnet3") > mean(m, "noisy"), m

@needs_dnsmos
def test_unpaired_folder_is_dnsmos_only(tmp_path, utterances, capsys):
    noisy, _ = _write(tmp_path, utterances, clean=False)
    assert E.evaluate_cli(["--noisy-dir", str(noisy), "--model", "--out", str(tmp_path / "r.json")]) == 0
    rows = json.loads((tmp_path / "r.json").read_text())
    assert {r["system"] for r in rows} == {"noisy"} and len(rows) == 2
    assert {"sig", "bak", "ovrl"} <= set(rows[0]) and "pesq" not in rows[0]
    assert "no references: DNSMOS only" in capsys.readouterr().out

def _no_models(monkeypatch):
    enh = importlib.import_module("dfnb.enhance")              # (`dfnb.enhance` the attribute is the function)
    monkeypatch.setattr(enh, "init_df", lambda *a, **k: pytest.fail("a model was loaded before the folders were checked"))

@pytest.mark.parametrize("case, expect", [
    ("mismatched names", "only in"), ("empty folder", "no audio files"), ("missing folder", "no such folder"),
    ("8 kHz", "8000 Hz"), ("rates differ", "resample one folder"), ("lengths differ", "sample-aligned"),
    ("stereo", "2 channels"), ("silent", "silent"), ("too short", "at least 0.5 s")])
def test_folder_errors_name_the_problem(tmp_path, utterances, capsys, monkeypatch, case, expect):
    _no_models(monkeypatch)
    noisy, clean = _write(tmp_path, utterances)
    k = sorted(utterances)[0]; n, c = utterances[k]
    if case == "mismatched names": (clean / f"{k}.wav").rename(clean / "other.wav")
    elif case == "empty folder": [p.unlink() for p in noisy.iterdir()]
    elif case == "missing folder": noisy = tmp_path / "nope"
    elif case == "8 kHz": sf.write(noisy / f"{k}.wav", n[::2], 8000)
    elif case == "rates differ": sf.write(noisy / f"{k}.wav", soxr.resample(n, 16000, 22050), 22050)
    elif case == "lengths differ": sf.write(noisy / f"{k}.wav", n[:-10], 16000)
    elif case == "stereo": sf.write(noisy / f"{k}.wav", np.stack([n, n], 1), 16000)
    elif case == "silent": sf.write(clean / f"{k}.wav", np.zeros_like(c), 16000, subtype="PCM_16")
    elif case == "too short": sf.write(noisy / f"{k}.wav", n[:1000], 16000)
    assert E.evaluate_cli(["--noisy-dir", str(noisy), "--clean-dir", str(clean)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dfnb-evaluate: error:") and expect in err, err

def test_missing_dnsmos_model_names_speechmos(tmp_path, utterances, capsys, monkeypatch):
    _no_models(monkeypatch)
    noisy, _ = _write(tmp_path, utterances, clean=False)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "speechmos" else real(name, *a))
    assert E.evaluate_cli(["--noisy-dir", str(noisy)]) == 2
    assert "pip install speechmos" in capsys.readouterr().err

def test_usage_errors(tmp_path):
    with pytest.raises(SystemExit): E.evaluate_cli(["--clean-dir", str(tmp_path)])
    with pytest.raises(SystemExit): E.evaluate_cli(["--noisy-dir", str(tmp_path), "--out", str(tmp_path / "r.txt")])

def test_results_are_written_atomically(tmp_path):
    p = E.write_results([dict(id="a", system="noisy", pesq=1.0)], tmp_path / "r.json")
    with pytest.raises(TypeError): E.write_results([dict(id="a", system="noisy", pesq=object())], p)   # not JSON: fails midway
    assert json.loads(p.read_text()) == [dict(id="a", system="noisy", pesq=1.0)] and [x.name for x in tmp_path.iterdir()] == ["r.json"]

def test_generated_set_mode_still_works(tmp_path, capsys):
    assert E.evaluate_cli(["--no-official", "--noises", "white", "--snrs", "10", "--duration", "1", "--json", str(tmp_path / "r.json")]) == 0
    rows = json.loads((tmp_path / "r.json").read_text())
    assert [r["system"] for r in rows] == ["noisy", "dfnb"] and {"pesq", "stoi", "si_sdr"} <= set(rows[0])
    assert "| +10 dB |" in capsys.readouterr().out
