"""mmfeatures: are SAE features shared across languages, modalities and models?

The public surface (what notebooks use):

>>> import mmfeatures as mmf
>>> [m.name for m in mmf.list_models()][:3]
['offline:e5-small', 'offline:e5-small-enpt', 'offline:minilm-l6']
>>> enc = mmf.load_encoder("offline:e5-small")          # doctest: +SKIP
"""

from mmfeatures.activations import ActivationStore, ExtractResult, extract, write_store  # noqa: E402
from mmfeatures.datasets import ConceptDataset, load_hf_dataset, load_image_folder, load_table  # noqa: E402
from mmfeatures.encoders import Encoder, ModelInfo, list_models, load_encoder  # noqa: E402
from mmfeatures.errors import (  # noqa: E402
    ArtifactConflictError,
    CorruptFileError,
    InputError,
    MissingDependencyError,
    MMFeaturesError,
    ModelNotAvailableError,
    SiteError,
    UnknownModelError,
)
from mmfeatures.sae import (  # noqa: E402
    SAE,
    BatchTopK,
    JumpReLU,
    MatryoshkaBatchTopK,
    ReLU,
    TopK,
    TrainConfig,
    TrainResult,
    load_sae,
    train,
)
from mmfeatures.types import Example, Modality, Site  # noqa: E402
from mmfeatures.version import __version__  # noqa: E402

__all__ = [
    "SAE",
    "ActivationStore",
    "BatchTopK",
    "ConceptDataset",
    "ArtifactConflictError",
    "CorruptFileError",
    "Encoder",
    "Example",
    "ExtractResult",
    "InputError",
    "JumpReLU",
    "MatryoshkaBatchTopK",
    "MMFeaturesError",
    "MissingDependencyError",
    "Modality",
    "ModelInfo",
    "ModelNotAvailableError",
    "ReLU",
    "Site",
    "SiteError",
    "TopK",
    "TrainConfig",
    "TrainResult",
    "UnknownModelError",
    "__version__",
    "extract",
    "list_models",
    "load_encoder",
    "load_image_folder",
    "load_sae",
    "load_hf_dataset",
    "load_table",
    "train",
    "write_store",
]
