"""BUSI, described once: the dataset's record (MedMNIST's ``INFO`` style).

Every part of the package that needs a fact about the dataset reads it from :data:`BUSI`: the
class names and their order (the model's output columns), the folder name the authors' zip
unpacks to, the zip's URL, the published image and mask counts (``bcdet data check`` compares a
folder with them, ``bcdet data download`` refuses a zip with fewer images), the file-name pattern
of images and masks, and the citation. A second copy of any of these would drift; the tests
import the record, never retype it.

This module imports nothing from the package, so anything -- ``paths``, ``profiles``, the data
modules -- can import it without an import cycle.
"""
from __future__ import annotations

from types import MappingProxyType

__all__ = ["BUSI", "CLASSES", "BUSI_FOLDER"]

BUSI = MappingProxyType({
    "name": "BUSI",
    "description": "Breast Ultrasound Images: B-mode scans of 600 women aged 25-75 (Baheya "
                   "Hospital, Cairo, 2018), PNG, with a lesion mask per image",
    # the order is the model's output order: column k of a probability row is classes[k]
    "classes": ("benign", "malignant", "normal"),
    "folder": "Dataset_BUSI_with_GT",
    "url": "https://scholar.cu.edu.eg/Dataset_BUSI.zip",
    "homepage": "https://scholar.cu.edu.eg/?q=afahmy/pages/dataset",
    "mirror": "https://www.kaggle.com/datasets/aryashah2k/breast-ultrasound-images-dataset",
    # published counts; a subset is allowed (a different count is a warning in `bcdet data check`)
    "images": MappingProxyType({"benign": 437, "malignant": 210, "normal": 133}),
    # one mask per image, except 17 images with two or three (`_mask_1.png`, `_mask_2.png`)
    "masks": MappingProxyType({"benign": 454, "malignant": 211, "normal": 133}),
    # `<class> (N).png` for an image; `<class> (N)_mask.png`, `<class> (N)_mask_K.png` for its masks
    "filename": r"^(?P<cls>[a-z]+) \((?P<num>\d+)\)(?P<mask>_mask(?:_(?P<k>\d+))?)?\.png$",
    "citation": "Al-Dhabyani W, Gomaa M, Khaled H, Fahmy A. Dataset of breast ultrasound images. "
                "Data in Brief 28:104863, 2020. doi:10.1016/j.dib.2019.104863",
})

CLASSES: tuple[str, ...] = BUSI["classes"]
BUSI_FOLDER: str = BUSI["folder"]
