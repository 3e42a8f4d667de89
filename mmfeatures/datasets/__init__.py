"""Concept-aligned inputs: ConceptDataset, loaders for users' own data, image helpers, and corpora fetched from
Debian's archive (LibreOffice's help, Tux Paint's stamps; docs/data.md)."""

from mmfeatures.datasets.concepts import ConceptDataset
from mmfeatures.datasets.debian import DebianFetchError, data_card, data_cards
from mmfeatures.datasets.hfdata import load_hf_dataset
from mmfeatures.datasets.images import content_digest, fingerprint, load_image, to_rgb
from mmfeatures.datasets.languages import ISO_639_1, check_language
from mmfeatures.datasets.libreoffice import (
    LIBREOFFICE_LANGUAGES,
    fetch_libreoffice,
    libreoffice_corpus,
    libreoffice_counts,
)
from mmfeatures.datasets.loaders import load_image_folder, load_table
from mmfeatures.datasets.tuxpaint import fetch_tuxpaint, tuxpaint_stamps

__all__ = ["ISO_639_1", "LIBREOFFICE_LANGUAGES", "ConceptDataset", "DebianFetchError", "check_language",
           "content_digest", "data_card", "data_cards", "fetch_libreoffice", "fetch_tuxpaint", "fingerprint",
           "libreoffice_corpus", "libreoffice_counts", "load_hf_dataset", "load_image", "load_image_folder",
           "load_table", "to_rgb", "tuxpaint_stamps"]
