"""Shared vocabulary: modalities and hook-site names. Imports nothing internal."""

from __future__ import annotations

import enum
import os
import re
from dataclasses import dataclass
from typing import Any, NamedTuple


class Modality(str, enum.Enum):
    """What kind of input a tower reads."""

    TEXT = "text"
    IMAGE = "image"


SITE_KINDS = ("resid", "mlp", "attn")
_LAYER_RE = re.compile(r"(text|image)\.layer\.(\d+)\.(resid|mlp|attn)")
_EMBED_RE = re.compile(r"(text|image)\.embed")


class Site(NamedTuple):
    """A parsed hook point, e.g. ``text.layer.6.resid`` or ``image.embed``.

    ``kind`` is ``resid`` (the block's output, = ``hidden_states[layer + 1]``), ``mlp`` (MLP
    output before the residual add), ``attn`` (attention output before the residual add), or
    ``embed`` (the model's own final pooled/projected embedding; ``layer`` is None).
    """

    modality: Modality
    kind: str
    layer: int | None

    def __str__(self) -> str:
        if self.layer is None:
            return f"{self.modality.value}.{self.kind}"
        return f"{self.modality.value}.layer.{self.layer}.{self.kind}"

    @classmethod
    def parse(cls, name: str | Site) -> Site:
        if isinstance(name, Site):
            return name
        if m := _EMBED_RE.fullmatch(name):
            return cls(Modality(m.group(1)), "embed", None)
        if m := _LAYER_RE.fullmatch(name):
            return cls(Modality(m.group(1)), m.group(3), int(m.group(2)))
        raise ValueError(
            f"malformed site name {name!r}; expected e.g. 'text.layer.6.resid', 'text.embed' "
            "or 'image.layer.11.mlp'"
        )


@dataclass(frozen=True)
class Example:
    """One input with its provenance. ``content`` is a text, a PIL image or an image path."""

    id: str
    modality: Modality
    content: Any
    concept: str | None = None
    language: str | None = None
    group: str | None = None
    """Which of a concept's sentences this is: rows with the same concept and group say the same thing in
    different languages (translations); different groups are different sentences about the concept."""

    def record(self) -> dict[str, Any]:
        """The JSON-able provenance of this example (no content)."""
        source = str(self.content) if isinstance(self.content, (str, os.PathLike)) and \
            self.modality is Modality.IMAGE else None
        record = {"id": self.id, "modality": self.modality.value, "concept": self.concept,
                  "language": self.language, "source": source}
        return record if self.group is None else {**record, "group": self.group}
