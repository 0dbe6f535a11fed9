"""Seeded synthetic histopathology-like patches (numpy + Pillow, no torch).

Each image is an H&E-like tile: an eosin-pink stroma with fibrous texture and haematoxylin-
purple nuclei. The benign/malignant signal lives in the nuclei, the way a pathologist reads it:
malignant tiles have denser, larger, more variable (pleomorphic), more irregular and darker
(hyperchromatic) nuclei. Every cue is drawn from overlapping per-class distributions, so no
single pixel statistic separates the classes and a model has to learn morphology.

Two *domains* differ the way scanners and staining protocols do (the shift a hospital sees when
a model trained elsewhere meets its own slides): stain colour vectors and intensity, optical
blur, and sensor noise. The source domain pretrains the toolkit's default model; the target
domain is what ``train-and-export`` adapts to.

Colour follows Beer-Lambert stain mixing (Ruifrok & Johnston 2001): optical density
OD = c_H * h_vec + c_E * e_vec, RGB = 255 * exp(-OD), so a stain shift behaves like a real one
(a hue/saturation change that differs between nuclei and stroma), not a global tint.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

# Bump whenever the generator's output changes for the same seed: the source-model cache key
# includes it, so a stale pretrained model is never reused.
GENERATOR_VERSION = 1

CLASS_NAMES = ("benign", "malignant")


@dataclass(frozen=True)
class Domain:
    """How one scanner/stain combination renders tissue. Units are stated per field."""

    name: str
    h_vec: tuple[float, float, float]  # haematoxylin OD direction (R, G, B), normalised
    e_vec: tuple[float, float, float]  # eosin OD direction (R, G, B), normalised
    stain_scale: float  # multiplies both stain concentrations (staining strength)
    stain_jitter: float  # per-image relative std of the stain strengths (slide-to-slide)
    blur_sigma_px: float  # Gaussian optical blur, std in pixels at the generated size
    noise_std: float  # additive Gaussian sensor noise, std in 8-bit grey levels
    brightness: float  # multiplies the final RGB intensities (illumination)


# Ruifrok & Johnston's standard H&E vectors: a "reference" scanner.
SOURCE = Domain(
    name="source", h_vec=(0.650, 0.704, 0.286), e_vec=(0.072, 0.990, 0.105),
    stain_scale=1.0, stain_jitter=0.08, blur_sigma_px=0.0, noise_std=2.0, brightness=1.0,
)
# Another lab: bluer haematoxylin, more magenta eosin, weaker staining, a softer lens, noisier
# sensor, dimmer lamp. Chosen so a source-trained model loses accuracy without adaptation.
TARGET = Domain(
    name="target", h_vec=(0.520, 0.780, 0.350), e_vec=(0.250, 0.880, 0.400),
    stain_scale=0.8, stain_jitter=0.12, blur_sigma_px=0.9, noise_std=7.0, brightness=0.93,
)
DOMAINS = {"source": SOURCE, "target": TARGET}


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a coarse random grid upsampled bicubically."""
    from PIL import Image

    coarse = rng.random((cells, cells)).astype(np.float32)
    img = Image.fromarray(coarse, mode="F").resize((size, size), Image.BICUBIC)
    out = np.asarray(img, dtype=np.float32)
    lo, hi = out.min(), out.max()
    return (out - lo) / (hi - lo + 1e-6)


