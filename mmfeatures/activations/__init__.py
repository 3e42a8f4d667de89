"""Activations: extract() into resumable, self-describing on-disk stores, and read them back."""

from mmfeatures.activations.external import write_store
from mmfeatures.activations.extract import POOLINGS, ExtractResult, NonFiniteError, extract, pool_rows
from mmfeatures.activations.inputs import Example, as_examples, fingerprint, load_image
from mmfeatures.activations.store import ActivationStore, Provenance, Stats, StoreConfig

__all__ = ["POOLINGS", "ActivationStore", "Example", "ExtractResult", "NonFiniteError", "Provenance", "Stats",
           "StoreConfig", "as_examples", "extract", "fingerprint", "load_image", "pool_rows",
           "write_store"]
