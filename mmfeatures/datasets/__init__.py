"""Concept-aligned inputs: ConceptDataset, loaders for users' own data, image helpers."""

from mmfeatures.datasets.concepts import ConceptDataset
from mmfeatures.datasets.hfdata import load_hf_dataset
from mmfeatures.datasets.images import content_digest, fingerprint, load_image, to_rgb
from mmfeatures.datasets.languages import ISO_639_1, check_language
from mmfeatures.datasets.loaders import load_image_folder, load_table

__all__ = ["ISO_639_1", "ConceptDataset", "check_language", "content_digest", "fingerprint", "load_image",
           "load_hf_dataset", "load_image_folder", "load_table", "to_rgb"]
