"""Regenerate data/photos/ from the photographs that scikit-image ships in its wheel.

    pip install scikit-image && .venv/bin/python data/photos/build.py

Files are copied byte for byte; photos.tsv records each file's SHA-256, source and licence.
Captions (captions.tsv) were written for this project and are not generated.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent

# photo id -> (file in skimage/data, concept id, credit and licence as scikit-image documents them)
PHOTOS = {
    "astronaut": ("astronaut.png", "astronaut",
                  "Eileen Collins, NASA Great Images database; public domain"),
    "chelsea": ("chelsea.png", "cat", "Stefan van der Walt; CC0"),
    "coffee": ("coffee.png", "coffee", "Rachel Michetti, courtesy of Pikolo Espresso Bar; CC0"),
    "rocket": ("rocket.jpg", "rocket", "SpaceX, Falcon 9 carrying DSCOVR; public domain"),
    "camera": ("camera.png", "camera", "Lav Varshney; CC0"),
    "coins": ("coins.png", "coin", "Greek coins from Pompeii, Brooklyn Museum; no known copyright restrictions"),
    "hubble_deep_field": ("hubble_deep_field.jpg", "star", "NASA, Hubble eXtreme Deep Field; public domain"),
    "horse": ("horse.png", "horse", "silhouette by Andreas Preuss (marauder), openclipart; CC0"),
}


def main() -> None:
    import skimage

    source = Path(skimage.__file__).parent / "data"
    rows = []
    for photo_id, (name, concept, credit) in PHOTOS.items():
        target = HERE / f"{photo_id}{Path(name).suffix}"
        shutil.copyfile(source / name, target)
        rows.append({"photo_id": photo_id, "file": target.name, "concept_id": concept, "credit": credit,
                     "source": f"scikit-image {skimage.__version__}: skimage/data/{name}",
                     "sha256": hashlib.sha256(target.read_bytes()).hexdigest()})
    with open(HERE / "photos.tsv", "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]), delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} photos -> {HERE}")


if __name__ == "__main__":
    main()
