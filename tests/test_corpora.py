"""The FreeDict concept set and the general-domain training corpus, on the packages `make data` fetched."""

from __future__ import annotations

import pytest

from mmfeatures.datasets.freedict import LANGUAGES, concepts, freedict_words, translation
from mmfeatures.datasets.general import evaluation_texts, general_corpus, normalise, text_split


def test_a_translation_is_the_first_sense_without_tags_and_prefers_the_entry_with_examples():
    ding = ["dog /dɒɡ/\nKlampe <fem>, Klemme <fem> [techn.]\n",
            'dog /dɒɡ/\nHund <masc> [zool.]\n      "train a dog"  - einen Hund abrichten\n']
    assert translation(ding, "dog") == "Hund"
    assert translation(["red /rɛd/\n1. (der, dest)  kırmızı, kızıl, al\n2. komünist\n"], "red") == "kırmızı"
    assert translation(["bread /bɹɛd/ <n>\nパン 2.\nbaked dough\n"], "bread") == "パン"
    assert translation(["Red /ridkrɔs/\nCruz Roja\n", "red /rid/\nrojo\n"], "red") == "rojo"
    assert translation(["phone <suffix>\n者\n", "phone <n>\n単音, 音価\n"], "phone") == "単音"
    assert translation([]) == ""


def test_freedict_words_are_one_word_per_concept_and_language():
    ds = freedict_words()
    assert {e.language for e in ds} == {"en", *LANGUAGES}
    ids = [e.id for e in ds]
    assert len(ids) == len(set(ids)) and {e.group for e in ds} == {"1"}
    by = {(e.concept, e.language): e.content for e in ds}
    assert len(concepts()) >= 250 and all((c, "en") in by for c in concepts())
    assert by[("dog", "de")] == "Hund" and by[("dog", "ja")] == "犬" and by[("two", "ru")] == "два"
    assert len(ds) > 10 * len(concepts())         # most concepts have most languages


def test_the_general_corpus_is_deduplicated_split_by_text_and_free_of_evaluation_texts():
    train, heldout = general_corpus("train", per_source=200), general_corpus("heldout", per_source=200)
    texts = [normalise(e.content).casefold() for e in train]
    assert len(texts) == len(set(texts)), "a text repeats within the training split"
    assert not set(texts) & {normalise(e.content).casefold() for e in heldout}, "a text is in both splits"
    assert not set(texts) & evaluation_texts(), "a training text equals a text the verdicts score"
    assert all(text_split(e.content) == "train" for e in train)
    assert {e.concept for e in train} == {"fortunes", "dictionary", "tuxpaint", "libreoffice"}
    assert {"en", "de", "es", "ja", "zh"} <= {e.language for e in train}
    assert "\x1b" not in "".join(texts)


def test_a_bad_split_or_slice_is_refused():
    from mmfeatures.errors import InputError

    with pytest.raises(InputError, match="split 'test'"):
        general_corpus("test")
    with pytest.raises(InputError, match="per_source = 0"):
        general_corpus(per_source=0)
