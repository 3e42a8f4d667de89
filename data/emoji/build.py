"""Regenerate data/emoji/: emoji names in 14 languages and Noto Color Emoji renders.

Needs (build time only; tests and users read the shipped files):
  pip install emoji pillow numpy        # Pillow built with raqm, for ZWJ sequences
  apt-get install fonts-noto-color-emoji unicode-data

Run from the repository root:  .venv/bin/python data/emoji/build.py [--out DIR]

Selection: fully qualified emoji without skin-tone modifiers that the `emoji` package names in all 14
of its languages, that Unicode's emoji-test.txt places in a group, and that the font draws as one
glyph. Whole groups are kept for pictures of things (smileys, people, animals, food, travel,
activities, objects); from Symbols and Flags only the emoji linked to a concept in data/concepts
(colour circles, keycaps, hearts, ...) are kept.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
LANGS = ["en", "es", "de", "fr", "it", "pt", "ru", "ar", "fa", "tr", "ja", "zh", "ko", "id"]
FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
EMOJI_TEST = Path("/usr/share/unicode/emoji/emoji-test.txt")
SIZE = 72  # pixels per side of each stored render
KEEP_GROUPS = {"Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink", "Travel & Places",
               "Activities", "Objects"}

# concept id in data/concepts -> English CLDR names (as the emoji package spells them) of its emoji.
LINKS = {
    "dog": ["dog_face", "dog"], "cat": ["cat_face", "cat"], "horse": ["horse_face", "horse"],
    "bird": ["bird"], "fish": ["fish"], "cow": ["cow_face", "cow"], "elephant": ["elephant"],
    "lion": ["lion"], "monkey": ["monkey_face", "monkey"], "rabbit": ["rabbit_face", "rabbit"],
    "snake": ["snake"], "bee": ["honeybee"], "butterfly": ["butterfly"], "bear": ["bear"],
    "bread": ["bread"], "apple": ["red_apple", "green_apple"], "banana": ["banana"], "pizza": ["pizza"],
    "rice": ["cooked_rice"], "coffee": ["hot_beverage"], "tea": ["teacup_without_handle"],
    "milk": ["glass_of_milk"], "egg": ["egg"], "cheese": ["cheese_wedge"],
    "cake": ["shortcake", "birthday_cake"], "soup": ["pot_of_food"],
    "book": ["open_book", "closed_book"], "chair": ["chair"], "key": ["key"],
    "phone": ["mobile_phone", "telephone"], "clock": ["mantelpiece_clock", "alarm_clock"],
    "camera": ["camera"], "car": ["automobile"], "bicycle": ["bicycle"],
    "umbrella": ["umbrella", "closed_umbrella"], "computer": ["laptop", "desktop_computer"],
    "coin": ["coin"], "rocket": ["rocket"], "bed": ["bed"],
    "school": ["school"], "hospital": ["hospital"], "beach": ["beach_with_umbrella"], "city": ["cityscape"],
    "bridge": ["bridge_at_night"], "museum": ["classical_building"], "village": ["houses"],
    "sun": ["sun"], "moon": ["crescent_moon", "full_moon"], "star": ["star"], "rain": ["cloud_with_rain"],
    "snow": ["snowflake"], "tree": ["deciduous_tree"], "flower": ["blossom", "tulip"],
    "mountain": ["mountain"], "sea": ["water_wave"], "fire": ["fire"], "wind": ["wind_face"],
    "cloud": ["cloud"],
    "red": ["red_circle"], "blue": ["blue_circle"], "green": ["green_circle"], "yellow": ["yellow_circle"],
    "black": ["black_circle"], "white": ["white_circle"], "purple": ["purple_circle"],
    "brown": ["brown_circle"], "pink": ["pink_heart"], "grey": ["grey_heart"],
    "one": ["keycap_1"], "two": ["keycap_2"], "three": ["keycap_3"], "four": ["keycap_4"],
    "five": ["keycap_5"], "six": ["keycap_6"], "seven": ["keycap_7"], "eight": ["keycap_8"],
    "nine": ["keycap_9"], "ten": ["keycap_10"],
    "happiness": ["smiling_face_with_smiling_eyes"], "sadness": ["disappointed_face"],
    "fear": ["fearful_face"], "anger": ["angry_face", "enraged_face"], "love": ["red_heart"],
    "surprise": ["astonished_face"], "boredom": ["yawning_face"],
    "run": ["person_running"], "swim": ["person_swimming"], "sing": ["singer"],
    "dance": ["woman_dancing", "man_dancing"], "write": ["writing_hand"], "cook": ["cook"],
    "sleep": ["sleeping_face", "person_in_bed"], "eat": ["fork_and_knife_with_plate"],
    "laugh": ["face_with_tears_of_joy"], "cry": ["loudly_crying_face"],
    "peace": ["dove", "peace_symbol"], "time": ["hourglass_done"], "luck": ["four_leaf_clover"],
    "death": ["skull"], "war": ["crossed_swords"], "justice": ["balance_scale"],
    "astronaut": ["astronaut"], "doctor": ["health_worker"], "teacher": ["teacher"], "child": ["child"],
}


def clean_name(name: str) -> str:
    """':dog_face:' -> 'dog face'."""
    return name.strip(":").replace("_", " ").strip()


def read_groups() -> dict[str, tuple[str, str]]:
    groups, group, subgroup = {}, None, None
    for line in EMOJI_TEST.read_text(encoding="utf-8").splitlines():
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
        elif line.startswith("# subgroup:"):
            subgroup = line.split(":", 1)[1].strip()
        elif line.strip() and not line.startswith("#"):
            codepoints = line.split(";", 1)[0].split()
            groups["".join(chr(int(c, 16)) for c in codepoints)] = (group, subgroup)
    return groups


def concept_categories() -> dict[str, str]:
    with open(HERE.parent / "concepts" / "sentences.tsv", encoding="utf-8", newline="") as f:
        return {row["concept_id"]: row["category"] for row in csv.DictReader(f, delimiter="\t")}


def render(chars: list[str]) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont, features

    if not features.check("raqm"):
        sys.exit("Pillow lacks raqm text layout; ZWJ sequences would render as several glyphs")
    font = ImageFont.truetype(str(FONT), 109)  # the only size the bitmap font offers
    out = np.empty((len(chars), SIZE, SIZE, 3), np.uint8)
    for i, ch in enumerate(chars):
        if font.getlength(ch) > 140:
            raise ValueError(f"{ch!r} renders as more than one glyph")
        canvas = Image.new("RGBA", (136, 136), (255, 255, 255, 0))
        ImageDraw.Draw(canvas).text((0, 4), ch, font=font, embedded_color=True)
        if canvas.getbbox() is None:
            raise ValueError(f"{ch!r} renders empty")
        white = Image.new("RGBA", canvas.size, (255, 255, 255, 255))
        rgb = Image.alpha_composite(white, canvas).convert("RGB").resize((SIZE, SIZE), Image.LANCZOS)
        out[i] = np.asarray(rgb)
    return out


def main(out: Path = HERE) -> None:
    import emoji

    out.mkdir(parents=True, exist_ok=True)

    emoji.config.load_language(LANGS)
    groups = read_groups()
    categories = concept_categories()
    by_name = {data["en"].strip(":"): ch for ch, data in emoji.EMOJI_DATA.items()
               if data["status"] == emoji.STATUS["fully_qualified"]}
    linked = {}
    for concept, names in LINKS.items():
        if concept not in categories:
            sys.exit(f"LINKS names concept {concept!r}, which data/concepts/sentences.tsv lacks")
        for name in names:
            if name not in by_name:
                sys.exit(f"LINKS: the emoji package has no emoji named {name!r} (for {concept!r})")
            linked[by_name[name]] = concept

    rows = []
    for ch, data in emoji.EMOJI_DATA.items():
        if data["status"] != emoji.STATUS["fully_qualified"]:
            continue
        if any(0x1F3FB <= ord(c) <= 0x1F3FF for c in ch) or ch not in groups:
            continue
        if not all(lang in data for lang in LANGS):
            continue
        group, subgroup = groups[ch]
        if group not in KEEP_GROUPS and ch not in linked:
            continue
        slug = data["en"].strip(":").lower()
        concept = linked.get(ch, f"emoji:{slug}")
        rows.append({"emoji": ch, "codepoints": " ".join(f"{ord(c):04X}" for c in ch),
                     "unicode_group": group, "unicode_subgroup": subgroup, "concept_id": concept,
                     "category": categories.get(concept, group.lower()),
                     **{f"name_{lang}": clean_name(data[lang]) for lang in LANGS}})
    missing = set(linked) - {r["emoji"] for r in rows}
    if missing:
        sys.exit(f"linked emoji not named in all 14 languages or not in emoji-test.txt: {sorted(missing)}")
    rows.sort(key=lambda r: r["codepoints"])
    images = render([r["emoji"] for r in rows])

    fields = ["index", "emoji", "codepoints", "unicode_group", "unicode_subgroup", "concept_id", "category",
              *[f"name_{lang}" for lang in LANGS]]
    with open(out / "index.tsv", "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fields, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        for i, row in enumerate(rows):
            writer.writerow({"index": i, **row})
    np.savez_compressed(out / "images.npz", images=images)
    meta = {"count": len(rows), "size": SIZE, "layout": "images[index, y, x, rgb], uint8, on white",
            "emoji_package": emoji.__version__, "font": FONT.name,
            "font_sha256": hashlib.sha256(FONT.read_bytes()).hexdigest(),
            "images_sha256": hashlib.sha256((out / "images.npz").read_bytes()).hexdigest()}
    (out / "build.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"{len(rows)} emoji, {len(linked)} linked to concepts -> {out}")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write (default: data/emoji)")
    main(parser.parse_args().out)
