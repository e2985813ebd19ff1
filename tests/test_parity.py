"Tests for dfnb.parity: locating a perturbed layer, hook hygiene, mapping errors, nested outputs, stats mode, ONNX."
import copy, re
import pytest, torch, torch.nn as nn
from dfnb.parity import (capture, compare, check_parity, Capture, Stats, flatten, tensor_metrics, onnx_capture,
                         onnx_module_map, export_onnx, ParityReport)


class Net(nn.Module):
    "conv -> conv -> GRU (called twice) -> linear -> head returning a dict with a complex tensor."
    def __init__(self, f=8, h=12):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv1d(f, h, 3, padding=1), nn.ReLU(), nn.Conv1d(h, h, 1))
        self.gru = nn.GRU(h, h, batch_first=True)
        self.lin = nn.Linear(h, 2 * f)
        self.out = nn.Linear(2 * f, 2 * f)
    def forward(self, x):
        y = self.enc(x).transpose(1, 2)
        y, _ = self.gru(y); y, h = self.gru(y)
        m = self.out(torch.tanh(self.lin(y)))
        return {"mask": torch.complex(*m.chunk(2, -1)), "h": h}


def _hooks(model): return sum(len(m._forward_hooks) for m in model.modules())


@pytest.fixture
def net_x():
    torch.manual_seed(0)
    return Net().eval(), torch.randn(2, 8, 30)


@pytest.mark.parametrize("param,first", [("enc.0.weight", "enc.0"), ("enc.2.bias", "enc.2"), ("gru.weight_hh_l0", "gru"),
                                         ("lin.weight", "lin"), ("out.bias", "out")])
def test_perturbed_layer_located(net_x, param, first):
    net, x = net_x
    net2 = copy.deepcopy(net)
    with torch.no_grad(): net2.get_parameter(param).view(-1)[1] += 0.05
    with capture(net) as a: net(x)
    with capture(net2) as b: net2(x)
    rep = compare(a, b)
    assert not rep.ok and rep.first_failure.name == first
    names = [r.name for r in rep.rows]
    assert all(r.ok for r in rep.rows[:names.index(first)])  # everything before it is exact
    with pytest.raises(AssertionError, match=f"first failure: {re.escape(first)}"): check_parity(a, b)


def test_identical_runs_pass(net_x):
    net, x = net_x
    with capture(net) as a: net(x)
    with capture(net) as b: net(x)
    rep = check_parity(a, b, atol=0, rtol=0)
    assert rep.ok and rep.first_failure is None and all(r.metrics["max_abs"] == 0 for r in rep.rows)
    assert "parity OK" in repr(rep) and "| layer |" in rep._repr_markdown_()


def test_hooks_removed_after_exit_and_exception(net_x):
    net, x = net_x
    with capture(net) as c:
        assert _hooks(net) == len(list(net.modules()))
        net(x)
    assert _hooks(net) == 0
    with pytest.raises(ValueError, match="inside"):
        with capture(net, names=r"gru"):
            net(x); raise ValueError("inside")
    assert _hooks(net) == 0
    n = len(c); net(x); assert len(c) == n  # nothing recorded after exit


def test_mapping_errors_reported(net_x):
    net, x = net_x
    with capture(net) as a: net(x)
    with capture(net) as b: net(x)
    rep = compare(a, b, mapping={"lin": "lin", "decoder.3": "lin", "gru": "grü"})
    assert not rep.ok and len(rep.errors) == 2
    assert any("decoder.3" in e and "never fired in a" in e for e in rep.errors)
    assert any("grü" in e and "never fired in b" in e for e in rep.errors)
    with pytest.raises(AssertionError, match="mapping error"): check_parity(a, b, mapping={"nope": "lin"})
    # regex rules: a rewritten name that never fired is an error too
    rep = compare(a, b, mapping=[(r"enc\.(\d)", r"encoder.\1"), (r"lin", "lin")])
    assert len(rep.errors) == 3 and rep["lin"].ok
    rep = compare(a, b, mapping=lambda n: n if n.startswith("enc") else None)
    assert rep.ok and set(rep.unmatched_a) == {"gru", "gru#1", "lin", "out", ""}
    with pytest.raises(TypeError, match="mapping"): compare(a, b, mapping=3)
    with pytest.raises(TypeError, match="rules"): compare(a, b, mapping=[("a", "b", "c")])


