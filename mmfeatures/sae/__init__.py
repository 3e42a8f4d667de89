"""Sparse autoencoders: architectures as types, a resumable multi-SAE trainer, SAELens I/O."""

from mmfeatures.sae.compat import check_compatible
from mmfeatures.sae.io import load_sae, read_sae_folder, save_sae, shipped_saes
from mmfeatures.sae.latents import LatentSet, encode_store
from mmfeatures.sae.modeling import (
           ARCHS,
           SAE,
           Arch,
           BatchTopK,
           ForwardOutput,
           JumpReLU,
           MatryoshkaBatchTopK,
           ReLU,
           TopK,
           arch_name,
           geometric_median,
           make_arch,
)
from mmfeatures.sae.pretrained import EncoderOnlyError, EncoderOnlySAE
from mmfeatures.sae.train import (
           TrainConfig,
           TrainedSAE,
           TrainingDiverged,
           TrainResult,
           train,
)

__all__ = ["ARCHS", "SAE", "Arch", "BatchTopK", "EncoderOnlyError", "EncoderOnlySAE", "ForwardOutput", "JumpReLU",
           "MatryoshkaBatchTopK",
           "LatentSet", "ReLU", "TopK", "TrainConfig", "TrainResult", "TrainedSAE", "TrainingDiverged", "arch_name",
           "check_compatible", "encode_store", "geometric_median", "load_sae", "make_arch", "read_sae_folder", "save_sae", "shipped_saes", "train"]
