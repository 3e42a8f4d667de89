"""Runs inside the tools environment (`make test-tools`, tests/test_sae_tools_compat.py); imports no mmfeatures.

    python tools_side.py OUT_DIR

Each tool trains tiny SAEs (d_in 16, 64 latents, from its own random init, a few dozen steps) with its own classes and
trainer, saves them its own way, loads them back with its own loader, and writes its encode and decode of the same
inputs beside each:

    OUT_DIR/x.npy                                   inputs (32, 16), shifted positive
    OUT_DIR/manifest.json                           per SAE: load_sae name, the tool's hook name, its class
    OUT_DIR/versions.json                           the tools' and torch's versions
    OUT_DIR/sparsify/run/<hookpoint>/               Trainer.save(): cfg.json + sae.safetensors, config.json in run/
    OUT_DIR/dictionary_learning/<run>/trainer_<i>/  trainSAE(): ae.pt + config.json
    OUT_DIR/saev/<id>/                              nn.dump(): sae.pt, and config.json as training.py writes it
    each SAE folder also holds tool_z.npy (32, 64) and tool_r.npy (32, 16): the tool's latents and reconstruction
"""

import dataclasses
import json
import sys
import types
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

D, F, K = 16, 64, 4
OUT = Path(sys.argv[1])
G = torch.Generator().manual_seed(0)
SHIFT = torch.linspace(0.5, 2.0, D)             # a mean the SAEs' b_dec learns, so offsets matter
X_bd = torch.randn(32, D, generator=G) + SHIFT
manifest = []


def batch(n: int = 64) -> torch.Tensor:
    return torch.randn(n, D, generator=G) + SHIFT


def record(folder: Path, spec: str, hook: str, cls: str, z_bf: torch.Tensor, r_bd: torch.Tensor) -> None:
    np.save(folder / "tool_z.npy", z_bf.detach().float().numpy())
    np.save(folder / "tool_r.npy", r_bd.detach().float().numpy())
    manifest.append({"spec": spec, "hook": hook, "class": cls, "folder": str(folder)})


# -- EleutherAI sparsify: its Trainer on a tiny random GPT-NeoX, then SparseCoder.load_from_disk -----------------------

def run_sparsify() -> None:
    from datasets import Dataset
    from sparsify import SparseCoder, SparseCoderConfig, Trainer
    from sparsify.__main__ import RunConfig
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(GPTNeoXConfig(hidden_size=D, num_hidden_layers=2, num_attention_heads=2,
                                             intermediate_size=32, vocab_size=64, max_position_embeddings=32))
    tokens = Dataset.from_dict({"input_ids": torch.randint(0, 64, (48, 16), generator=G).tolist()})
    cfg = RunConfig(sae=SparseCoderConfig(num_latents=F, k=K), model="local/tiny-gpt-neox", batch_size=4,
                    hookpoints=["layers.1", "layers.0.mlp"], optimizer="adam", lr_warmup_steps=2,
                    log_to_wandb=False, save_dir=str(OUT / "sparsify"), run_name="run",
                    data_preprocessing_num_proc=1)
    Trainer(cfg, tokens.with_format("torch"), model).fit()
    for hook in ("layers.1", "layers.0.mlp"):
        folder = OUT / "sparsify" / "run" / hook
        sae = SparseCoder.load_from_disk(folder)
        with torch.no_grad():
            acts, indices, _ = sae.encode(X_bd)
            z = torch.zeros(len(X_bd), sae.num_latents).scatter(-1, indices, acts)
            record(folder, f"sparsify:{folder}", hook, "SparseCoder", z, sae.decode(acts, indices))


# -- saprmarks/dictionary_learning: trainSAE with each trainer, then utils.load_dictionary ---------------------------

def stub(name: str, **attrs) -> None:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module


