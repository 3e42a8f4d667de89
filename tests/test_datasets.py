"""ConceptDataset and the loaders for users' own data (offline, on local files of the real shapes)."""

from __future__ import annotations

import json

import pytest
from PIL import Image

import mmfeatures as mmf
from mmfeatures.datasets import ConceptDataset, check_language, load_image_folder, load_table
from mmfeatures.types import Example, Modality

CSV = """id,text,language,concept,category
dog-en,The dog sleeps in the garden.,en,dog,animals
dog-ja,犬が庭で寝ています。,ja,dog,animals
cat-en,The cat sits on the mat.,en,cat,animals
pizza-it,Mangiamo una pizza stasera.,it,pizza,food
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_and_jsonl_load_the_same_dataset(tmp_path):
    csv_ds = load_table(write(tmp_path, "c.csv", CSV))
    rows = [dict(zip(CSV.splitlines()[0].split(","), line.split(","), strict=True)) for line in CSV.splitlines()[1:]]
    jsonl_ds = load_table(write(tmp_path, "c.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in rows)))
    assert [e.id for e in csv_ds] == [e.id for e in jsonl_ds] == ["dog-en", "dog-ja", "cat-en", "pizza-it"]
    assert csv_ds.fingerprint() == jsonl_ds.fingerprint()
    assert csv_ds.concepts == ("cat", "dog", "pizza") and csv_ds.languages == ("en", "it", "ja")
    assert csv_ds.categories == {"dog": "animals", "cat": "animals", "pizza": "food"}
    assert [e.id for e in csv_ds.select(concepts=["dog"], languages=["ja"])] == ["dog-ja"]
    assert len(csv_ds.select(categories=["food"])) == 1
    groups = csv_ds.by_concept()
    assert sorted(groups) == ["cat", "dog", "pizza"] and [e.language for e in groups["dog"]] == ["en", "ja"]


@pytest.mark.parametrize("content, match", [
    ("text,lang,concept\nhi,en,x\n", r"missing column\(s\) \['language'\].*text=\.\.\., language=\.\.\."),
    ("text,language,concept\nhi,en,x\n,en,y\n", r"c\.csv:3: empty 'text'"),
    ("text,language,concept\nhi,english,x\n", r"c\.csv:2: unknown language code 'english'.*ISO 639-1"),
    ("text,language,concept\nhi,jp,x\n", r"unknown language code 'jp'.*did you mean"),
    ("text,language,concept,category\na,en,x,animals\nb,fr,x,food\n", r"c\.csv:3: concept 'x' has category 'food'"),
    ("text,language,concept\nhi,en,x,extra\n", r"c\.csv:2: wrong number of fields"),
    ("", r"no rows"),
])
def test_bad_tables_name_the_file_line_and_fix(tmp_path, content, match):
    with pytest.raises(mmf.InputError, match=match):
        load_table(write(tmp_path, "c.csv", content))


def test_undecodable_bytes_and_bad_json_name_the_line(tmp_path):
    bad = tmp_path / "b.csv"
    bad.write_bytes(b"text,language,concept\nok,en,x\n\xff\xfe broken,en,y\n")
    with pytest.raises(mmf.InputError, match=r"b\.csv:3: not valid UTF-8"):
        load_table(bad)
    with pytest.raises(mmf.InputError, match=r"j\.jsonl:2: not valid JSON"):
        load_table(write(tmp_path, "j.jsonl", '{"text": "a", "language": "en", "concept": "x"}\n{oops\n'))
    with pytest.raises(mmf.InputError, match="no such file"):
        load_table(tmp_path / "missing.csv")
    with pytest.raises(mmf.InputError, match="unknown table format"):
        load_table(write(tmp_path, "t.xlsx", "x"))


def test_language_codes_accept_bcp47_subtags():
    assert check_language("pt-BR", "here") == "pt-BR" and check_language("zh-Hans", "here") == "zh-Hans"
    with pytest.raises(ValueError, match="here: missing language"):
        check_language("", "here")


def test_image_folder_concepts_and_extraction(tmp_path):
    root = tmp_path / "imgs"
    for concept, color in [("dog", "brown"), ("cat", "gray")]:
        (root / concept).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (20 + i, 20), color).save(root / concept / f"{i}.png")
    (root / "dog" / "notes.txt").write_text("not an image")
    ds = load_image_folder(root, category="animals")
    assert len(ds) == 4 and ds.concepts == ("cat", "dog") and ds.modalities == ("image",)
    r = mmf.extract("tiny:clip", ds, ["image.embed"], store_dir=tmp_path / "s", progress=False)
    store = r.stores["image.embed"]
    assert store.n_rows == 4 and sorted(store.provenance().column("concept")) == ["cat", "cat", "dog", "dog"]
    with pytest.raises(mmf.InputError, match="no such folder"):
        load_image_folder(tmp_path / "nope")
    (tmp_path / "empty" / "x").mkdir(parents=True)
    with pytest.raises(mmf.InputError, match="no images found"):
        load_image_folder(tmp_path / "empty")


def test_pairs_merge_and_fingerprint(tmp_path):
    texts = load_table(write(tmp_path, "c.csv", CSV))
    image = Image.new("RGB", (8, 8), "brown")
    pics = ConceptDataset.from_examples([Example("dog.png", Modality.IMAGE, image, "dog")], {"dog": "animals"},
                                        name="pics")
    both = texts.merge(pics)
    assert [(i.id, c.id) for i, c in both.pairs("ja")] == [("dog.png", "dog-ja")]
    assert both.fingerprint() != texts.fingerprint()
    clash = ConceptDataset.from_examples([Example("p", Modality.IMAGE, image, "dog")], {"dog": "pets"}, name="p")
    with pytest.raises(mmf.InputError, match="concept 'dog' has category 'animals'.*but 'pets'"):
        texts.merge(clash)
    with pytest.raises(mmf.InputError, match="repeats example id"):
        texts.merge(texts)
    with pytest.raises(mmf.InputError, match="no example"):
        texts.select(languages=["sw"])


def test_concepts_and_builtin_import_one_way():
    """concepts.py reads the built-in data through builtin.py, which returns plain Examples and never
    imports concepts.py (not even inside a function)."""
    import ast
    from pathlib import Path

    folder = Path(mmf.__file__).parent / "datasets"
    graph = {}
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text())
        graph[path.stem] = {node.module.rsplit(".", 1)[-1] for node in ast.walk(tree)
                            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mmfeatures.datasets.")}
    mutual = sorted((a, b) for a in graph for b in graph[a] if a < b and a in graph.get(b, ()))
    assert not mutual, f"dataset modules that import each other: {mutual}"
    assert "concepts" not in graph["builtin"]
