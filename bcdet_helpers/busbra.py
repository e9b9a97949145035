"""BUS-BRA, described once: the external test set's record (MedMNIST's ``INFO`` style, like :mod:`.busi`).

BUS-BRA is the test of whether a BUSI model transfers (issue #30): another country (Brazil), other
hospitals, other scanners than BUSI's one LOGIQ E9 in Cairo. Every part of the package that needs
a fact about it reads it from :data:`BUSBRA` -- the folder and file names, the labels' CSV and the
columns we read, the published counts (``bcdet data check --busbra`` compares a copy with them),
where it comes from and how it must be cited. The tests import the record, never retype it.

Three facts shape how a BUSI model is scored on it (:mod:`bcdet_helpers.research.external`):

* **no normal class** -- 1,268 benign and 607 malignant images, so a 3-class BUSI model is scored
  on the lesion question (its malignant probability), not on 3-class accuracy;
* **patients** -- 1,064 patients (``Case``) with one to several images each (left/right, views),
  so intervals resample patients, not images;
* **devices** -- four scanners; three have enough images (>= 100) for a row of their own.

This module imports nothing from the package (as :mod:`.busi`), so anything can import it.
"""
from __future__ import annotations

from types import MappingProxyType

__all__ = ["BUSBRA", "BUSBRA_FOLDER", "BUSBRA_CLASSES", "device_name"]

BUSBRA = MappingProxyType({
    "name": "BUS-BRA",
    "description": "Breast ultrasound of 1,064 patients (National Institute of Cancer, Rio de Janeiro, "
                   "Brazil; four scanners), 8-bit grayscale PNGs already cropped to the scan area, "
                   "biopsy-proven pathology, BI-RADS 2-5",
    # benign/malignant only: the names are BUSI's, so a row's label indexes busi.CLASSES directly
    "classes": ("benign", "malignant"),
    "folder": "BUS-BRA",
    "images_folder": "Images",
    "table": "bus_data.csv",  # one row per image
    "checksums": "SHA256SUMS",  # `sha256sum` format; may be absent (then nothing is verified)
    # the columns we read: the image id (file stem), the patient, the label, the scanner
    "columns": MappingProxyType({"id": "ID", "patient": "Case", "label": "Pathology", "device": "Device"}),
    # files that come with the images but are not needed to test a BUSI model
    "extras": ("5-fold-cv.csv", "LICENSE.txt"),
    "filename": r"^bus_(?P<num>\d{4})-(?P<view>[a-z])\.png$",  # bus_0001-l.png (l / r / s: left, right, single)
    # where it comes from: the authors' Zenodo upload (the article's data-availability statement links it)
    "source": 'Zenodo, "BUS-BRA: A Breast Ultrasound Dataset for Assessing CAD Systems" (search that title)',
    "licence": "permissive (LICENSE.txt): use, copy and redistribute freely; cite the article below",
    # published counts; a subset is allowed (a different count is a warning in `bcdet data check --busbra`)
    "images": MappingProxyType({"benign": 1268, "malignant": 607}),
    "patients": 1064,
    # images per scanner, by device_name() of the CSV's Device column
    "devices": MappingProxyType({"GE Logiq 7": 902, "GE Logiq 5": 809, "Toshiba Aplio 300": 139,
                                 "U-Systems": 25}),
    "citation": "Gomez-Flores W, Gregorio-Calas MJ, Coelho de Albuquerque Pereira W. BUS-BRA: A breast "
                "ultrasound dataset for assessing computer-aided diagnosis systems. Medical Physics "
                "51(4):3110-3123, 2024. doi:10.1002/mp.16812",
})

BUSBRA_FOLDER: str = BUSBRA["folder"]
BUSBRA_CLASSES: tuple[str, ...] = BUSBRA["classes"]


def device_name(device: str) -> str:
    """The CSV's ``"GE Logiq 7 @10-14MHz"`` -> ``"GE Logiq 7"``: the scanner, without the probe's
    frequency range (one range per scanner in BUS-BRA, so nothing is merged)."""
    return str(device).split("@")[0].strip()
