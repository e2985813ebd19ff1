"DeepFilterNet3 in torch vs the official ONNX graphs (ONNX Runtime); weight-mapping failures; model structure."
import configparser, copy, tarfile
import numpy as np, onnx, pytest, torch
from onnx import helper, numpy_helper, TensorProto
from dfnb.dfnet3 import (DfNet3, DfDecoder, Encoder, ErbDecoder, WeightMappingError, _gru_reorder,
                         load_official_dfnet3, map_onnx_weights, submodel_parity)
from dfnb.official import DfNet3Params, extract_model_tarball, official_model_dir, onnx_sessions

TOL = 1e-4

@pytest.fixture(scope="module")
def mdir(): return official_model_dir()

@pytest.fixture(scope="module")
def model(mdir): return load_official_dfnet3(mdir)

@pytest.fixture(scope="module")
def sessions(mdir): return onnx_sessions(mdir)

@pytest.fixture(scope="module")
def onnx_models(mdir): return {k: onnx.load(mdir / f"{k}.onnx") for k in ("enc", "erb_dec", "df_dec")}

def _check(err, what):
    worst = max(err, key=err.get)
    assert err[worst] <= TOL, f"{what}: worst {worst} = {err[worst]:.3g} > {TOL}; all: {err}"

# ---------------------------------------------------------------- parity on random and real features
@pytest.mark.parametrize("T", [1, 2, 3, 16, 51, 200])
def test_parity_random_features(model, sessions, T):
    g = torch.Generator().manual_seed(T)
    fe = torch.randn(1, 1, T, 32, generator=g)
    fs = torch.randn(1, 2, T, 96, generator=g) * 0.3
    _check(submodel_parity(model, sessions, fe, fs), f"random T={T}")

def _real_features(model, audio):
    from dfnb.stft_erb import DfState
    _, fe, fs = DfState(model.df_params).features(torch.from_numpy(np.asarray(audio, np.float32))[None])
    la = model.config.conv_lookahead                                    # the shift DfNet3.forward applies before the encoder
    fe = torch.cat([fe[:, la:], torch.zeros_like(fe[:, :la])], 1)[:, None]            # [1, 1, T, 32]
    fs = torch.view_as_real(torch.cat([fs[:, la:], torch.zeros_like(fs[:, :la])], 1)).permute(0, 3, 1, 2)  # [1, 2, T, 96]
    return fe.contiguous(), fs.contiguous()

@pytest.fixture(scope="module")
def speech_mix():
    from dfnb.signals import espeak, speech_like, babble, mix_at_snr
    clean = np.concatenate([espeak("The quick brown fox jumps over the lazy dog.", sr=48000), speech_like(1.0, seed=3)])
    noisy, _ = mix_at_snr(clean, babble(len(clean), 48000, seed=2), 0.0)
    return noisy.astype(np.float32)

@pytest.mark.parametrize("n", [480, 480 * 7 + 123, None])      # 1 frame, an odd length, the whole sentence
def test_parity_real_features(model, sessions, speech_mix, n):
    fe, fs = _real_features(model, speech_mix[:n])
    _check(submodel_parity(model, sessions, fe, fs), f"speech n={n} (T={fe.shape[2]})")

def test_parity_layer_by_layer(model, mdir, speech_mix):
    "dfnb.parity report for every sub-network: every torch module whose output the ONNX graph also has."
    from dfnb.parity import capture, onnx_capture, onnx_module_map, check_parity
    fe, fs = _real_features(model, speech_mix[:48000])
    with torch.no_grad(), capture(model.enc, inputs=False) as ce: e0, e1, e2, e3, emb, c0, _ = model.enc(fe, fs)
    with torch.no_grad(), capture(model.erb_dec, inputs=False) as cm: model.erb_dec(emb, e3, e2, e1, e0)
    with torch.no_grad(), capture(model.df_dec, inputs=False) as cd: model.df_dec(emb, c0)
    runs = [("enc", model.enc, ce, {"feat_erb": fe, "feat_spec": fs}),
            ("erb_dec", model.erb_dec, cm, dict(emb=emb, e3=e3, e2=e2, e1=e1, e0=e0)),
            ("df_dec", model.df_dec, cd, dict(emb=emb, c0=c0))]
    for name, mod, cap, feeds in runs:
        oc = onnx_capture(mdir / f"{name}.onnx", feeds)
        mm = onnx_module_map(mdir / f"{name}.onnx", cap, model=mod)
        mapping = {k: v for k, v in mm.items() if k in cap and k != ""}   # official conv internals are named 0/1/3
        rep = check_parity(cap, oc, mapping=mapping, atol=TOL, rtol=TOL)
        assert len(rep.rows) >= 5, (name, rep)
        print(name, rep)

