"""Runs inside the SAELens environment (see tests/test_saelens_compat.py); imports no mmfeatures.

    python saelens_side.py load  INPUTS.npy FOLDER...   encode/decode with SAELens, save outputs and metadata
    python saelens_side.py write INPUTS.npy OUT_DIR     write SAELens folders + their outputs
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
from sae_lens import (
    SAE,
    JumpReLUSAE,
    JumpReLUSAEConfig,
    StandardSAE,
    StandardSAEConfig,
    TopKSAE,
    TopKSAEConfig,
)


def outputs(sae, x, folder):
    with torch.no_grad():
        z = sae.encode(x)
        np.save(Path(folder) / "saelens_z.npy", z.numpy())
        np.save(Path(folder) / "saelens_r.npy", sae.decode(z).numpy())
    # the metadata as SAELens holds it after loading (mmfeatures' fields must survive)
    meta = sae.cfg.metadata.to_dict() if hasattr(sae.cfg.metadata, "to_dict") else dict(sae.cfg.metadata)
    (Path(folder) / "saelens_metadata.json").write_text(json.dumps(meta, default=str))


mode, x = sys.argv[1], torch.from_numpy(np.load(sys.argv[2]))
if mode == "load":
    for folder in sys.argv[3:]:
        outputs(SAE.load_from_disk(folder), x, folder)
else:
    out = Path(sys.argv[3])
    torch.manual_seed(0)
    d_in, d_sae = x.shape[1], 64
    saes = {"topk": TopKSAE(TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=4)),
            "standard": StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae)),
            "jumprelu": JumpReLUSAE(JumpReLUSAEConfig(d_in=d_in, d_sae=d_sae)),
            # the input flags mmfeatures folds into the weights on load
            "topk-no-b-dec": TopKSAE(TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=4, apply_b_dec_to_input=False)),
            "topk-rescaled": TopKSAE(TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=4, rescale_acts_by_decoder_norm=True)),
            "jumprelu-no-b-dec": JumpReLUSAE(JumpReLUSAEConfig(d_in=d_in, d_sae=d_sae, apply_b_dec_to_input=False))}
    for name, sae in saes.items():
        with torch.no_grad():
            for p in sae.parameters():
                p.normal_(0, 0.3)
            if hasattr(sae, "threshold"):
                sae.threshold.uniform_(0.0, 0.3)
        sae.save_model(str(out / name))
        outputs(sae, x, out / name)