def run_dictionary_learning() -> None:
    # Stubbed, never called here: nnsight's LanguageModel runs a language model for ActivationBuffer and evaluation
    # (imported by the package's __init__, training.py and utils.py); nnsight 0.3 pulls torchvision and diffusers.
    # wandb only logs training curves (imported by training.py; trainSAE runs with use_wandb=False).
    stub("nnsight", LanguageModel=type("LanguageModel", (), {}))
    stub("wandb")
    from dictionary_learning.dictionary import AutoEncoderNew
    from dictionary_learning.trainers import BatchTopKTrainer, JumpReluTrainer, StandardTrainer, TopKTrainer
    from dictionary_learning.trainers.matryoshka_batch_top_k import MatryoshkaBatchTopKTrainer
    from dictionary_learning.trainers.standard import StandardTrainerAprilUpdate
    from dictionary_learning.training import trainSAE
    from dictionary_learning.utils import load_dictionary

    steps = 40
    common = dict(steps=steps, activation_dim=D, dict_size=F, lm_name="EleutherAI/pythia-70m-deduped", device="cpu",
                  seed=0, warmup_steps=4)
    topk = dict(k=K, threshold_start_step=10)   # thresholds calibrated from step 10, as from step 1000 in a real run
    configs = [dict(trainer=StandardTrainer, layer=3, submodule_name="resid_post_layer_3", sparsity_warmup_steps=4),
               dict(trainer=TopKTrainer, layer=1, submodule_name="attn_out_layer_1", **topk),
               dict(trainer=BatchTopKTrainer, layer=4, submodule_name=None, **topk),
               dict(trainer=MatryoshkaBatchTopKTrainer, layer=0, submodule_name="resid_post_layer_0",
                    group_fractions=[0.25, 0.75], **topk),
               dict(trainer=JumpReluTrainer, layer=5, submodule_name="resid_post_layer_5", sparsity_warmup_steps=4,
                    target_l0=8.0)]
    # AutoEncoderNew, with the trainer made for it: a run of its own, as it has no scale_biases for trainSAE to fold
    plain = [dict(trainer=StandardTrainerAprilUpdate, dict_class=AutoEncoderNew, layer=2,
                  submodule_name="mlp_out_layer_2", sparsity_warmup_steps=4)]
    data = iter(lambda: batch(), None)          # endless batches of 64 activations
    for run, normalize, cs in (("normalized", True, configs), ("plain", False, plain)):
        cs = [{**common, **c} for c in cs]
        torch.manual_seed(0)                    # JumpReluTrainer keeps its seed but never seeds: this one holds
        # normalize_activations: trains on x / norm_factor and folds the factor into the saved biases (real runs)
        trainSAE(data, cs, steps, save_dir=str(OUT / "dictionary_learning" / run),
                 normalize_activations=normalize, device="cpu")
        if run == "plain":
            # StandardTrainerAprilUpdate.config says dict_class 'AutoEncoder' whatever it trained, so 0.1.0's own
            # load_dictionary fails on this file; corrected here as its user would
            path = OUT / "dictionary_learning" / run / "trainer_0" / "config.json"
            config = json.loads(path.read_text())
            config["trainer"]["dict_class"] = "AutoEncoderNew"
            path.write_text(json.dumps(config, indent=4))
        for i in range(len(cs)):
            folder = OUT / "dictionary_learning" / run / f"trainer_{i}"
            ae, config = load_dictionary(str(folder), device="cpu")
            trainer = config["trainer"]
            with torch.no_grad():
                z = ae.encode(X_bd)
                record(folder, f"dictionary_learning:{folder}", trainer["submodule_name"] or str(trainer["layer"]),
                       trainer["dict_class"], z, ae.decode(z))


# -- osu-nlp-group/saev 0.1.0: a SparseAutoencoder trained by its own loss, nn.dump, then nn.load ------------------

def run_saev() -> None:
    from saev import config, nn

    sae_cfg = config.SparseAutoencoder(d_vit=D, exp_factor=F // D, n_reinit_samples=256, seed=0)
    torch.manual_seed(0)
    sae = nn.SparseAutoencoder(sae_cfg)
    sae.init_b_dec(batch(256))
    optimizer = torch.optim.Adam(sae.parameters(), lr=1e-2)
    for _ in range(40):                         # training.py's step: loss, parallel grads removed, unit W_dec rows
        loss = sae(batch())[2].loss
        optimizer.zero_grad()
        loss.backward()
        sae.remove_parallel_grads()
        optimizer.step()
        sae.normalize_w_dec()
    run = config.Train(data=config.DataLoad(layer=11, scale_mean=False, scale_norm=False), sae=sae_cfg,
                       ckpt_path=str(OUT / "saev"))
    folder = OUT / "saev" / "run0"
    nn.dump(str(folder / "sae.pt"), sae)        # training.py: nn.dump(ckpt_path/id/sae.pt), then its config.json
    (folder / "config.json").write_text(json.dumps(dataclasses.asdict(run), indent=4))
    loaded = nn.load(str(folder / "sae.pt"))
    with torch.no_grad():
        _, z, _ = loaded(X_bd)
        record(folder, f"saev:{folder / 'sae.pt'}", str(run.data.layer), "SparseAutoencoder", z, loaded.decode(z))


OUT.mkdir(parents=True, exist_ok=True)
np.save(OUT / "x.npy", X_bd.numpy())
run_sparsify()
run_dictionary_learning()
run_saev()
(OUT / "manifest.json").write_text(json.dumps(manifest, indent=1))
(OUT / "versions.json").write_text(json.dumps({name: version(name) for name in
                                              ("eai-sparsify", "dictionary-learning", "saev", "torch")}))