def test_complex_and_dict_outputs(net_x):
    net, x = net_x
    with capture(net) as a: out = net(x)
    rec = a.record("")
    assert list(rec.outputs) == ["mask", "h"] and rec.outputs["mask"].is_complex()
    torch.testing.assert_close(a[""]["mask"], out["mask"])
    assert list(flatten({"a": (torch.ones(1), [torch.ones(2)]), "b": None})) == ["a.0", "a.1.0"]
    m = tensor_metrics(out["mask"], out["mask"] * (1 + 1e-3j))
    assert not m["ok"] and abs(m["rel_l2"] - 1e-3) < 1e-6  # phase error seen through |d|
    # transforms reconcile complex vs real layouts
    b = Capture(); b.add("", "X", {"mask": torch.view_as_real(out["mask"]), "h": out["h"]})
    rep = compare(a, b, mapping={"": ""}, transforms={"": lambda ta, tb: (torch.view_as_real(ta) if ta.is_complex() else ta, tb)})
    assert rep.ok and len(rep.rows) == 2
    rep = compare(a, b, mapping={"": ""})
    assert not rep.ok and "shape mismatch" in rep.rows[0].error


def test_call_index_for_reused_modules(net_x):
    net, x = net_x
    with capture(net, names=["gru", "lin"]) as c: net(x)
    assert c.names == ["gru", "gru#1", "lin"]
    assert c.record("gru#1").call == 1 and c.record("gru#1").module == "gru"
    torch.testing.assert_close(c.record("gru#1").inputs["0"], c["gru"]["0"])
    with capture(net, max_depth=1, inputs=False) as c: net(x)
    assert c.names == ["enc", "gru", "gru#1", "lin", "out", ""] and c.record("lin").inputs == {}


def test_bad_arguments(net_x):
    net, _ = net_x
    with pytest.raises(TypeError, match="model"):
        with capture("net"): pass
    with pytest.raises(ValueError, match="stats_only"):
        with capture(net, stats_only=-3): pass
    with pytest.raises(ValueError, match="max_depth"):
        with capture(net, max_depth=-1): pass
    with pytest.raises(TypeError, match="names"):
        with capture(net, names=5): pass
    with pytest.raises(TypeError, match="a: expected a Capture"): compare({}, Capture())
    with pytest.raises(TypeError, match="onnx_model"): onnx_capture(3, {})


def test_stats_only_bounded_memory():
    "Activations of 8 x 250k elements: a full capture holds 8 MB, the stats capture a few KB and still compares."
    torch.manual_seed(0)
    big = nn.Sequential(*[nn.Conv1d(8, 8, 1) for _ in range(8)]).eval()
    x = torch.randn(1, 8, 31_250)
    with torch.no_grad():
        with capture(big, stats_only=True, inputs=False) as a: big(x)
        big2 = copy.deepcopy(big); big2[5].bias.data[2] += 1e-2
        with capture(big2, stats_only=True, inputs=False) as b: big2(x)
        with capture(big2, stats_only=10**9, inputs=False) as full: big2(x)  # threshold above: full tensors
    assert all(isinstance(v, Stats) for r in a for v in r.outputs.values())
    assert a.nbytes < 32 * 1024 and full.nbytes >= 8 * 4 * 250_000
    rep = compare(a, b)
    assert rep.first_failure.name == "5" and all(r.metrics["approx"] for r in rep.rows)
    assert rep["4"].ok and rep["4"].metrics["rel_l2"] == 0
    # stats vs full tensors: the full side is summarised on the fly; the relative L2 estimate is close
    rep2 = compare(a, full)
    exact = compare(a, b).rows[5].metrics["rel_l2"]
    assert rep2.first_failure.name == "5" and abs(rep2["5"].metrics["rel_l2"] - exact) < 1e-9


def test_stats_sketch_estimates_rel_l2():
    torch.manual_seed(1)
    for eps in (1e-2, 1e-4):
        a = torch.randn(50_000); b = a + eps * torch.randn(50_000)
        exact = tensor_metrics(a, b)["rel_l2"]
        from dfnb.parity import stats_metrics
        approx = stats_metrics(Stats.of(a), Stats.of(b))["rel_l2"]
        assert 0.6 * exact < approx < 1.5 * exact


def test_polygraphy_rule():
    a = torch.tensor([0.0, 1e-7, 1.0, 1000.0])
    assert tensor_metrics(a, a + torch.tensor([5e-6, 5e-6, 5e-6, 5e-3]), atol=1e-5, rtol=1e-5)["ok"]
    m = tensor_metrics(a, a + torch.tensor([0, 0, 2e-5, 0]), atol=1e-5, rtol=1e-5)
    assert not m["ok"] and m["n_fail"] == 1


