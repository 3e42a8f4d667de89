"""Debian packages as data: fetched with ``apt-get download`` into the user cache, never into git.

Each package is unpacked with ``dpkg-deb -x`` into ``<cache>/debian/<package>-<version>/`` together with
what its corpus parsed from it (``prepare``) and a data card (``card.json``: source package, version,
licence, counts). The folder is written as a temporary sibling and renamed into place, so an interrupted
fetch leaves nothing half-written and the next fetch resumes with the packages still missing; a package
already unpacked is skipped, whatever its version. Every subprocess has a timeout. The corpora built on
this are in libreoffice.py and tuxpaint.py (see docs/data.md).
"""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from mmfeatures.disk import atomic_dir, cache_dir, read_header, write_header
from mmfeatures.errors import InputError, MissingDependencyError, MMFeaturesError

CARD = "card.json"
"""The data card in each package folder (a JSON header, see docs/disk-layout.md)."""
DOWNLOAD_TIMEOUT_S = 1800     # the largest package (tuxpaint-stamps-default, 160 MB) at about 100 kB/s
TOOL_TIMEOUT_S = 600          # apt-cache, dpkg-deb: seconds on any machine; a hung tool is an error
Prepare = Callable[[str, Path], Mapping[str, Any]]
"""(package, unpacked folder) -> the counts for its card; writes whatever its corpus parses into the folder."""


class DebianFetchError(MMFeaturesError, OSError):
    """apt-get or dpkg-deb failed; the message names the package, the tool's own words and the fix."""


def debian_root() -> Path:
    """``<cache>/debian``: one folder per unpacked package (``$MMFEATURES_CACHE`` moves the cache)."""
    return cache_dir("debian")


def package_dir(package: str) -> Path | None:
    """The unpacked folder of ``package`` (the latest fetched, if several versions are), or None."""
    found = []
    for folder in debian_root().glob(f"{package}-[0-9]*"):
        card = read_header(folder, CARD, fix=f"delete {folder} and fetch {package} again")
        if card is not None and card.get("package") == package:
            found.append((card.get("fetched_at", ""), folder))
    return max(found)[1] if found else None


def data_card(package: str) -> dict[str, Any]:
    """The data card written when ``package`` was fetched: source package, version, licence, counts.

    >>> data_card("libreoffice-help-de")["licence"]          # doctest: +SKIP
    'MPL-2.0'
    """
    folder = package_dir(package)
    if folder is None:
        raise InputError(f"{package} has not been fetched into {debian_root()}; run `mmfeatures data fetch`")
    card = read_header(folder, CARD)
    assert card is not None, f"{folder} was found by its card, which is now gone"
    return card


def data_cards() -> list[dict[str, Any]]:
    """The cards of every fetched package, by package name."""
    names = sorted({card["package"] for folder in debian_root().iterdir() if folder.is_dir()
                    and not folder.name.startswith(".") and (card := read_header(folder, CARD)) is not None})
    return [data_card(name) for name in names]


def fetch_packages(packages: Iterable[str], prepare: Prepare | None = None, *, progress: bool = True
                   ) -> dict[str, Path]:
    """Download and unpack each package not yet in the cache; return package -> unpacked folder.

    ``prepare(package, folder)`` runs on the unpacked folder before it is renamed into place (a corpus
    parses its files there once) and returns the counts for the data card. Missing packages are fetched
    in order with a progress bar naming each and its download size; an interruption keeps those done.
    """
    from tqdm.auto import tqdm

    packages = list(dict.fromkeys(packages))
    done = {p: d for p in packages if (d := package_dir(p)) is not None}
    missing = [p for p in packages if p not in done]
    if missing:
        _require_tools()
        with tqdm(missing, desc="apt-get download", unit="package", disable=not progress) as bar:
            for package in bar:
                bar.set_postfix_str(f"{package} ({_download_size(package) / 1e6:.0f} MB)")
                done[package] = _fetch_one(package, prepare)
    return {p: done[p] for p in packages}


