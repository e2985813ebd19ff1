"""One table of model names (`dfnb.checkpoint.MODEL_NAMES`) behind `init_df`, the CLIs and the trainer, and one way
for a command to report a problem (`dfnb.cli`): every name loads what it says, aliases and paths resolve as the
migration guide promises, and no module prints its own `error:` line."""
import re
from pathlib import Path
import pytest, torch
import dfnb
from dfnb.checkpoint import MODEL_NAMES, SHIPPED, ModelName, model_name, model_names, load_named, shipped_path, _resolve
from dfnb.cli import cli_error, cli_warn, one_line

SPEECH = model_names("speech")

def test_every_name_resolves():
    for n, m in MODEL_NAMES.items():
        assert isinstance(m, ModelName) and m.name == n and m.task in ("speech", "music")
        if m.shipped: assert n in SHIPPED and shipped_path(n).is_file()
        else: assert callable(_resolve(m.build)), n
        for spelling in (n, n.upper(), *m.aliases): assert model_name(spelling) is m, spelling
    assert model_names() == list(MODEL_NAMES) and SPEECH + model_names("music") == model_names()

@pytest.mark.parametrize("spelling, name", [("DeepFilterNet3", "dfnet3"), ("dfnet3-onnx", "dfnet3-onnx"), ("onnx", "dfnet3-onnx"),
                                            ("dfnet4-lite", "dfnet4lite"), ("DeepFilterNet4", "dfnet4"),
                                            ("DfNet4Lite-Random", "dfnet4lite-random"), ("random_small", "random-small")])
def test_aliases(spelling, name):
    assert model_name(spelling).name == name

def test_not_names(tmp_path, monkeypatch):
    assert [model_name(x) for x in (None, "", "  ", 3, "dfnet5", Path("dfnet3"))] == [None] * 6
    monkeypatch.chdir(tmp_path); (tmp_path / "dfnet3").mkdir()
    assert model_name("dfnet3") is None                          # an existing path is a path, never a name
    assert model_name("random", task="speech") is None and model_name("dfnet3", task="music") is None
    with pytest.raises(ValueError, match="task"): model_name("dfnet3", task="audio")

@pytest.mark.parametrize("name, cls", [("dfnet4-random", "DfNet4"), ("dfnet4lite-random", "DfNet4Lite"), ("dfnet4lite", "DfNet4Lite"),
                                       ("dfnet4", "DfNet4"), ("dfnet3", "DfNet3"), ("dfnet3-onnx", "OnnxDfNet3")])
def test_load_named_speech(name, cls):
    m = load_named(name, task="speech")
    assert type(m).__name__ == cls
    if isinstance(m, torch.nn.Module): assert not m.training

def test_load_named_music_and_seed():
    a, b = load_named("random-small", task="music", seed=3), load_named("random-small", task="music", seed=3)
    assert type(a).__name__ == "HDemucs" and all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    with pytest.raises(ValueError, match="known speech models: dfnet3"): load_named("random-small", task="speech")
    with pytest.raises(ValueError, match="unknown model name 'dfnet5'"): load_named("dfnet5")

def test_shipped_path_errors(monkeypatch):
    assert shipped_path("DeepFilterNet4Lite").name == "dfnet4lite.pt"
    with pytest.raises(ValueError, match="not a shipped dfnb model"): shipped_path("dfnet3")
    monkeypatch.setitem(SHIPPED, "dfnet4", "missing.pt")
    with pytest.raises(ValueError, match="dfnb-train --model-type dfnet4"): load_named("dfnet4")

def test_enhance_keeps_its_old_names():
    import importlib; E = importlib.import_module("dfnb.enhance")
    assert E.PRETRAINED is SHIPPED and E.pretrained_path is shipped_path
    assert [E.shipped_name(n) for n in ("dfnet4-lite", "DeepFilterNet4", "dfnet3", ".")] == ["dfnet4lite", "dfnet4", None, None]

@pytest.mark.parametrize("name, title", [("DeepFilterNet3", "DeepFilterNet3"), ("dfnet4lite", "DeepFilterNet4Lite"),
                                         ("dfnet4-random", "DfNet4-random")])
def test_init_df_uses_the_table(name, title):
    from dfnb.enhance import init_df
    assert init_df(name)[2] == title

def test_init_df_refuses_music_and_lists_names():
    from dfnb.enhance import init_df
    with pytest.raises(ValueError, match=r"expected a model name \(dfnet3, dfnet3-onnx"): init_df("random-small")

def test_teacher_uses_the_table():
    from dfnb.train import _teacher
    assert type(_teacher("DeepFilterNet3", "auto", "cpu")).__name__ == "OnnxDfNet3"     # ONNX Runtime on a CPU: fastest
    assert type(_teacher("dfnet3", "torch", "cpu")).__name__ == "DfNet3"
    assert type(_teacher("dfnet3-onnx", "torch", "cpu")).__name__ == "OnnxDfNet3"
    assert type(_teacher("dfnet4lite", "auto", "cpu")).__name__ == "DfNet4Lite"
    with pytest.raises(ValueError, match="runs the official DFN3 only"): _teacher("dfnet4lite", "onnx", "cpu")

def test_trainer_names():
    import dfnb.train as T
    assert T.TRAINABLE_TYPES == ("dfnet4", "dfnet4lite", "dfnet3") and not hasattr(T, "MODEL_TYPES")
    assert isinstance(T.Trainer.df_params, property) and "model_params" in T.Trainer.df_params.__doc__

# ---------------------------------------------------------------- dfnb.cli
def test_cli_error_and_warn(capsys):
    fail = cli_error("dfnb-x")
    assert fail(ValueError("first line\nsecond line")) == 2
    cli_warn("dfnb-x", "careful")
    assert fail(KeyError()) == 2
    assert capsys.readouterr().err.splitlines() == ["dfnb-x: error: first line", "dfnb-x: warning: careful", "dfnb-x: error: KeyError"]
    assert one_line("  a\nb") == "a" and one_line(RuntimeError()) == "RuntimeError"

_OWN = re.compile(r"""print\(\s*f?["']dfnb-[\w -]*:\s*(?:error|warning):""")
def test_no_module_prints_its_own_error_line():
    pkg = Path(dfnb.__file__).parent
    own = {p.stem: len(_OWN.findall(p.read_text())) for p in pkg.glob("*.py") if p.stem not in ("cli",)}
    bad = {m: n for m, n in own.items() if n}
    assert not bad, f"modules printing their own 'prog: error:' lines instead of dfnb.cli: {bad}"
