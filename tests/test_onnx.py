"Stateful ONNX export (dfnb.onnx): graph surgery, merged / full graphs, streaming equivalence, CLI, bad input."
import json, os, resource
import numpy as np
import onnx
import pytest
import torch

from dfnb.onnx import export_dfn3, export_cli, make_stateful, FrameDsp
from dfnb.onnx_graph import ort_session, state_pairs, zero_states, check_model
from dfnb.streaming import StreamingEnhancer
from dfnb.official import official_model_dir, DfNet3Params
from dfnb.metrics import snr as snr_db



@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx") / "dfn3"
    export_dfn3(d)
    return d


@pytest.fixture(scope="module")
def noisy():
    from dfnb.signals import speech_like, babble, mix_at_snr
    clean = speech_like(2.0, seed=3)
    x, _ = mix_at_snr(clean, babble(len(clean), 48000, seed=4), 3)
    return np.asarray(x, np.float32)


def _seq_vs_frames(name, feeds_seq, T):
    "Run the official graph on the whole sequence and the stateful one frame by frame; max abs diff per output"
    odir = official_model_dir()
    ref_s = ort_session(odir / f"{name}.onnx")
    ref = dict(zip([o.name for o in ref_s.get_outputs()], ref_s.run(None, feeds_seq)))
    st_s = ort_session(check_model(make_stateful(onnx.load(odir / f"{name}.onnx"))))
    state, outs = zero_states(st_s), []
    names = [o.name for o in st_s.get_outputs()]
    for t in range(T):
        fr = {k: v[:, t:t + 1] if k == "emb" else v[:, :, t:t + 1] for k, v in feeds_seq.items()}
        r = dict(zip(names, st_s.run(None, {**fr, **state})))
        state = {i: r[o] for i, o in state_pairs(st_s).items()}; outs.append(r)
    err = {}
    for k, v in ref.items():
        if k not in outs[0]: continue
        ax = 1 if k in ("emb", "lsnr", "coefs", "235") else 2
        err[k] = float(np.abs(np.concatenate([o[k] for o in outs], ax) - v).max())
    return err


@pytest.mark.parametrize("name", ["enc", "erb_dec", "df_dec"])
def test_stateful_frames_equal_sequence(name):
    rng = np.random.default_rng(0); T = 30
    if name == "enc":
        feeds = {"feat_erb": rng.standard_normal((1, 1, T, 32), np.float32), "feat_spec": rng.standard_normal((1, 2, T, 96), np.float32)}
    elif name == "erb_dec":
        feeds = {"emb": rng.random((1, T, 512), np.float32), **{k: rng.random((1, 64, T, f), np.float32) for k, f in
                 [("e3", 8), ("e2", 8), ("e1", 16), ("e0", 32)]}}
    else:
        feeds = {"emb": rng.random((1, T, 512), np.float32), "c0": rng.random((1, 64, T, 96), np.float32)}
    err = _seq_vs_frames(name, feeds, T)
    assert err and max(err.values()) < 1e-4, err


def test_model_dir_contents(model_dir):
    meta = json.loads((model_dir / "dfnb_onnx.json").read_text())
    assert meta["delay_samples"] == 1440 and meta["hop_size"] == 480
    assert meta["states"]["combined"]["h0"] == [5, 1, 256]
    for f in ["enc", "erb_dec", "df_dec", "combined", "front", "back", "full"]:
        m = onnx.load(str(model_dir / f"{f}.onnx")); onnx.checker.check_model(m, full_check=True)
        if f != "front" and f != "back": assert state_pairs(m), f
    comb = onnx.load(str(model_dir / "combined.onnx"))
    assert [i.name for i in comb.graph.input][:3] == ["feat_erb", "feat_spec", "h0"]
    assert not state_pairs(onnx.load(str(model_dir / "stateless" / "combined.onnx")))


def test_stream_equals_offline_enhance(model_dir, noisy):
    from dfnb.enhance import init_df, enhance
    y = StreamingEnhancer(model_dir).process(noisy)
    m, st, _ = init_df("dfnet3-onnx")
    ref = enhance(m, st, noisy)
    assert np.abs(y - ref).max() <= 1e-4
    yc = StreamingEnhancer(model_dir, graph="combined").process(noisy)
    assert np.abs(yc - ref).max() <= 1e-4
    for db in (6, 20):
        ya = StreamingEnhancer(model_dir, atten_lim_db=db).process(noisy)
        assert np.abs(ya - enhance(m, st, noisy, atten_lim_db=db)).max() <= 1e-4