@pytest.mark.parametrize("dynamo", [True, False])
def test_onnx_round_trip(tmp_path, dynamo):
    "torch module vs its ONNX export, layer by layer, with the map built from the exporter's scope information."
    torch.manual_seed(0)
    class Real(nn.Module):
        def __init__(s): super().__init__(); s.enc = nn.Sequential(nn.Conv1d(8, 12, 3, padding=1), nn.ReLU()); s.gru = nn.GRU(12, 12, batch_first=True); s.lin = nn.Linear(12, 4)
        def forward(s, x):
            y, h = s.gru(s.enc(x).transpose(1, 2)); return torch.sigmoid(s.lin(y)), h
    m, x = Real().eval(), torch.randn(1, 8, 40)
    p = export_onnx(m, (x,), tmp_path / "m.onnx", dynamo=dynamo, input_names=["x"], output_names=["y", "h"])
    with capture(m) as ct: m(x)
    co = onnx_capture(p, {"x": x})
    assert len(co) > 5 and co.source == "onnx"
    mp = onnx_module_map(p, ct)
    assert mp.exporter == ("dynamo" if dynamo else "torchscript")
    assert {"enc.0", "enc.1", "gru", "lin", ""} <= set(mp), dict(mp)
    rep = check_parity(ct, co, mapping=mp, atol=1e-5, rtol=1e-4)
    assert len(rep.rows) >= 5
    # graph outputs are recorded under their own names
    torch.testing.assert_close(co["y"], m(x)[0], atol=1e-5, rtol=1e-4)
    # a perturbed torch copy is caught at the right layer through the same map
    m2 = copy.deepcopy(m)
    with torch.no_grad(): m2.lin.weight[0, 0] += 1e-2
    with capture(m2) as c2: m2(x)
    assert compare(c2, co, mapping=mp, rtol=1e-4).first_failure.name == "lin"
    # names filter on the ONNX side
    sel = onnx_capture(p, {"x": x}, names=[mp["lin"]])
    assert sel.names == [mp["lin"]]


def test_onnx_reused_module_calls(tmp_path):
    "A Linear applied twice: the dynamo map splits the calls by aten op, the TorchScript map by the '_1' scope suffix."
    torch.manual_seed(0)
    class Twice(nn.Module):
        def __init__(s): super().__init__(); s.lin = nn.Linear(6, 6); s.act = nn.Tanh()
        def forward(s, x): return s.lin(s.act(s.lin(x)))
    m, x = Twice().eval(), torch.randn(3, 6)
    with capture(m) as ct: m(x)
    assert ct.names == ["lin", "act", "lin#1", ""]
    for dyn in (True, False):
        p = export_onnx(m, (x,), tmp_path / f"t{dyn}.onnx", dynamo=dyn, input_names=["x"], output_names=["y"])
        mp = onnx_module_map(p, ct)
        assert {"lin", "lin#1", "act"} <= set(mp) and mp["lin"] != mp["lin#1"], (dyn, dict(mp))
        check_parity(ct, onnx_capture(p, {"x": x}), mapping=mp, rtol=1e-4)


def test_stats_mode_on_complex_and_dict_outputs(net_x):
    net, x = net_x
    net2 = copy.deepcopy(net)
    with torch.no_grad(): net2.lin.bias[0] += 0.05
    with capture(net, stats_only=True) as a: net(x)
    with capture(net2, stats_only=True) as b: net2(x)
    assert isinstance(a.record("").outputs["mask"], Stats) and a.record("").outputs["mask"].dtype == torch.complex64
    rep = compare(a, b)
    assert rep.first_failure.name == "lin" and "~" in repr(rep)
    assert compare(a, a).ok


def test_report_plot_and_markdown(net_x):
    import matplotlib; matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    net, x = net_x
    net2 = copy.deepcopy(net)
    with torch.no_grad(): net2.out.weight[0, 0] += 0.05
    with capture(net) as a: net(x)
    with capture(net2) as b: net2(x)
    rep = compare(a, b)
    ax = rep.plot(); assert len(ax.get_xticklabels()) == len(rep.rows); plt.close("all")
    md = rep._repr_markdown_()
    assert "first failure: out" in md and md.count("\n| `") == len(rep.rows)
    assert isinstance(rep, ParityReport) and rep["out"].label == "out"


def test_old_name_is_a_deprecated_alias(net_x):
    "`test_parity` was check_parity's name: it still works, warns, and is not collected by pytest."
    from dfnb import parity
    net, x = net_x
    with capture(net) as a: net(x)
    with pytest.warns(DeprecationWarning, match="renamed check_parity"): rep = parity.test_parity(a, a)
    assert rep.ok and parity.test_parity.__test__ is False