def _nuclei_density(rng: np.random.Generator, size: int, malignant: bool) -> np.ndarray:
    """Haematoxylin concentration map (float, >= 0) holding the nuclei of one tile."""
    # Per-tile morphology parameters; the class shifts their means, the ranges overlap.
    area_scale = (size / 64.0) ** 2
    if malignant:
        count = rng.normal(18, 5) * area_scale
        radius = rng.normal(3.1, 0.45)  # px at 64 px tiles
        radius_cv = rng.uniform(0.15, 0.40)  # pleomorphism: size variation between nuclei
        irregular = rng.uniform(0.12, 0.32)  # boundary wobble amplitude (fraction of radius)
        darkness = rng.normal(1.35, 0.18)
    else:
        count = rng.normal(11, 4) * area_scale
        radius = rng.normal(2.5, 0.40)
        radius_cv = rng.uniform(0.05, 0.22)
        irregular = rng.uniform(0.02, 0.18)
        darkness = rng.normal(1.10, 0.18)
    count = int(max(3, round(count)))
    scale = size / 64.0
    radius = max(1.2, radius) * scale
    density = np.zeros((size, size), dtype=np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for _ in range(count):
        r0 = max(0.9 * scale, radius * (1.0 + radius_cv * rng.standard_normal()))
        cy, cx = rng.uniform(0, size, 2)
        elong = rng.uniform(1.0, 1.0 + 2 * irregular)  # ellipse aspect ratio
        theta0 = rng.uniform(0, np.pi)
        k = int(rng.integers(3, 7))
        phase = rng.uniform(0, 2 * np.pi)
        # only touch the nucleus's bounding box (speed: tiles are mostly stroma)
        reach = r0 * elong * (1 + irregular) + 2
        y0, y1 = int(max(0, cy - reach)), int(min(size, cy + reach + 1))
        x0, x1 = int(max(0, cx - reach)), int(min(size, cx + reach + 1))
        if y0 >= y1 or x0 >= x1:
            continue
        dy, dx = yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx
        c, s = np.cos(theta0), np.sin(theta0)
        u, v = (dx * c + dy * s) / elong, -dx * s + dy * c
        rho, ang = np.hypot(u, v), np.arctan2(v, u)
        boundary = r0 * (1.0 + irregular * np.sin(k * ang + phase))
        # soft edge (1 px ramp) so nuclei are not aliased binary blobs
        inside = np.clip(boundary - rho + 0.5, 0.0, 1.0)
        # chromatin texture: nuclei are not flat discs
        chromatin = 0.85 + 0.3 * rng.random(inside.shape, dtype=np.float32)
        density[y0:y1, x0:x1] = np.maximum(density[y0:y1, x0:x1],
                                           inside * chromatin * max(0.5, darkness))
    return density


def render_tile(rng: np.random.Generator, size: int, malignant: bool, domain: Domain) -> np.ndarray:
    """One uint8 ``size x size x 3`` RGB tile of the given class in the given domain."""
    from PIL import Image, ImageFilter

    # Stroma: eosin concentration with fibres (anisotropic stretched noise) and lumen-like gaps.
    fibres = _smooth_noise(rng, size, max(4, size // 6))
    stretched = np.asarray(Image.fromarray(_smooth_noise(rng, size, max(4, size // 4)), mode="F")
                           .resize((size, max(2, size // 4)), Image.BILINEAR)
                           .resize((size, size), Image.BICUBIC), dtype=np.float32)
    gaps = _smooth_noise(rng, size, 3)
    eosin = 0.35 + 0.45 * fibres + 0.25 * stretched
    eosin *= np.where(gaps > 0.85, 0.25, 1.0)  # pale lumen regions
    haem = _nuclei_density(rng, size, malignant) * 1.6 + 0.05 * fibres

    strength = domain.stain_scale * (1.0 + domain.stain_jitter * rng.standard_normal(2))
    strength = np.clip(strength, 0.3, 2.0)
    od = (haem[..., None] * strength[0] * _unit(domain.h_vec)
          + eosin[..., None] * strength[1] * 0.55 * _unit(domain.e_vec))
    rgb = 255.0 * np.exp(-od) * domain.brightness
    img = np.clip(rgb, 0, 255).astype(np.uint8)
    if domain.blur_sigma_px > 0:
        img = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(domain.blur_sigma_px)))
    if domain.noise_std > 0:
        noisy = img.astype(np.float32) + rng.normal(0.0, domain.noise_std, img.shape)
        img = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img)


def generate(n: int, *, image_size: int, domain: str | Domain, seed: int, stream: int = 0,
             malignant_fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """``n`` tiles: (uint8 array N x image_size x image_size x 3, int64 labels N; 1 = malignant).

    Deterministic in (n, image_size, domain, seed, stream, malignant_fraction,
    GENERATOR_VERSION). ``stream`` separates splits drawn with the same seed (train/val/test),
    so changing one split's size never changes another split's images. Classes are balanced
    to within one image and shuffled. A named domain's tiles are rendered once per process (a
    sweep asks for the same splits in every cell); every caller gets its own copy.
    """
    if isinstance(domain, str):
        images, labels = _generate_cached(n, image_size, domain, seed, stream, malignant_fraction)
        return images.copy(), labels.copy()
    return _generate(n, image_size=image_size, domain=domain, seed=seed, stream=stream,
                     malignant_fraction=malignant_fraction)


@lru_cache(maxsize=12)
def _generate_cached(n: int, image_size: int, domain: str, seed: int, stream: int,
                     malignant_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    return _generate(n, image_size=image_size, domain=domain, seed=seed, stream=stream,
                     malignant_fraction=malignant_fraction)


def _generate(n: int, *, image_size: int, domain: str | Domain, seed: int, stream: int = 0,
              malignant_fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """The renderer behind :func:`generate` (uncached)."""
    dom = DOMAINS[domain] if isinstance(domain, str) else domain
    # the domain name is part of the stream so source and target never share tiles
    rng = np.random.default_rng([seed, GENERATOR_VERSION, sum(map(ord, dom.name)), stream])
    n_mal = int(round(n * malignant_fraction))
    labels = np.array([1] * n_mal + [0] * (n - n_mal), dtype=np.int64)
    rng.shuffle(labels)
    images = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
    for i, lab in enumerate(labels):
        images[i] = render_tile(rng, image_size, bool(lab), dom)
    return images, labels


def domain_description(domain: str | Domain) -> dict:
    """JSON-ready description of a domain (for manifests)."""
    dom = DOMAINS[domain] if isinstance(domain, str) else domain
    return {"generator_version": GENERATOR_VERSION, **asdict(dom)}