def _require_tools() -> None:
    for tool in ("apt-get", "apt-cache", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise MissingDependencyError(
                f"fetching data from Debian's archive needs {tool!r}, which is not on PATH: this is not a Debian "
                "(or Ubuntu) system. Run `mmfeatures data fetch` on one and copy its cache folder "
                f"{debian_root()} here (or point $MMFEATURES_CACHE at a copy)")


def _run(command: list[str], package: str, timeout: int, cwd: Path | None = None) -> str:
    """A tool's stdout; a failure or timeout raises DebianFetchError quoting its stderr and naming the fix."""
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env={**os.environ, "LC_ALL": "C"})
    except subprocess.TimeoutExpired:
        raise DebianFetchError(f"`{' '.join(command)}` took over {timeout} s and was stopped; check the network "
                               "(or a proxy in /etc/apt/apt.conf.d) and run `mmfeatures data fetch` again") from None
    if done.returncode == 0:
        return done.stdout
    said = " ".join((done.stderr or done.stdout).split())[-400:]
    if "Unable to locate package" in said or "No packages found" in said:
        raise DebianFetchError(
            f"apt does not know the package {package!r} ({said}). Its package lists are missing or out of date: "
            "run `apt-get update` (as root), then fetch again. `apt-cache policy " + package + "` shows what apt "
            "knows; the package exists in Debian 12 (bookworm) and later")
    raise DebianFetchError(f"`{' '.join(command)}` failed with exit code {done.returncode}: {said}. Check the "
                           "network and apt's sources (/etc/apt/sources.list*), then fetch again (resumes)")


def _download_size(package: str) -> int:
    """The .deb's size in bytes as apt's package lists give it (0 when unknown)."""
    text = _run(["apt-cache", "show", "--no-all-versions", package], package, TOOL_TIMEOUT_S)
    sizes = [int(line.split(":", 1)[1]) for line in text.splitlines() if line.startswith("Size:")]
    return sizes[0] if sizes else 0


def _fetch_one(package: str, prepare: Prepare | None) -> Path:
    with tempfile.TemporaryDirectory(prefix="mmfeatures-apt-") as tmp:
        _run(["apt-get", "download", "-q", package], package, DOWNLOAD_TIMEOUT_S, cwd=Path(tmp))
        debs = sorted(Path(tmp).glob("*.deb"))
        assert len(debs) == 1, f"apt-get download {package} left {debs} instead of one .deb"
        deb = debs[0]
        fields = dict(line.split(": ", 1) for line in _run(
            ["dpkg-deb", "-f", str(deb), "Package", "Version", "Source"], package, TOOL_TIMEOUT_S).splitlines()
            if ": " in line)
        version = fields["Version"]
        final = debian_root() / f"{package}-{version.split(':', 1)[-1]}"    # the epoch ('4:') is no use in a path
        with atomic_dir(final) as folder:
            _run(["dpkg-deb", "-x", str(deb), str(folder)], package, TOOL_TIMEOUT_S)
            counts = dict(prepare(package, folder)) if prepare is not None else {}
            write_header(folder, "debian-package", CARD, package=package, version=version,
                         source=fields.get("Source", package).split(" ")[0], licence=licence(folder, package),
                         copyright=f"usr/share/doc/{package}/copyright", download_bytes=deb.stat().st_size,
                         unpacked_bytes=_folder_bytes(folder), fetched_with=f"apt-get download {package}",
                         fetched_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                         counts=counts)
    return final


def update_counts(folder: Path, counts: Mapping[str, Any]) -> None:
    """Rewrite the counts on a package's card (after its corpus parsed the unpacked files again)."""
    card = read_header(folder, CARD, fix=f"delete {folder} and fetch again")
    assert card is not None, f"{folder} has no {CARD}"
    fields = {k: v for k, v in card.items() if k not in ("kind", "schema_version", "mmfeatures_version")}
    write_header(folder, card["kind"], CARD, **(fields | {"counts": dict(counts)}))


def licence(folder: Path, package: str) -> str:
    """The licence of the package's main files: the ``License:`` of the ``Files: *`` stanza of its
    machine-readable ``usr/share/doc/<package>/copyright`` (other stanzas cover build files, not the data)."""
    path = folder / "usr" / "share" / "doc" / package / "copyright"
    if not path.is_file():
        return f"unknown (no usr/share/doc/{package}/copyright in the package)"
    stanzas = [dict(line.split(":", 1) for line in stanza.splitlines() if ":" in line and not line[0].isspace())
               for stanza in path.read_text(encoding="utf-8", errors="replace").split("\n\n")]
    for fields in stanzas:
        if fields.get("Files", "").split() == ["*"] and fields.get("License", "").strip():
            return fields["License"].strip()
    for fields in stanzas:          # a source package of many data sets (FreeDict): the stanza of this one's folder
        folders = [f.split("/")[0] for f in fields.get("Files", "").split() if f.endswith("/*")]
        if any(package.endswith("-" + f) for f in folders) and fields.get("License", "").strip():
            return fields["License"].strip()
    return f"see usr/share/doc/{package}/copyright (it has no `Files: *` stanza naming a licence)"


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
