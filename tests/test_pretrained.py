"""The trained DfNet4Lite and DfNet4 that ship with dfnb: they load by every name the migration guide and DeepFilterNet
use, enhance, stream through dfnb-enhance and dfnb-export-onnx, and their metadata says how they were made; init_df
reads dfnb-train run folders."""
import numpy as np, pytest, torch
from dfnb import init_df, enhance
from dfnb.enhance import pretrained_path, enhance_cli
from dfnb.checkpoint import save_model
from dfnb.dfnet4 import DfNet4, DfNet4Lite, TINY
from dfnb.signals import speech_like, pink_noise, mix_at_snr

@pytest.mark.parametrize("name,cls,suffix", [("dfnet4lite", DfNet4Lite, "DeepFilterNet4Lite"), ("DeepFilterNet4Lite", DfNet4Lite, "DeepFilterNet4Lite"),
                                              ("dfnet4-lite", DfNet4Lite, "DeepFilterNet4Lite"), ("dfnet4", DfNet4, "DeepFilterNet4"),
                                              ("DeepFilterNet4", DfNet4, "DeepFilterNet4")])
def test_loads_by_name(name, cls, suffix):
    m, st, sfx = init_df(name)
    assert type(m) is cls and sfx == suffix and not m.training
    m2, _, _ = init_df(model_base_dir=name)
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), m2.state_dict().values()))

@pytest.mark.parametrize("name", ["dfnet4lite", "dfnet4"])
def test_metadata_records_how_it_was_made(name):
    meta = torch.load(pretrained_path(name), weights_only=True)["metadata"]
    for k in ("command", "commit", "steps", "wall_time_s", "corpus", "dataset", "curve", "teacher"):
        assert meta.get(k) is not None, k
    assert meta["command"].startswith("dfnb-train ") and f"--model-type {name}" in meta["command"]
    assert pretrained_path(name).stat().st_size < 20e6

@pytest.mark.parametrize("name", ["dfnet4lite", "dfnet4"])
def test_enhances_speech(name):
    "Trained, not random: it removes noise (SI-SDR over the noisy input) on speech-like audio in pink noise."
    from dfnb.metrics import si_sdr
    m, st, _ = init_df(name)
    s = speech_like(3.0, seed=5); noisy, _ = mix_at_snr(s, pink_noise(len(s), seed=6), 0.0)
    y = enhance(m, st, noisy.astype(np.float32))
    assert y.shape == noisy.shape and np.isfinite(y).all()
    assert si_sdr(s, y) > si_sdr(s, noisy) + 1.0

def test_dfnb_enhance_cli(tmp_path):
    import soundfile as sf
    x = (0.3 * mix_at_snr(speech_like(1.3, seed=1), pink_noise(int(1.3 * 48000), seed=2), 5.0)[0]).astype(np.float32)
    sf.write(tmp_path / "in.wav", x, 48000)
    assert enhance_cli([str(tmp_path / "in.wav"), "-m", "dfnet4lite", "-o", str(tmp_path / "out"), "-q"]) == 0
    y, sr = sf.read(next((tmp_path / "out").glob("*.wav")))
    assert sr == 48000 and len(y) == len(x)

def test_run_folder_epochs(tmp_path):
    torch.manual_seed(0)
    a, b = DfNet4Lite(**TINY), DfNet4Lite(**TINY)
    save_model(a, tmp_path / "run" / "checkpoints" / "best.pt"); save_model(b, tmp_path / "run" / "checkpoints" / "last.pt")
    best, last = init_df(tmp_path / "run")[0], init_df(tmp_path / "run", epoch="latest")[0]
    assert torch.equal(best.emb_in.weight, a.emb_in.weight) and torch.equal(last.emb_in.weight, b.emb_in.weight)
    with pytest.raises(ValueError, match="epoch"): init_df(tmp_path / "run", epoch=7)

@pytest.mark.parametrize("name", ["dfnet4lite", "dfnet4"])
def test_dfnb_export_onnx_ships_it(tmp_path, name):
    "dfnb-export-onnx dfnet4lite / dfnet4 writes the shipped weights as a streaming folder that StreamingEnhancer runs."
    from dfnb.onnx import export_cli
    from dfnb.streaming import StreamingEnhancer
    assert export_cli([name, "-o", str(tmp_path / "exp")]) == 0
    se = StreamingEnhancer(tmp_path / "exp")
    x = (0.1 * pink_noise(4800, seed=3)).astype(np.float32)
    y = se.process(x)
    assert y.shape == (4800,) and np.isfinite(y).all()

def test_a_missing_shipped_file_says_how_to_train_one(tmp_path, monkeypatch):
    "A package without dfnet4.pt (a trimmed install) says how to train one, never hands back random weights."
    import importlib; E = importlib.import_module("dfnb.enhance")     # `dfnb.enhance` the attribute is the function
    monkeypatch.setitem(E.PRETRAINED, "dfnet4", "missing_dfnet4.pt")
    with pytest.raises(ValueError, match="dfnb-train --model-type dfnet4"): init_df(model_base_dir="DeepFilterNet4")
