"""The corpora from Debian's archive (docs/data.md): real packages, fetched once into the user cache.

`make data` fetches them at set-up; run alone, this file fetches what it needs (about 170 MB with Tux Paint).
"""

from __future__ import annotations

import re
import warnings

import pytest

from mmfeatures.datasets import (
    DebianFetchError,
    data_card,
    fetch_libreoffice,
    libreoffice_corpus,
    load_image,
    tuxpaint_stamps,
)
from mmfeatures.datasets.debian import debian_root, fetch_packages, package_dir
from mmfeatures.datasets.libreoffice import (
    is_translation,
    libreoffice_paragraphs,
    split_of,
    translated_paragraphs,
)
from mmfeatures.errors import InputError, MissingDependencyError
from mmfeatures.types import Modality


@pytest.fixture(scope="module")
def help_folders():
    return fetch_libreoffice(["en", "de", "ja"], progress=False)


def keys_by_language(ds):
    out: dict[str, set[str]] = {}
    for e in ds:
        out.setdefault(e.language, set()).add(e.concept)
    return out


def test_paragraphs_align_across_languages_by_key(help_folders):
    ds = libreoffice_corpus(["en", "de"], split="all", aligned=True, max_paragraphs=3000, progress=False)
    assert len(ds) == 6000 and ds.languages == ("de", "en")
    assert keys_by_language(ds)["en"] == keys_by_language(ds)["de"]
    en = {e.concept: e for e in ds if e.language == "en"}
    for e in (x for x in ds if x.language == "de"):
        assert e.id == f"libreoffice/de/{e.concept}" and re.fullmatch(r"text/\w+/.+\.html#par_id\w+", e.concept)
        assert e.content != en[e.concept].content and len(e.content) >= 20 and e.modality is Modality.TEXT
        assert ds.categories[e.concept] == e.concept.split("/")[1]          # the help module: shared, scalc, ...
    known = "text/shared/find_toolbar.html#par_id3147762"                     # the example paragraph
    assert libreoffice_paragraphs("en")[known].startswith("The Find toolbar")
    assert libreoffice_paragraphs("de")[known].startswith("Die Suchleiste")


def test_train_and_heldout_are_disjoint_stable_and_the_same_in_every_language(help_folders):
    train_ds = libreoffice_corpus(["en", "de"], progress=False)
    heldout_ds = libreoffice_corpus(["en", "de"], split="heldout", progress=False)
    train, heldout = keys_by_language(train_ds), keys_by_language(heldout_ds)
    for language in ("en", "de"):
        assert not train[language] & heldout[language]
        # 10% of the keys, less the held-out paragraphs that repeat a training paragraph's text (help boilerplate)
        assert 0.05 < len(heldout[language]) / (len(train[language]) + len(heldout[language])) < 0.10
        seen = {e.content for e in train_ds if e.language == language}
        assert not any(e.content in seen for e in heldout_ds if e.language == language)
        assert all(split_of(k) == "heldout" for k in heldout[language])
    assert not (train["en"] | train["de"]) & (heldout["en"] | heldout["de"])
    # golden values: the split depends on the key alone, never on a seed, the languages or the package
    assert [split_of(f"text/x.html#par_id{i}") for i in (9, 10, 38)] == ["train", "heldout", "heldout"]
    a = libreoffice_corpus(["de", "en"], max_paragraphs=200, seed=1, aligned=True, progress=False)
    b = libreoffice_corpus(["en", "de"], max_paragraphs=200, seed=1, aligned=True, progress=False)
    assert len(a.concepts) == 200 and a.concepts == b.concepts and keys_by_language(a)["de"] == set(a.concepts)
    assert a.fingerprint() == libreoffice_corpus(["de", "en"], max_paragraphs=200, seed=1, aligned=True,
                                                 progress=False).fingerprint()
    assert libreoffice_corpus(["de", "en"], max_paragraphs=200, seed=2, aligned=True, progress=False
                              ).concepts != a.concepts


def test_untranslated_paragraphs_are_dropped(help_folders):
    english, japanese = libreoffice_paragraphs("en"), libreoffice_paragraphs("ja")
    untranslated = {k for k, t in japanese.items() if t == english.get(k)}
    assert len(untranslated) > 10_000                   # Japanese keeps over a third of its help in English
    kept = translated_paragraphs("ja", english)
    assert not untranslated & set(kept) and 10_000 < len(kept) < len(japanese) - len(untranslated) + 1
    ja = libreoffice_corpus(["en", "ja"], split="all", progress=False)
    assert all(e.content != english.get(e.concept) for e in ja if e.language == "ja")
    assert len(keys_by_language(ja)["en"]) > len(keys_by_language(ja)["ja"])
    assert "text/shared/find_toolbar.html#par_id3147762" in untranslated     # the example, in English
    # English text is not Japanese even where it differs from en-US; Japanese naming English menus is
    assert not is_translation(english["text/shared/find_toolbar.html#par_id3147762"] + " 検索", "ja")
    assert is_translation("検索ツールバーを使用すると、LibreOffice ドキュメントの内容をすばやく検索できます。", "ja")
    assert not is_translation("=COVAR(A1:A30;B1:B30) is the covariance.", "de")