def test_stream_equals_torch_dfnet3(model_dir, noisy):
    pytest.importorskip("dfnb.dfnet3")
    from dfnb.enhance import init_df, enhance
    m, st, _ = init_df("dfnet3")
    ref = enhance(m, st, noisy)
    y = StreamingEnhancer(model_dir).process(noisy)
    assert np.abs(y - ref).max() <= 1e-4


def test_torch_vs_stateful_onnx_per_submodel(model_dir):
    "torch DfNet3 sub-models on a sequence vs the per-frame stateful ONNX graphs (states threaded), output by output"
    dfnet3 = pytest.importorskip("dfnb.dfnet3")
    model = dfnet3.load_official_dfnet3()
    rng = np.random.default_rng(1); T = 20
    fe = torch.from_numpy(rng.standard_normal((1, 1, T, 32), np.float32)); fs = torch.from_numpy(rng.standard_normal((1, 2, T, 96), np.float32))
    with torch.no_grad():
        e0, e1, e2, e3, emb, c0, lsnr = model.enc(fe, fs)
        mt = model.erb_dec(emb, e3, e2, e1, e0)
        ct = model.df_dec(emb, c0)[0]
    s = ort_session(model_dir / "combined.onnx"); state = zero_states(s); names = [o.name for o in s.get_outputs()]
    ms, cs, ls = [], [], []
    for t in range(T):
        r = dict(zip(names, s.run(None, {"feat_erb": fe[:, :, t:t+1].numpy(), "feat_spec": fs[:, :, t:t+1].numpy(), **state})))
        state = {i: r[o] for i, o in state_pairs(s).items()}; ms.append(r["m"]); cs.append(r["coefs"]); ls.append(r["lsnr"])
    assert np.abs(np.concatenate(ms, 2) - mt.numpy()).max() < 1e-4
    assert np.abs(np.concatenate(cs, 1) - ct.numpy()).max() < 1e-4
    assert np.abs(np.concatenate(ls, 1) - lsnr.numpy()).max() < 1e-3


def test_vs_official_runtime(model_dir, noisy):
    from dfnb.official import OfficialRuntime
    y = StreamingEnhancer(model_dir).process(noisy)
    with OfficialRuntime() as rt: ref, _ = rt.process(noisy)
    assert snr_db(ref, y) >= 30


def test_stateless_is_choppy(model_dir, noisy):
    y = StreamingEnhancer(model_dir).process(noisy)
    with pytest.raises(ValueError, match="stateless sequence graph"): StreamingEnhancer(model_dir / "stateless", graph="combined")
    sl = StreamingEnhancer(model_dir / "stateless", graph="combined", stateless_ok=True)
    assert not sl.stateful and StreamingEnhancer(model_dir).stateful
    assert snr_db(y, sl.process(noisy)) < 10


def test_frame_dsp_matches_libdf():
    libdf = pytest.importorskip("libdf")
    p3 = DfNet3Params.from_ini(official_model_dir()); dsp = FrameDsp(p3, p3.df_order, p3.conv_lookahead)
    df = libdf.DF(sr=48000, fft_size=960, hop_size=480, nb_bands=32, min_nb_erb_freqs=2)
    x = np.random.default_rng(2).standard_normal(480 * 20).astype(np.float32) * 0.1
    X = df.analysis(x[None])[0]
    E = libdf.erb_norm(libdf.erb(X[None], df.erb_widths()), 0.99)[0]
    U = libdf.unit_norm(X[None, :, :96], 0.99)[0]
    mem, en, un = torch.zeros(480), torch.zeros(32), torch.zeros(96)
    for t in range(X.shape[0]):
        spec, fe, fs, mem, en, un = dsp.front(torch.from_numpy(x[t * 480:(t + 1) * 480]), mem, en, un)
        assert np.abs(spec[:, 0].numpy() + 1j * spec[:, 1].numpy() - X[t]).max() < 1e-5
        assert np.abs(fe.flatten().numpy() - E[t]).max() < 1e-4
        assert np.abs(fs[0, 0, 0].numpy() + 1j * fs[0, 1, 0].numpy() - U[t]).max() < 1e-4


def test_reset_and_frame_api(model_dir, noisy):
    se = StreamingEnhancer(model_dir)
    a = np.concatenate([se.process_frame(f) for f in noisy[:4800].reshape(-1, 480)])
    se.reset()
    b = np.concatenate([se.process_frame(f) for f in noisy[:4800].reshape(-1, 480)])
    np.testing.assert_array_equal(a, b)
    assert np.isfinite(se.lsnr)


