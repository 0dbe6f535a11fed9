"""Real data laid out as ``root/<class>/*.png|jpg`` (how BreaKHis or PatchCamelyon exports look)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hackforge_edge.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def scan(root: str | Path) -> tuple[list[Path], np.ndarray, list[str]]:
    """(files, int64 labels, class names) of an image folder; classes are sorted directory names.

    Raises DataError when the root is missing, has fewer than two class directories, or a class
    directory holds no images.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"--data {root}: no such directory")
    if not root.is_dir():
        raise DataError(f"--data {root}: not a directory (expected root/<class>/*.png|jpg)")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(class_dirs) < 2:
        found = ", ".join(p.name for p in class_dirs) or "none"
        raise DataError(f"--data {root}: need at least two class directories "
                        f"(root/<class>/*.png|jpg), found {len(class_dirs)} ({found})")
    files: list[Path] = []
    labels: list[int] = []
    for c, d in enumerate(class_dirs):
        imgs = sorted(p for p in d.rglob("*")
                      if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        if not imgs:
            raise DataError(f"--data {root}: class directory {d.name!r} holds no "
                            f"{'/'.join(s[1:] for s in IMAGE_SUFFIXES)} images")
        files.extend(imgs)
        labels.extend([c] * len(imgs))
    return files, np.asarray(labels, dtype=np.int64), [d.name for d in class_dirs]


def load_images(files: list[Path], image_size: int) -> np.ndarray:
    """uint8 N x S x S x 3 RGB, resized exactly as ImagePreprocess.array_to_chw resizes.

    Resizing once at load time (instead of every epoch) gives the same tensor a server computes
    from the original file: both convert to RGB, then Pillow-bilinear-resize that uint8 array.
    """
    from PIL import Image, UnidentifiedImageError

    out = np.empty((len(files), image_size, image_size, 3), dtype=np.uint8)
    for i, f in enumerate(files):
        try:
            with Image.open(f) as img:
                rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise DataError(f"cannot read image {f} ({type(exc).__name__})") from None
        if rgb.shape[:2] != (image_size, image_size):
            rgb = np.asarray(Image.fromarray(rgb).resize((image_size, image_size), Image.BILINEAR))
        out[i] = rgb
    return out
