"""The preprocessing shared by training and serving."""

import numpy as np
import pytest
from PIL import Image

from hackforge_edge.data.preprocess import ImagePreprocess


def _reference(rgb, pp):
    h, w = pp.image_size
    if rgb.shape[:2] != (h, w):
        rgb = np.asarray(Image.fromarray(rgb).resize((w, h), Image.BILINEAR))
    x = rgb.astype(np.float64) / 255.0
    return ((x - np.asarray(pp.mean)) / np.asarray(pp.std)).transpose(2, 0, 1)


@pytest.mark.parametrize("shape", [(32, 32, 3), (40, 56, 3)])
def test_array_to_chw_matches_the_textbook_formula(shape):
    pp = ImagePreprocess(image_size=(32, 32))
    rgb = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    out = pp.array_to_chw(rgb)
    assert out.shape == (3, 32, 32) and out.dtype == np.float32 and out.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(out, _reference(rgb, pp), atol=2e-6)


def test_pil_and_array_paths_agree_and_batch_stacks():
    pp = ImagePreprocess(image_size=(16, 24))
    rgb = np.random.default_rng(1).integers(0, 256, (30, 20, 3), dtype=np.uint8)
    for mode in ("RGBA", "RGB"):  # resized as a PIL image: bit-identical to the array path
        np.testing.assert_array_equal(pp.pil_to_chw(Image.fromarray(rgb).convert(mode)),
                                      pp.array_to_chw(rgb))
    grey = Image.fromarray(rgb).convert("L")
    np.testing.assert_array_equal(pp.pil_to_chw(grey), pp.array_to_chw(np.asarray(grey.convert("RGB"))))
    assert pp.batch([rgb, rgb]).shape == (2, 3, 16, 24)
    batch = np.full((2, 3, 16, 24), np.nan, np.float32)  # the serving path writes in place
    assert np.shares_memory(pp.pil_to_chw(Image.fromarray(rgb), out=batch[1]), batch)
    np.testing.assert_array_equal(batch[1], pp.array_to_chw(rgb))
    assert np.isnan(batch[0]).all()


def test_json_round_trip_and_bad_input():
    pp = ImagePreprocess(image_size=(64, 48), mean=(0.5, 0.5, 0.5), std=(0.2, 0.3, 0.4))
    assert ImagePreprocess.from_json(pp.to_json()) == pp
    with pytest.raises(ValueError, match="uint8"):
        pp.array_to_chw(np.zeros((8, 8, 3), np.float32))
