"""ConceptDataset: inputs aligned by concept across languages and modalities.

It reads the built-in data through datasets/builtin.py (which returns plain Examples and never imports
this module); users' own data come through loaders.py and hfdata.py, which build on this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from mmfeatures.datasets.builtin import SOURCES, load_parts
from mmfeatures.datasets.images import fingerprint
from mmfeatures.datasets.languages import check_codes
from mmfeatures.errors import InputError
from mmfeatures.types import Example, Modality


@dataclass(frozen=True)
class ConceptDataset(Sequence):
    """Examples (texts and images) with concept ids, languages and concept categories.

    It is a sequence of Examples, so ``extract(encoder, dataset, sites)`` takes it directly.

    >>> ds = ConceptDataset.from_examples([Example("dog/en", Modality.TEXT, "a dog", "dog", "en")],
    ...                                   {"dog": "animals"})
    >>> ds.select(languages=["en"]).concepts
    ('dog',)
    """

    examples: tuple[Example, ...]
    categories: dict[str, str] = field(default_factory=dict)
    """concept id -> category."""
    name: str = "custom"

    @classmethod
    def from_examples(cls, examples: Iterable[Example], categories: dict[str, str] | None = None,
                      name: str = "custom") -> ConceptDataset:
        exs = tuple(examples)
        if not exs:
            raise InputError(f"dataset {name!r} is empty; give at least one example")
        ids = [e.id for e in exs]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise InputError(f"dataset {name!r} repeats example id {dup!r}; ids must be unique")
        return cls(exs, dict(categories or {}), name)

    @classmethod
    def builtin(cls, sources: Iterable[str] = SOURCES, *, root=None,
                languages: Iterable[str] | None = None, linked_only: bool = True,
                with_keywords: bool = False) -> ConceptDataset:
        """The built-in data (``data/``), aligned by concept id across its sources.

        - ``"concepts"``: 123 concepts in 11 categories, two parallel sentences in each of 16 languages;
        - ``"emoji"``: Noto Color Emoji renders and their names in 14 languages;
        - ``"photos"``: scikit-image's photographs, captioned in 16 languages.

        ``linked_only`` (default) keeps only emoji whose concept is in the sentence set;
        ``languages`` drops texts in other languages (images have no language and stay);
        ``with_keywords`` adds each concept's keyword as a text. ``root`` or ``$MMFEATURES_DATA``
        points at a data folder when the package is used outside the repository. An unknown source or
        language code raises InputError naming the close match ('jp' -> 'ja').
        """
        parts = load_parts(sources, root=root, languages=languages, linked_only=linked_only,
                           with_keywords=with_keywords)
        first, *rest = [cls.from_examples(*part) for part in parts]
        return first.merge(*rest, name="builtin")

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index):
        return self.examples[index]

    def __iter__(self) -> Iterator[Example]:
        return iter(self.examples)

    def __repr__(self) -> str:
        mods = ", ".join(f"{m}: {sum(e.modality.value == m for e in self)}" for m in self.modalities)
        return (f"ConceptDataset({self.name!r}, {len(self)} examples ({mods}), {len(self.concepts)} concepts, "
                f"{len(self.languages)} languages)")

    @property
    def concepts(self) -> tuple[str, ...]:
        return tuple(sorted({e.concept for e in self if e.concept is not None}))

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(sorted({e.language for e in self if e.language is not None}))

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(sorted({e.modality.value for e in self}))

    def select(self, concepts: Iterable[str] | None = None, languages: Iterable[str] | None = None,
               modalities: Iterable[str | Modality] | None = None, categories: Iterable[str] | None = None
               ) -> ConceptDataset:
        """The examples matching every given filter. A language filter drops examples that have no
        language (images usually have none); a language code that no example has is an error."""
        keep = list(self)
        if concepts is not None:
            wanted = set(concepts)
            keep = [e for e in keep if e.concept in wanted]
        if categories is not None:
            cats = set(categories)
            keep = [e for e in keep if self.categories.get(e.concept or "") in cats]
        if languages is not None:
            langs = set(self._check_languages(languages))
            keep = [e for e in keep if e.language in langs]
        if modalities is not None:
            mods = {Modality(m) for m in modalities}
            keep = [e for e in keep if e.modality in mods]
        if not keep:
            raise InputError(f"no example of {self.name!r} matches concepts={concepts}, languages={languages}, "
                             f"modalities={modalities}, categories={categories}")
        return ConceptDataset(tuple(keep), self.categories, self.name)

    def _check_languages(self, languages: Iterable[str]) -> tuple[str, ...]:
        return check_codes(languages, self.languages, f"dataset {self.name!r} (no example has it)")

    def by_concept(self) -> dict[str, ConceptDataset]:
        return {c: self.select(concepts=[c]) for c in self.concepts}

    def pairs(self, language: str) -> list[tuple[Example, Example]]:
        """(image, caption in ``language``) for every image and every caption of its concept."""
        captions: dict[str, list[Example]] = {}
        for e in self:
            if e.modality is Modality.TEXT and e.language == language and e.concept is not None:
                captions.setdefault(e.concept, []).append(e)
        return [(img, cap) for img in self if img.modality is Modality.IMAGE
                for cap in captions.get(img.concept or "", [])]

    def fingerprint(self) -> str:
        """Stable hash of ids, modalities, concepts, languages and content (the store hash uses it)."""
        return fingerprint(self.examples)

    def merge(self, *others: ConceptDataset, name: str | None = None) -> ConceptDataset:
        """Concatenate datasets; a concept given conflicting categories is an error."""
        categories = dict(self.categories)
        for other in others:
            for concept, cat in other.categories.items():
                if categories.setdefault(concept, cat) != cat:
                    raise InputError(f"concept {concept!r} has category {categories[concept]!r} in "
                                     f"{self.name!r} but {cat!r} in {other.name!r}; make them agree")
        examples = [e for ds in (self, *others) for e in ds]
        return ConceptDataset.from_examples(examples, categories, name or "+".join(d.name for d in (self, *others)))
