"""Analyses over activations: cross-lingual and cross-modal consistency, feature vs neuron
interpretability, each statistic next to a null. Pure functions over arrays; no plotting here."""

from mmfeatures.analysis.consistency import (
                                             CrossLingual,
                                             Overlap,
                                             concept_features,
                                             crosslingual,
                                             language_entropy,
                                             monolinguality,
                                             translation_overlap,
                                             translation_pairs,
)
from mmfeatures.analysis.crossmodal import (
                                             CrossModal,
                                             bridge_features,
                                             bridge_matrix,
                                             bridge_matrix_score,
                                             crossmodal,
                                             modality_score,
)
from mmfeatures.analysis.fidelity import Fidelity, fidelity, fidelity_sweep
from mmfeatures.analysis.interpret import Comparison, Interpretability, compare, interpretability
from mmfeatures.analysis.labels import Labels, pool_by_example, unit_activations
from mmfeatures.analysis.matching import (
                                             Matching,
                                             StreamingCorrelation,
                                             aligned_units,
                                             best_matched,
                                             check_aligned,
                                             correlate_stores,
                                             decoder_cosine,
                                             hungarian,
                                             max_match,
                                             mutual_nn,
                                             selected_null,
                                             sparse_match,
                                             streaming_topm,
                                             subset_null,
)
from mmfeatures.analysis.partners import (
                                             Partners,
                                             best_partners,
                                             match_one_to_one,
                                             max_correlation,
                                             permuted_rows_null,
)
from mmfeatures.analysis.similarity import cka_null, linear_cka, rsa, svcca
from mmfeatures.analysis.stats import Score, benjamini_hochberg, permuted
from mmfeatures.analysis.steering import max_activation, retrieval_curve, splice, steer, zero_shot_curve
from mmfeatures.analysis.synthetic import Planted, planted

__all__ = ["Fidelity", "fidelity", "fidelity_sweep", "max_activation", "retrieval_curve", "splice", "steer", "zero_shot_curve", "Matching", "StreamingCorrelation", "aligned_units", "check_aligned", "correlate_stores", "decoder_cosine", "hungarian",
           "linear_cka", "max_correlation", "max_match", "mutual_nn", "permuted_rows_null", "rsa", "selected_null",
           "sparse_match", "streaming_topm", "Partners", "best_partners", "match_one_to_one", "cka_null", "subset_null", "svcca", "best_matched",
           "Comparison", "CrossLingual", "concept_features", "CrossModal", "Interpretability", "Labels", "Overlap", "Planted", "Score",
           "benjamini_hochberg", "bridge_features", "bridge_matrix", "bridge_matrix_score",
           "compare", "crosslingual", "crossmodal", "interpretability", "language_entropy",
           "modality_score", "monolinguality", "permuted", "planted", "pool_by_example",
           "translation_overlap", "translation_pairs", "unit_activations"]
