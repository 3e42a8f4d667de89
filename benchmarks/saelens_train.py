"""Runs in the SAELens venv (.venv-saelens): times SAELens TopK training steps, reports eval NMSE.

    python saelens_train.py TRAIN.npy EVAL.npy K D_SAE BATCH STEPS LR
Prints one JSON line. The step mirrors SAELens' SAETrainer._train_step (dead tracking, backward,
grad-norm clipping, Adam). Imports no mmfeatures.
"""

import json
import sys
import time

import numpy as np
import torch
from sae_lens import TopKTrainingSAE, TopKTrainingSAEConfig
from sae_lens.saes.sae import TrainStepInput

train_x, eval_x = (torch.from_numpy(np.load(p)) for p in sys.argv[1:3])
k, d_sae, batch, steps = (int(v) for v in sys.argv[3:7])
lr = float(sys.argv[7])
torch.manual_seed(0)
sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=train_x.shape[1], d_sae=d_sae, k=k))
opt = torch.optim.Adam(sae.parameters(), lr=lr)
since_fired = torch.zeros(d_sae)
times = []
for step in range(steps):
    x = train_x[step * batch : (step + 1) * batch]
    t = time.perf_counter()
    out = sae.training_forward_pass(TrainStepInput(sae_in=x, coefficients={}, dead_neuron_mask=since_fired > 5,
                                                   n_training_steps=step, is_logging_step=False))
    with torch.no_grad():
        fired = out.feature_acts.bool().float().sum(-2).bool()
        fired = fired.to_dense() if fired.is_sparse else fired
        since_fired += 1
        since_fired[fired] = 0
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(sae.parameters(), 1.0)
    opt.step()
    opt.zero_grad()
    times.append(time.perf_counter() - t)
sae.eval()
with torch.no_grad():
    recon = sae.decode(sae.encode(eval_x))
    nmse = float((recon - eval_x).pow(2).sum() / (eval_x - eval_x.mean(0)).pow(2).sum())
rate = batch * (steps - 1) / sum(times[1:])  # the first step is warm-up
print(json.dumps({"tokens_per_s": rate, "eval_nmse": nmse, "steps": steps, "sae_lens": "6.54.12"}))