def test_bad_inputs(model_dir, tmp_path):
    se = StreamingEnhancer(model_dir)
    with pytest.raises(ValueError, match="hop"): se.process_frame(np.zeros(100, np.float32))
    with pytest.raises(ValueError, match="audio"): se.process(np.zeros((2, 480), np.float32))
    with pytest.raises(ValueError, match="atten_lim_db"): se.set_atten_lim(float("nan"))
    with pytest.raises(ValueError, match="model_dir"): StreamingEnhancer(tmp_path / "missing")
    with pytest.raises(ValueError, match="graph"): StreamingEnhancer(model_dir, graph="nope")
    with pytest.raises(ValueError, match="graphs"): export_dfn3(tmp_path / "x", graphs=["bogus"])
    with pytest.raises(ValueError, match="opset"): export_dfn3(tmp_path / "x", opset=7)
    with pytest.raises(ValueError, match="source"): export_dfn3(tmp_path / "x", source=tmp_path)


def test_cli(tmp_path, capsys):
    assert export_cli(["dfnet3", "-o", str(tmp_path / "o"), "--graphs", "enc", "combined"]) == 0
    assert (tmp_path / "o" / "combined.onnx").exists() and (tmp_path / "o" / "enc.onnx").exists()
    assert not (tmp_path / "o" / "full.onnx").exists()
    assert export_cli(["missing-model", "-o", str(tmp_path / "p")]) == 2
    assert "missing-model" in capsys.readouterr().err
    f = tmp_path / "ck.pt"; f.write_bytes(b"x")
    assert export_cli([str(f), "-o", str(tmp_path / "p")]) == 2
    assert export_cli(["dfnet3", "-o", str(tmp_path / "q"), "--graphs", "enc", "--opset", "17"]) == 0
    assert onnx.load(str(tmp_path / "q" / "enc.onnx")).opset_import[0].version == 17