def test_full_model_against_onnx_composition(model, sessions, speech_mix):
    "DfNet3.forward == ONNX sub-graphs + a direct numpy mask / deep filter (official DfNet.forward semantics)."
    from dfnb.stft_erb import DfState
    audio = speech_mix[:48000]
    spec, fe0, fs0 = DfState(model.df_params).features(torch.from_numpy(audio)[None])
    fe, fs = _real_features(model, audio)
    run = lambda k, **f: sessions[k].run(None, {n: v if isinstance(v, np.ndarray) else v.numpy() for n, v in f.items()})
    e0, e1, e2, e3, emb, c0, lsnr = run("enc", feat_erb=fe, feat_spec=fs)
    m = run("erb_dec", emb=emb, e3=e3, e2=e2, e1=e1, e0=e0)[0][0, 0]                      # [T, 32]
    coefs = run("df_dec", emb=emb, c0=c0)[0][0]                                          # [T, 96, 10]
    X = spec[0].numpy().astype(np.complex128); T, F = X.shape
    W = coefs.reshape(T, 96, 5, 2); W = W[..., 0] + 1j * W[..., 1]                       # [T, 96, 5]
    Y = X * (m @ model.erb_inv_fb.numpy())
    for t in range(T):
        acc = np.zeros(96, complex)
        for n in range(5):
            s = t + n - 2
            if 0 <= s < T: acc += W[t, :, n] * X[s, :96]
        Y[t, :96] = acc
    with torch.no_grad(): out, lsnr_t = model.enhance_spec(spec, fe0, fs0)
    err = np.abs(out[0].numpy() - Y).max() / np.abs(Y).max()
    assert err < TOL, f"full model vs ONNX composition: relative max error {err:.3g}"
    assert np.abs(lsnr_t[0].numpy() - lsnr[0, :, 0]).max() < TOL

# ---------------------------------------------------------------- weight mapping
def test_gru_gate_reorder_numerically():
    "ONNX GRU (z, r, h gates, linear_before_reset=1) == torch nn.GRU after _gru_reorder."
    rng = np.random.default_rng(0); I, H, T = 5, 4, 6
    W, R, B = (rng.standard_normal(s).astype(np.float32) for s in ((1, 3 * H, I), (1, 3 * H, H), (1, 6 * H)))
    x = rng.standard_normal((T, 1, I)).astype(np.float32)
    node = helper.make_node("GRU", ["X", "W", "R", "B"], ["Y", "Yh"], hidden_size=H, linear_before_reset=1)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [T, 1, I])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(a, n) for a, n in ((W, "W"), (R, "R"), (B, "B"))])
    import onnxruntime as ort
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]); m.ir_version = 8
    y_ref = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"X": x})[0][:, 0]
    gru = torch.nn.GRU(I, H)
    with torch.no_grad():
        for name, a in (("weight_ih_l0", W[0]), ("weight_hh_l0", R[0]), ("bias_ih_l0", B[0, :3 * H]), ("bias_hh_l0", B[0, 3 * H:])):
            getattr(gru, name).copy_(torch.from_numpy(_gru_reorder(a, H)))
        y = gru(torch.from_numpy(x))[0]
    np.testing.assert_allclose(y.numpy(), y_ref, atol=1e-6)
    with torch.no_grad():                                    # without the reordering it is wrong
        gru.weight_ih_l0.copy_(torch.from_numpy(W[0])); gru.weight_hh_l0.copy_(torch.from_numpy(R[0]))
        assert np.abs(gru(torch.from_numpy(x))[0].numpy() - y_ref).max() > 1e-2

def test_mapping_covers_everything(model, onnx_models):
    for name, om in onnx_models.items():
        sd = map_onnx_weights(getattr(model, name), om)
        assert set(sd) == {n for n, _ in getattr(model, name).named_parameters()}

def _init(m, name): return next(t for t in m.graph.initializer if t.name == name)

def test_tampered_shape(onnx_models):
    m = copy.deepcopy(onnx_models["erb_dec"])
    t = _init(m, "onnx::Conv_291"); a = numpy_helper.to_array(t)
    t.CopyFrom(numpy_helper.from_array(a[:32], t.name))            # half the output channels of convt3's pointwise
    with pytest.raises(WeightMappingError, match=r"convt3\.pointwise\.weight"): map_onnx_weights(ErbDecoder(DfNet3Params()), m)

def test_tampered_missing_initialiser(onnx_models):
    m = copy.deepcopy(onnx_models["enc"])
    m.graph.initializer.remove(_init(m, "emb_gru.linear_in.0.weight"))
    with pytest.raises(WeightMappingError) as e: map_onnx_weights(Encoder(DfNet3Params()), m)
    msg = str(e.value)
    assert "'emb_gru.linear_in.0.weight' is neither an initialiser nor a Constant" in msg
    assert "torch parameter emb_gru.linear_in.0.weight" in msg and "got no ONNX tensor" in msg

def test_tampered_extra_and_renamed(onnx_models):
    m = copy.deepcopy(onnx_models["df_dec"])
    m.graph.initializer.append(numpy_helper.from_array(np.zeros(3, np.float32), "stray"))
    with pytest.raises(WeightMappingError, match="'stray'.*was not used"): map_onnx_weights(DfDecoder(DfNet3Params()), m)
    m = copy.deepcopy(onnx_models["df_dec"])                          # a GRU that is not linear_before_reset
    gru = next(n for n in m.graph.node if n.op_type == "GRU")
    next(a for a in gru.attribute if a.name == "linear_before_reset").i = 0
    with pytest.raises(WeightMappingError, match="linear_before_reset"): map_onnx_weights(DfDecoder(DfNet3Params()), m)

