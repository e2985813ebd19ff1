"""`dfnb.checkpoint` on every model dfnb has: save_model / load_model / load_training_state round trips with
optimizer and scheduler state, the right class back (DfNet4Lite stays DfNet4Lite), atomic writes, clear errors."""
import signal, subprocess, sys
import pytest, torch
from dfnb.checkpoint import save_model, load_model, load_training_state, model_type_of
from dfnb.dfnet3 import DfNet3, load_official_dfnet3
from dfnb.dfnet4 import DfNet4, DfNet4Lite, DfNet4Config

def tiny4(**kw):
    return DfNet4Config.tiny(**kw)

MODELS = {"dfnet3": lambda: DfNet3(), "dfnet3-official": load_official_dfnet3, "dfnet4": lambda: DfNet4(tiny4(hybrid_encoder=True)),
          "dfnet4lite": lambda: DfNet4Lite(), "dfnet4-multires": lambda: DfNet4(tiny4(multi_res_df=True, adaptive_df_order=True))}

def _train_step(m, opt, sch):
    m.train()
    ps = [p for p in m.parameters() if p.requires_grad]
    loss = sum((p.float() ** 2).mean() for p in ps[:6])
    opt.zero_grad(); loss.backward(); opt.step(); sch.step()

@pytest.mark.parametrize("name", list(MODELS))
def test_round_trip_with_training_state(name, tmp_path):
    torch.manual_seed(0)
    m = MODELS[name]()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, amsgrad=True)
    sch = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 50)
    _train_step(m, opt, sch); _train_step(m, opt, sch)
    p = save_model(m, tmp_path / f"{name}.pt", opt.state_dict(), sch.state_dict(), epoch=2, global_step=7, metadata={"cmd": "x"})
    ck = torch.load(p, weights_only=True)
    assert ck["model_type"] == model_type_of(m) and {"model_state_dict", "model_config", "dfnb_version"} <= set(ck)
    back = load_model(p)
    assert type(back) is type(m) and not back.training
    for (k, a), (k2, b) in zip(m.state_dict().items(), back.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    opt2 = torch.optim.AdamW(back.parameters(), lr=1e-3, amsgrad=True)
    sch2 = torch.optim.lr_scheduler.CosineAnnealingLR(opt2, 50)
    st = load_training_state(p, opt2, sch2)
    assert st == {"epoch": 2, "global_step": 7, "metadata": {"cmd": "x"}}
    assert sch2.last_epoch == sch.last_epoch and opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert s1.keys() == s2.keys() and all(torch.equal(s1[i]["exp_avg_sq"], s2[i]["exp_avg_sq"]) for i in s1)
    # the restored pair continues exactly as the original
    _train_step(m, opt, sch); _train_step(back, opt2, sch2)
    for a, b in zip(m.parameters(), back.parameters()): assert torch.equal(a, b)

def test_lite_stays_lite_and_loads_by_init_df(tmp_path):
    from dfnb.enhance import init_df
    p = save_model(DfNet4Lite(), tmp_path / "lite.pt")
    assert type(load_model(p)) is DfNet4Lite and type(init_df(p)[0]) is DfNet4Lite

def test_legacy_class_name_model_type(tmp_path):
    "Files written by the old `dfnet4.save_checkpoint` (model_type = class name) still load."
    m = DfNet4(tiny4())
    torch.save({"model_state_dict": m.state_dict(), "model_config": m.config.to_dict(), "model_type": "DfNet4"}, tmp_path / "old.pt")
    assert type(load_model(tmp_path / "old.pt")) is DfNet4

def test_errors(tmp_path):
    m = DfNet4(tiny4())
    with pytest.raises(FileNotFoundError, match="no such file"): load_model(tmp_path / "nope.pt")
    torch.save({"model_state_dict": m.state_dict()}, tmp_path / "a.pt")
    with pytest.raises(ValueError, match="Checkpoint does not contain 'model_config'"): load_model(tmp_path / "a.pt")
    torch.save({"model_state_dict": {}, "model_config": {}, "model_type": "hdemucs9"}, tmp_path / "b.pt")
    with pytest.raises(ValueError, match="unknown model_type 'hdemucs9'; known model types: dfnet3, dfnet4, dfnet4lite"): load_model(tmp_path / "b.pt")
    sd = DfNet4(tiny4(hybrid_encoder=True)).state_dict()
    torch.save({"model_state_dict": sd, "model_config": m.config.to_dict(), "model_type": "dfnet4"}, tmp_path / "c.pt")
    with pytest.raises(ValueError) as e: load_model(tmp_path / "c.pt")
    msg = str(e.value)
    assert "unexpected (hybrid." in msg and "more)" in msg and len(msg) < 600 and msg.count("\n") == 0
    assert type(load_model(tmp_path / "c.pt", strict=False)) is DfNet4            # extra tensors ignored on request
    (tmp_path / "d.pt").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="cannot be read as a torch checkpoint"): load_model(tmp_path / "d.pt")
    p = save_model(m, tmp_path / "e.pt")
    with pytest.raises(ValueError, match="holds no optimizer_state"): load_training_state(p, torch.optim.SGD(m.parameters(), lr=1))
    with pytest.raises(ValueError, match="not a registered model type"): save_model(torch.nn.Linear(2, 2), tmp_path / "f.pt")

def test_atomic_write_survives_a_kill(tmp_path):
    "A writer killed mid-save leaves the previous checkpoint intact and no file under the final name is partial."
    p = save_model(DfNet4Lite(), tmp_path / "ck.pt"); before = p.read_bytes()
    code = ("import os, signal, torch; from dfnb.checkpoint import atomic_torch_save\n"
            "class Boom:\n    def __reduce__(self): os.kill(os.getpid(), signal.SIGKILL)\n"
            f"atomic_torch_save({{'a': torch.zeros(10**6), 'b': Boom()}}, {str(p)!r})\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert r.returncode == -signal.SIGKILL
    assert p.read_bytes() == before and load_model(p) is not None