def test_each_package_has_a_data_card(help_folders):
    card = data_card("libreoffice-help-de")
    assert card["package"] == "libreoffice-help-de" and card["source"] == "libreoffice"
    assert re.fullmatch(r"\d+:\d[\w.+~-]*", card["version"]) and card["licence"] == "MPL-2.0"
    assert card["copyright"] == "usr/share/doc/libreoffice-help-de/copyright"
    n = card["counts"]
    assert n["paragraphs"] > 30_000 and n["characters"] > 3_000_000
    assert n["train"] + n["heldout"] == n["translated"] <= n["paragraphs"]
    assert n["translated"] == len(translated_paragraphs("de"))
    folder = help_folders["de"]
    assert folder == package_dir("libreoffice-help-de") and folder.parent == debian_root()
    assert (folder / "card.json").is_file() and (folder / "paragraphs.json").is_file()
    assert (folder / card["copyright"]).is_file()
    assert not list(debian_root().glob(".*.tmp-*")), "an unfinished fetch was left in the cache"


def test_a_fetched_package_is_skipped_without_apt(help_folders, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))        # no apt-get, no dpkg-deb: nothing may need them
    assert fetch_libreoffice(["de"], progress=False) == {"en": help_folders["en"], "de": help_folders["de"]}
    with pytest.raises(MissingDependencyError, match=r"apt-get.*not a Debian.*mmfeatures data fetch"):
        fetch_packages(["mmfeatures-no-such-package"], progress=False)


def test_a_failed_fetch_leaves_nothing_behind():
    def broken(package, folder):
        assert (folder / "usr" / "share" / "doc" / package / "copyright").is_file()   # unpacked, then it fails
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fetch_packages(["hello"], broken, progress=False)                             # a 53 kB package
    assert package_dir("hello") is None and not list(debian_root().glob(".hello-*"))


def test_fetch_errors_name_the_fix():
    with pytest.raises(DebianFetchError, match=r"mmfeatures-no-such-package.*apt-get update"):
        fetch_packages(["mmfeatures-no-such-package"], progress=False)
    with pytest.raises(InputError, match=r"unknown language code 'jp'.*did you mean 'ja'\?"):
        libreoffice_corpus(["en", "jp"], progress=False)
    with pytest.raises(InputError, match=r"help in Debian has no 'ar' \(of the built-in languages it lacks ar, fa, sw\)"):
        fetch_libreoffice(["ar"], progress=False)
    with pytest.raises(InputError, match=r"split 'test'; use one of train, heldout, all"):
        libreoffice_corpus(["de"], split="test", progress=False)
    with pytest.raises(InputError, match=r"single string"):
        libreoffice_corpus("de", progress=False)


def test_tuxpaint_pictures_with_captions_in_many_languages():
    ds = tuxpaint_stamps(["en", "de", "ja"], svg=False, progress=False)
    images = [e for e in ds if e.modality is Modality.IMAGE]
    assert len(images) == 785 and all(e.language is None and e.content.suffix == ".png" for e in images)
    assert load_image(images[0].content, images[0].id).mode == "RGB"
    captions = {(e.id.rsplit("/", 1)[0], e.language): e.content for e in ds if e.modality is Modality.TEXT}
    assert captions["tuxpaint/animals/marsupials/kangaroo", "en"] == "A red kangaroo."
    assert captions["tuxpaint/animals/marsupials/kangaroo", "de"] == "Ein rotes Riesenkänguru."
    assert ds.categories["kangaroo"] == "animals" and ("tuxpaint/animals/marsupials/kangaroo/image"
                                                       in {e.id for e in images})
    assert {"household/mouse", "animals/mouse"} <= set(ds.concepts)           # a computer's and an animal
    assert any(img.concept == "kangaroo" for img, _ in ds.pairs("de"))
    card = data_card("tuxpaint-stamps-default")
    assert card["licence"] == "GPL-2" and card["source"] == "tuxpaint-stamps"
    n = card["counts"]
    assert (n["stamps"], n["png"], n["svg_only"]) == (952, 785, 165) and n["languages"] >= 70
    assert n["captions_per_language"]["de"] > 900 and sum(n["captions_per_language"].values()) == n["captions"]
    with pytest.raises(InputError, match=r"'jp' for Tux Paint's captions; did you mean 'ja'\?"):
        tuxpaint_stamps(["jp"], progress=False)


def test_tuxpaint_says_how_many_svg_stamps_it_skips():
    pytest.importorskip("PIL")
    try:
        import cairosvg  # noqa: F401
        pytest.skip("cairosvg is installed, so SVG stamps are rendered rather than skipped")
    except ImportError:
        pass
    with pytest.warns(UserWarning, match=r"165 stamps have only an SVG picture.*pip install cairosvg"):
        ds = tuxpaint_stamps(["en"], progress=False)
    assert len([e for e in ds if e.modality is Modality.IMAGE]) == 785
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tuxpaint_stamps(["en"], svg=False, progress=False)


def test_the_pipeline_and_the_cli_name_the_corpora(help_folders, capsys):
    from mmfeatures.cli import main
    from mmfeatures.pipeline.extract import load_data

    heldout = load_data("libreoffice-heldout", ("en", "de"))
    assert heldout.name == "libreoffice-heldout" and heldout.languages == ("de", "en")
    assert all(split_of(c) == "heldout" for c in heldout.concepts)
    with warnings.catch_warnings():                         # about the SVG stamps it leaves out without cairosvg
        warnings.simplefilter("ignore")
        mixed = load_data("concepts,tuxpaint", ("en",))      # 'camera' is in both: the sentences' category wins
    assert mixed.languages == ("en",) and mixed.categories["camera"] == "objects"
    assert {"concepts", "tuxpaint"} == {e.id.split("/")[0] for e in mixed}
    assert main(["data", "card", "--languages", "de", "--only", "libreoffice"]) == 0
    assert re.search(r"libreoffice-help-de \S+ \(MPL-2.0\): \d+ paragraphs, \d+ translated", capsys.readouterr().out)
    assert main(["data", "card", "--languages", "jp"]) == 1
    assert "did you mean 'ja'" in capsys.readouterr().err