def test_tampered_group_and_wrong_graph(onnx_models):
    m = copy.deepcopy(onnx_models["enc"])
    conv = next(n for n in m.graph.node if n.name == "/erb_conv1/0/Conv")
    next(a for a in conv.attribute if a.name == "group").i = 1
    with pytest.raises(WeightMappingError, match="group=1 but ours 64"): map_onnx_weights(Encoder(DfNet3Params()), m)
    with pytest.raises(WeightMappingError, match="not used"): map_onnx_weights(Encoder(DfNet3Params()), onnx_models["df_dec"])

def test_tampered_config(tmp_path, mdir):
    cp = configparser.ConfigParser(); cp.read(mdir / "config.ini")
    cp["deepfilternet"]["emb_hidden_dim"] = "128"                        # network no longer fits the weights
    for f in ("enc.onnx", "erb_dec.onnx", "df_dec.onnx"): (tmp_path / f).symlink_to(mdir / f)
    with open(tmp_path / "config.ini", "w") as fh: cp.write(fh)
    with pytest.raises(WeightMappingError, match="does not fit"): load_official_dfnet3(tmp_path)
    cp["deepfilternet"]["mask_pf"] = "true"
    with open(tmp_path / "config.ini", "w") as fh: cp.write(fh)
    with pytest.raises(ValueError, match="mask_pf"): load_official_dfnet3(tmp_path)

def test_tarball_paths(tmp_path, mdir):
    tb = tmp_path / "m.tar.gz"
    with tarfile.open(tb, "w:gz") as tf:
        for f in ("config.ini", "enc.onnx", "erb_dec.onnx", "df_dec.onnx"): tf.add(mdir / f, arcname=f"x/y/{f}")
    d = extract_model_tarball(tb, tmp_path / "out")
    assert sorted(p.name for p in d.iterdir()) == ["config.ini", "df_dec.onnx", "dfnb_manifest.json", "enc.onnx", "erb_dec.onnx"]
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as tf: tf.add(mdir / "config.ini", arcname="config.ini")
    with pytest.raises(ValueError, match="missing"): extract_model_tarball(bad, tmp_path / "out2")
    with pytest.raises(FileNotFoundError): load_official_dfnet3(tmp_path / "nowhere")

# ---------------------------------------------------------------- model interface
def test_params_from_ini(mdir):
    assert DfNet3Params.from_ini(mdir / "config.ini") == DfNet3Params()
    with pytest.raises(ValueError, match="df_lookahead"): DfNet3Params(df_lookahead=5)

def test_forward_shapes_and_interface(model):
    from dfnb.stft_erb import DfParams
    assert model.df_params == DfParams() and model.lookahead == 2
    for B, T in ((1, 1), (2, 5), (3, 2)):
        x = torch.randn(B, 1, T, 481, 2); fe = torch.randn(B, 1, T, 32); fs = torch.randn(B, 1, T, 96, 2)
        with torch.no_grad(): out, m, c, l = model(x, fe, fs)
        assert out.shape == x.shape and m.shape == (B, 1, T, 32) and c.shape == (B, 5, T, 96, 2) and l.shape == (B, T, 1)
        with torch.no_grad():
            s, ls = model.enhance_spec(torch.view_as_complex(x[:, 0]), fe[:, 0], torch.view_as_complex(fs[:, 0]))
        assert s.shape == (B, T, 481) and s.is_complex() and ls.shape == (B, T)
        torch.testing.assert_close(torch.view_as_real(s), out[:, 0])
    with pytest.raises(ValueError, match="feat_erb"): model(x, fe[..., :16], fs)
    with pytest.raises(ValueError, match="feat_spec"): model.enhance_spec(s, ls[..., None].expand(-1, -1, 32), fs[:, 0])

def test_batch_equals_single(model):
    x = torch.randn(2, 1, 6, 481, 2); fe = torch.randn(2, 1, 6, 32); fs = torch.randn(2, 1, 6, 96, 2) * 0.3
    with torch.no_grad():
        both = model(x, fe, fs)[0]
        one = model(x[1:], fe[1:], fs[1:])[0]
    torch.testing.assert_close(both[1:], one, atol=1e-5, rtol=1e-5)

def test_gradients_flow():
    torch.manual_seed(0)
    net = DfNet3().train()
    x = torch.randn(2, 1, 8, 481, 2, requires_grad=True); fe = torch.randn(2, 1, 8, 32); fs = torch.randn(2, 1, 8, 96, 2)
    out, m, c, l = net(x, fe, fs)
    (out.square().mean() + m.mean() + c.square().mean() + l.mean()).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == ["df_dec.df_fc_a.0.weight", "df_dec.df_fc_a.0.bias"], missing    # alpha: exported, unused
    assert x.grad is not None and x.grad.abs().sum() > 0
