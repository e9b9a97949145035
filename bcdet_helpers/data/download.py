"""``bcdet data download`` / ``make data``: fetch BUSI, check it, and only then put it in place.

The order matters. The zip is streamed into a hidden temporary folder beside the destination,
unpacked there, located (zips nest ``Dataset_BUSI_with_GT/`` at the top or one level deeper),
validated with :func:`~bcdet_helpers.data.check.check_dataset`, and finally *renamed* into
``<dest>/Dataset_BUSI_with_GT`` -- one atomic step on the same disk. A network error, a 404, a
truncated or corrupt zip, a zip without BUSI inside, a failed check, a zip with fewer images than
BUSI (unless ``--allow-incomplete``) or Ctrl-C all end with the temporary folder -- and any parent
folders the download created -- removed, and the destination as it was.

URL precedence: ``--url`` > ``$BCDET_BUSI_URL`` > :data:`DEFAULT_URL` (the authors' zip).
``file://`` URLs work too, so a zip downloaded by hand can be unpacked and checked the same way.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from http.client import HTTPException
from pathlib import Path

from tqdm.auto import tqdm

from ..busi import BUSI, BUSI_FOLDER
from ..errors import BcdetError
from ..paths import default_data_dir
from .check import EXPECTED_IMAGES, check_dataset, unusable_message
from .locate import BY_HAND, find_busi

DEFAULT_URL = BUSI["url"]  # the authors' zip (Al-Dhabyani et al. 2020)
URL_ENV = "BCDET_BUSI_URL"
CHUNK = 1 << 20  # 1 MiB


def busi_url(url: str | None = None) -> str:
    """``url`` if given, else ``$BCDET_BUSI_URL``, else the authors' published zip."""
    return url or os.environ.get(URL_ENV) or DEFAULT_URL


def _dest_folder(dest: str | Path | None) -> Path:
    """The folder that holds (or will hold) ``Dataset_BUSI_with_GT``.

    Default ``$BCDET_DATA`` or ``data/``; a path that names the BUSI folder itself means its parent.
    """
    base = Path(dest).expanduser() if dest is not None else default_data_dir()
    return base.parent if base.name == BUSI_FOLDER else base


def _by_hand(dest: Path) -> str:
    return (
        f"{BY_HAND} For this destination the result must be {dest / BUSI_FOLDER}/benign, "
        f".../malignant, .../normal. A zip you already have can be unpacked and checked with "
        f"`bcdet data download --dest {dest} --url file:///path/to/Dataset_BUSI_with_GT.zip`."
    )


def _fetch(url: str, target: Path, timeout: float) -> None:
    """Stream ``url`` into ``target`` with a progress bar; raise BcdetError-worthy errors as-is."""
    req = urllib.request.Request(url, headers={"User-Agent": "bcdet (python urllib)"})
    with urllib.request.urlopen(req, timeout=timeout) as resp, open(target, "wb") as out:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        got = 0
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                  desc="Downloading BUSI") as bar:
            while chunk := resp.read(CHUNK):
                out.write(chunk)
                got += len(chunk)
                bar.update(len(chunk))
    if total is not None and got != total:
        raise HTTPException(f"connection ended after {got} of {total} bytes")


def _missing_parents(folder: Path) -> list[Path]:
    """The ancestors of ``folder`` (itself included) that do not exist yet, deepest first -- the
    ones a failed download must remove again so that nothing is left behind."""
    return [p for p in [folder, *folder.parents] if not p.exists()]


def _shortfall(images: dict[str, int]) -> dict[str, tuple[int, int]]:
    """Classes with fewer images than the published BUSI: ``{class: (found, published)}``."""
    return {c: (images.get(c, 0), n) for c, n in EXPECTED_IMAGES.items() if images.get(c, 0) < n}


def _unpack(zip_path: Path, into: Path) -> None:
    """Extract the whole zip (zipfile strips absolute paths and ``..``), checking every CRC.

    Extras such as a macOS ``__MACOSX/`` folder are harmless: only the BUSI folder is moved.
    """
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(into)