@pytest.mark.skipif(not os.environ.get("DFNB_SLOW"), reason="one hour of audio (~3-5 min); set DFNB_SLOW=1")
def test_one_hour_stability(model_dir):
    "An hour of noisy speech-like audio through full.onnx: finite output, bounded states, flat memory"
    from dfnb.signals import speech_like, pink_noise
    se = StreamingEnhancer(model_dir)
    block = (speech_like(10.0, seed=5) + 0.3 * pink_noise(480000, seed=6)).astype(np.float32)
    frames = block[:len(block) // 480 * 480].reshape(-1, 480)
    n_total = 3600 * 100; rss = []; smax = 0.0
    for i in range(n_total):
        y = se.process_frame(frames[i % len(frames)] * (1 + (i // 1000) % 3))
        if i % 30000 == 0:
            rss.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
            assert np.isfinite(y).all()
            smax = max(smax, max(float(np.abs(v).max()) for v in se.states["full"].values()))
            assert all(np.isfinite(v).all() for v in se.states["full"].values())
    assert smax < 1e4
    assert rss[-1] - rss[1] < 20_000, rss   # KiB


@pytest.mark.parametrize("preset", ["DfNet4", "DfNet4Lite"])
def test_dfnet4_stream_equals_offline(preset, tmp_path, noisy):
    dfnet4 = pytest.importorskip("dfnb.dfnet4")
    from dfnb.onnx import export_dfnet4
    from dfnb.enhance import init_df, enhance
    torch.manual_seed(1)
    m = getattr(dfnet4, preset)().eval()
    w = export_dfnet4(m, tmp_path / preset)
    meta = json.loads(w["config"].read_text())
    assert any(k.endswith("_s0") for k in meta["states"]["full"])
    x = noisy[:48000]
    ref = enhance(m, init_df(m)[1], x)
    for graph in ("full", "combined"):
        se = StreamingEnhancer(tmp_path / preset, graph=graph); assert se.stateful
        y = se.process(x)
        assert np.abs(y - ref).max() <= 1e-4, graph


def test_cli_dfnet4_checkpoint(tmp_path):
    dfnet4 = pytest.importorskip("dfnb.dfnet4")
    from dfnb.checkpoint import save_model
    ck = save_model(dfnet4.DfNet4Lite(), tmp_path / "lite.pt")
    assert export_cli([str(ck), "-o", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "full.onnx").exists()
    assert export_cli([str(ck), "-o", str(tmp_path / "o2"), "--opset", "12"]) == 2


@pytest.mark.parametrize("sub", ["enc", "erb_dec", "df_dec"])
def test_layer_parity_torch_vs_stateful_graph(sub):
    """dfnb.parity, layer by layer: torch DfNet3 sub-model vs the stateful graph (frame axis left dynamic, zero states).
    Only modules whose ONNX scope maps onto a torch module name are compared (dfnb.dfnet3 names some sub-layers
    differently from the official export); all compared tensors must agree."""
    parity = pytest.importorskip("dfnb.parity"); dfnet3 = pytest.importorskip("dfnb.dfnet3")
    model = dfnet3.load_official_dfnet3(); m = getattr(model, sub)
    g = make_stateful(onnx.load(official_model_dir() / f"{sub}.onnx"), frames=None)
    torch.manual_seed(0); T = 12
    if sub == "enc": feeds = {"feat_erb": torch.randn(1, 1, T, 32), "feat_spec": torch.randn(1, 2, T, 96)}
    elif sub == "erb_dec": feeds = {"emb": torch.rand(1, T, 512), **{k: torch.rand(1, 64, T, f) for k, f in [("e3", 8), ("e2", 8), ("e1", 16), ("e0", 32)]}}
    else: feeds = {"emb": torch.rand(1, T, 512), "c0": torch.rand(1, 64, T, 96)}
    args = tuple(feeds.values())
    for i in g.graph.input:
        if i.name not in feeds: feeds[i.name] = np.zeros([d.dim_value for d in i.type.tensor_type.shape.dim], np.float32)
    with parity.capture(m) as ct, torch.no_grad(): m(*args)
    co = parity.onnx_capture(g, feeds)
    rep = parity.compare(ct, co, mapping=parity.onnx_module_map(g, ct, m), atol=1e-4, rtol=1e-4)
    assert len(rep.rows) >= 5 and not rep.failures, repr(rep)


def test_dfnet4_fused_export_all_options(tmp_path, noisy):
    "The exported fused step graph (every DFNet4 option on, non-trivial BatchNorm statistics) equals offline enhance"
    dfnet4 = pytest.importorskip("dfnb.dfnet4")
    from dfnb.onnx import export_dfnet4
    from dfnb.enhance import init_df, enhance
    torch.manual_seed(2)
    cfg = dfnet4.DfNet4Config.tiny(num_mamba_layers=3, hybrid_encoder=True, multi_res_df=True, adaptive_df_order=True)
    m = dfnet4.DfNet4(cfg).eval()
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d): mod.running_mean.normal_(0, 0.1); mod.running_var.uniform_(0.5, 2.0)
    export_dfnet4(m, tmp_path / "t")
    x = noisy[:24000]
    ref = enhance(m, init_df(m)[1], x)
    y = StreamingEnhancer(tmp_path / "t").process(x)
    assert np.abs(y - ref).max() <= 1e-4
    ops = [n.op_type for n in onnx.load(str(tmp_path / "t" / "combined.onnx")).graph.node]
    assert not {"ConvTranspose", "BatchNormalization", "Einsum"} & set(ops) and ops.count("Conv") <= 1   # only the hybrid Conv1d


def test_dfnet4_full_step_equals_inlined(tmp_path, noisy):
    """full.onnx from DfNet4FullStep (the default) and the inlined front + combined + back graph (`full_graph='inlined'`,
    the graph before it, still exported and loadable): the same stream, the same state names, fewer nodes"""
    dfnet4 = pytest.importorskip("dfnb.dfnet4")
    from dfnb.onnx import export_dfnet4
    torch.manual_seed(3)
    m = dfnet4.DfNet4Lite().eval()
    a = export_dfnet4(m, tmp_path / "step"); b = export_dfnet4(m, tmp_path / "inl", full_graph="inlined")
    assert json.loads(a["config"].read_text())["full_graph"] == "step"
    x = noisy[:24000]
    ya = StreamingEnhancer(tmp_path / "step").process(x)
    yb = StreamingEnhancer(tmp_path / "inl").process(x)
    yc = StreamingEnhancer(tmp_path / "step", iobinding=False).process(x)
    assert np.abs(ya - yb).max() <= 1e-5 and np.array_equal(ya, yc)
    ga, gb = (onnx.load(str(w["full"])) for w in (a, b))
    assert state_pairs(ga) == state_pairs(gb) and len(ga.graph.node) < 0.7 * len(gb.graph.node)
    with pytest.raises(ValueError, match="full_graph"): export_dfnet4(m, tmp_path / "x", full_graph="fast")


def test_iobinding_resets_on_nonfinite_state(tmp_path):
    "The IOBinding path checks every new state (one sum over its arena): a hop that would poison the state restarts the stream"
    dfnet4 = pytest.importorskip("dfnb.dfnet4")
    from dfnb.onnx import export_dfnet4
    torch.manual_seed(0)
    export_dfnet4(dfnet4.DfNet4Lite().eval(), tmp_path / "m")
    se = StreamingEnhancer(tmp_path / "m")
    for _ in range(5): se.process_frame(np.full(480, 0.1, np.float32))
    with pytest.warns(RuntimeWarning):
        y = se.process_frame(np.full(480, 3e38, np.float32))
    assert se.state_resets == 1 and not y.any()
    assert all(not v.any() for v in se.states["full"].values())
    assert np.isfinite(se.process_frame(np.full(480, 0.1, np.float32))).all()
