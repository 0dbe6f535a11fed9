"""Model registry: every entry builds, has a head, resets it; weight loading and its errors."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from hackforge_edge.errors import ModelError, UsageError  # noqa: E402
from hackforge_edge.models.registry import (  # noqa: E402
    MODELS,
    create_model,
    head_module_name,
    reset_classifier,
    split_parameters,
)

# Smallest input each architecture accepts in train mode (BatchNorm needs >1 value per channel).
INPUT_PX = {"tinycnn": 8, "resnet18": 32, "resnet50": 32, "efficientnet_b0": 32,
            "mobilenet_v2": 32, "mobilenet_v3_small": 32, "efficientnet_lite0": 32}
# Architectures whose construction is slow enough to skip the extra reset/backward checks.
HEAVY = {"resnet50"}


def test_every_registered_model_has_a_case():
    assert set(MODELS) == set(INPUT_PX), "add new registry entries to INPUT_PX"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registry_model_builds_with_head_and_resets(name):
    torch.set_num_threads(1)
    m = create_model(name, 3, "none", seed=1)
    head = m.get_submodule(head_module_name(m))
    assert isinstance(head, torch.nn.Linear) and head.out_features == 3
    heads, backbone = split_parameters(m)
    assert len(heads) == 2 and backbone  # weight + bias; the rest is backbone
    m.eval()
    px = INPUT_PX[name]
    with torch.no_grad():
        assert m(torch.zeros(2, 3, px, px)).shape == (2, 3)
    if name not in HEAVY:
        reset_classifier(m, 5)
        assert m(torch.zeros(2, 3, px, px)).shape == (2, 5)
        assert m.hf_edge_meta["num_classes"] == 5


def test_same_seed_same_init():
    a = create_model("tinycnn", 2, seed=7).state_dict()
    b = create_model("tinycnn", 2, seed=7).state_dict()
    c = create_model("tinycnn", 2, seed=8).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_unknown_model_lists_valid_ones():
    with pytest.raises(UsageError, match="resnet18"):
        create_model("vgg99", 2)


def test_weights_from_path_loads_backbone_and_fresh_head(tmp_path):
    src = create_model("tinycnn", 2, seed=3)
    path = tmp_path / "w.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, path)
    same = create_model("tinycnn", 2, str(path), seed=9)
    assert torch.equal(same.head.weight, src.head.weight)  # head shape fits: loaded too
    old_style = tmp_path / "old.pth"  # pre-0.4.1 checkpoints have no num_batches_tracked
    torch.save({k: v for k, v in src.state_dict().items() if "num_batches" not in k}, old_style)
    assert torch.equal(create_model("tinycnn", 2, str(old_style)).head.bias, src.head.bias)
    other = create_model("tinycnn", 4, str(path), seed=9)
    assert torch.equal(other.features[0].weight, src.features[0].weight)
    assert other.head.out_features == 4 and other.hf_edge_meta["weights"]["head_loaded"] is False


def test_weights_path_mismatch_is_model_error(tmp_path):
    path = tmp_path / "r18.pt"
    torch.save(create_model("tinycnn", 2).state_dict(), path)
    with pytest.raises(ModelError, match="does not fit mobilenet_v3_small"):
        create_model("mobilenet_v3_small", 2, str(path))
    bad = tmp_path / "junk.pth"
    bad.write_bytes(b"junk")
    with pytest.raises(ModelError, match="not a readable"):
        create_model("tinycnn", 2, str(bad))


def test_unknown_weights_is_usage_error():
    with pytest.raises(UsageError, match="none, imagenet, source"):
        create_model("tinycnn", 2, "no/such/file.pt")


def test_imagenet_download_failure_is_model_error(monkeypatch):
    import torchvision.models._api as tv_api

    def offline(*a, **k):  # what torchvision's download raises without a network
        raise OSError("network unreachable")

    # patched where torchvision fetches weights, so no test ever downloads (or uses a local cache)
    monkeypatch.setattr(tv_api, "load_state_dict_from_url", offline)
    with pytest.raises(ModelError, match="could not be downloaded.*--weights none"):
        create_model("resnet18", 2, "imagenet")
    with pytest.raises(UsageError, match="no ImageNet weights"):
        create_model("tinycnn", 2, "imagenet")


def test_source_weights_pretrain_then_hit_cache(tmp_path):
    from hackforge_edge.models.source import SourceRecipe, get_source_model

    torch.set_num_threads(1)
    recipe = SourceRecipe(n_train=8, n_val=4, n_test=4, epochs=1, lr=1e-2, batch_size=4)

    def build(seed):
        return create_model("tinycnn", 2, "none", seed=seed)

    _, info = get_source_model("tinycnn", build, image_size=16, recipe=recipe, cache_dir=tmp_path,
                               progress=False)
    assert info["cache_hit"] is False and 0 <= info["source_test_accuracy"] <= 1
    src, again = get_source_model("tinycnn", build, image_size=16, recipe=recipe, cache_dir=tmp_path,
                                  progress=False)
    assert again["cache_hit"] is True and again["cache_path"] == info["cache_path"]
    assert again["source_test_accuracy"] == info["source_test_accuracy"]
    other_seed = get_source_model("tinycnn", build, image_size=16, seed=1, recipe=recipe,
                                  cache_dir=tmp_path, progress=False)[1]
    assert other_seed["cache_path"] != info["cache_path"]
    # create_model(weights="source") goes through the same cache
    m = create_model("tinycnn", 3, "source", image_size=16, source_recipe=recipe, cache_dir=tmp_path)
    assert m.hf_edge_meta["weights"]["kind"] == "source" and m.hf_edge_meta["weights"]["cache_hit"]
    assert torch.equal(m.features[0].weight, src.features[0].weight) and m.head.out_features == 3
