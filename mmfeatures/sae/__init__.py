"""Sparse autoencoders: architectures as types, a resumable multi-SAE trainer, SAELens I/O."""

from mmfeatures.sae.io import load_sae, read_sae_folder, save_sae
from mmfeatures.sae.modeling import (
           SAE,
           Arch,
           BatchTopK,
           ForwardOutput,
           JumpReLU,
           ReLU,
           TopK,
           geometric_median,
)
from mmfeatures.sae.pretrained import EncoderOnlyError, EncoderOnlySAE
from mmfeatures.sae.train import TrainConfig, TrainingDiverged, check_compatible, train

__all__ = ["SAE", "Arch", "BatchTopK", "EncoderOnlyError", "EncoderOnlySAE", "ForwardOutput", "JumpReLU", "ReLU",
           "TopK", "TrainConfig", "TrainingDiverged", "check_compatible", "geometric_median", "load_sae",
           "read_sae_folder", "save_sae", "train"]