def download_busi(
    dest: str | Path | None = None,
    url: str | None = None,
    force: bool = False,
    timeout: float = 60.0,
    allow_incomplete: bool = False,
) -> Path:
    """Make sure a valid BUSI copy exists under ``dest`` (default ``data/``); return its folder.

    If a copy is already found (at ``dest``, or ``$BCDET_DATA``/``data/`` when ``dest`` is not
    given) and ``force`` is false, nothing is downloaded: the copy is checked and returned.
    A downloaded zip with fewer images than the published dataset (780) is refused unless
    ``allow_incomplete`` (your own subset, on purpose): a wrong or partial mirror should not
    quietly become the data every number is computed on.
    Raises :class:`BcdetError` (destination untouched) when anything goes wrong.
    """
    dest = _dest_folder(dest)
    if not force:
        found = find_busi(dest)
        if found is not None:
            print(f"BUSI already present at {found}; checking it (use --force to download again).")
            report = check_dataset(found)
            print(report.format())
            if not report.ok:
                raise BcdetError(f"{unusable_message(report)} Or download a fresh copy with "
                                 f"`bcdet data download --dest {dest} --force`.")
            return found

    url = busi_url(url)
    final = dest / BUSI_FOLDER
    # The work folder sits on the same disk as the destination, so the final move is a rename.
    # Inside dest when it exists (dest may be a mount point), else beside it (dest stays absent).
    work_parent = dest if dest.is_dir() else dest.parent
    created = _missing_parents(dest)  # removed again unless the download succeeds
    work_parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".bcdet-download-", dir=work_parent))
    zip_path, unpacked = work / "busi.zip", work / "unpacked"
    done = False
    try:
        print(f"Downloading BUSI from {url}")
        try:
            _fetch(url, zip_path, timeout)
        except urllib.error.HTTPError as exc:
            raise BcdetError(f"Download failed: {url} answered HTTP {exc.code} {exc.reason}. "
                             f"Nothing was written. {_by_hand(dest)}") from None
        except (urllib.error.URLError, HTTPException, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise BcdetError(f"Download failed: could not fetch {url} ({reason}). Nothing was "
                             f"written. {_by_hand(dest)}") from None
        size_mb = zip_path.stat().st_size / 2**20
        try:
            _unpack(zip_path, unpacked)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
            raise BcdetError(
                f"The file from {url} ({size_mb:.1f} MiB) is not a complete zip archive ({exc}); "
                f"the download was probably cut off or is not the dataset. Nothing was written. "
                f"{_by_hand(dest)}") from None
        found = find_busi(unpacked)
        if found is None:
            raise BcdetError(
                f"The zip from {url} does not contain a BUSI folder (benign/, malignant/, normal/ "
                f"at the top or inside {BUSI_FOLDER}/). Nothing was written. {_by_hand(dest)}")
        report = check_dataset(found)
        if not report.ok:
            print(report.format())
            raise BcdetError(f"The downloaded copy from {url} failed the check (errors above); "
                             f"nothing was written. {_by_hand(dest)}")
        short = _shortfall(report.images)
        if short and not allow_incomplete:
            print(report.format(verdict="Result: NOT INSTALLED -- readable, but fewer images than the "
                                        "published BUSI (see the error below)."))
            counts = ", ".join(f"{c} {got} of {n}" for c, (got, n) in short.items())
            raise BcdetError(
                f"The zip from {url} holds fewer images than the published BUSI ({counts}): a partial "
                f"or different copy. Nothing was written. If this subset is what you want, add "
                f"--allow-incomplete. {_by_hand(dest)}")
        dest.mkdir(parents=True, exist_ok=True)
        old = work / "old"
        if final.exists():  # --force over an old copy: set it aside until the new one is in
            os.replace(final, old)
        try:
            os.replace(found, final)
        except BaseException:
            if old.exists() and not final.exists():
                os.replace(old, final)
            raise
        report.root = final.resolve()
        print(report.format())
        print(f"BUSI is ready at {final}")
        done = True
        return final.resolve()
    except KeyboardInterrupt:
        print("\nDownload interrupted; removed the partial files (destination unchanged).")
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not done:
            for folder in created:  # deepest first; rmdir refuses a folder someone filled meanwhile
                try:
                    folder.rmdir()
                except FileNotFoundError:  # dest itself is only made at the very end
                    continue
                except OSError:
                    break
