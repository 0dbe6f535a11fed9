"""Build the ONNX graphs of the published-results models here (random weights) and write their
static-analysis features, so the published-results calibration refits without these packages.

Benchmark-only dependencies (not runtime deps of hackforge-edge):

    pip install ultralytics opencv-python-headless polars ultralytics-thop   # YOLO from its yaml
    pip install timm                                                         # MobileNetV1
    (torch, torchvision, onnx are in the train extra)

    python benchmarks/published_features.py                       # fitting models -> package JSON
    python benchmarks/published_features.py --check               # ResNet-50 / BERT check models
    python benchmarks/published_features.py --only yolo11n,yolo11s  # a subset (merged into the file)

No weights are downloaded: YOLO models are built from the yaml shipped inside the ultralytics
package (``YOLO("yolo11n.yaml")``), torchvision models with ``weights=None``, BERT from a config.
The ONNX files go to a temporary folder and are deleted; only the features are kept.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hackforge_edge.profiling.published import (  # noqa: E402
    CHECK_FEATURES_FILE,
    FEATURES_FILE,
    features_record,
)

# model name -> (builder, input size); names are the keys the measurement files use
YOLO_DET = [f"yolo11{s}" for s in "nsmlx"] + [f"yolov8{s}" for s in "nsmlx"]
YOLO_CLS = [f"yolo11{s}-cls" for s in "nsmlx"]
CNN = ["mobilenet_v2", "mobilenetv1_100"]          # torchvision / timm, 224x224
CHECK = ["resnet50", "bert-base-seq128"]


def _yolo(name: str):
    import os
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import ultralytics
    from ultralytics import YOLO
    m = YOLO(f"{name}.yaml", verbose=False).model.eval()
    head = m.model[-1]
    head.export = True                 # Detect/Classify return the inference tensor only
    if hasattr(head, "format"):
        head.format = "onnx"
    size = 224 if name.endswith("-cls") else 640
    return m, size, f"ultralytics {ultralytics.__version__} YOLO('{name}.yaml') (random weights)"


def _torchvision(name: str):
    if name.startswith("mobilenetv1"):        # not in torchvision; timm's MobileNetV1 1.0
        import timm
        m = timm.create_model(name, pretrained=False).eval()
        return m, 224, f"timm {timm.__version__} create_model('{name}', pretrained=False)"
    import torchvision
    m = getattr(torchvision.models, name)(weights=None).eval()
    return m, 224, f"torchvision {torchvision.__version__} models.{name}(weights=None)"


def export(name: str, out_dir: Path) -> tuple[Path, int, int | None, str]:
    """ONNX file, image size (or 0 for text), seq_len, provenance."""
    import torch
    torch.manual_seed(0)
    out = out_dir / f"{name}.onnx"
    seq = None
    if name.startswith("bert-base"):
        import transformers
        from transformers import BertConfig, BertForSequenceClassification
        seq = int(name.rsplit("seq", 1)[1])
        model = BertForSequenceClassification(BertConfig()).eval()   # BERT-base defaults
        args = (torch.randint(0, 1000, (1, seq)), torch.ones(1, seq, dtype=torch.long))
        names, size = ["input_ids", "attention_mask"], 0
        prov = f"transformers {transformers.__version__} BertForSequenceClassification(BertConfig()) (random weights)"
    else:
        model, size, prov = _yolo(name) if name.startswith("yolo") else _torchvision(name)
        args = (torch.randn(1, 3, size, size),)
        names = ["images"]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, str(out), dynamo=False, input_names=names,
                          opset_version=17, verbose=False)
    return out, size, seq, prov + f"; torch {torch.__version__} torch.onnx.export (TorchScript exporter, opset 17)"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="the ResNet-50/BERT check models")
    ap.add_argument("--only", default=None, help="comma-separated subset of model names")
    args = ap.parse_args(argv)
    names = CHECK if args.check else YOLO_DET + YOLO_CLS + CNN
    if args.only:
        names = [n for n in args.only.split(",") if n]
    target = (REPO / CHECK_FEATURES_FILE) if args.check else (REPO / FEATURES_FILE)
    data = json.loads(target.read_text()) if target.is_file() else {"schema_version": 1, "models": {}}
    from hackforge_edge.profiling.static import analyze
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            t0 = time.perf_counter()
            path, size, seq, prov = export(name, Path(tmp))
            st = analyze(path, batch=1, seq_len=seq)
            data["models"][name] = features_record(st, input_size=size, seq_len=seq, built_by=prov)
            path.unlink()
            print(f"{name}: {st.flops / 1e9:.2f} GFLOPs, {len(st.layers)} nodes, uncosted "
                  f"{dict(st.uncosted_ops) or 'none'} ({time.perf_counter() - t0:.0f} s)", flush=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {target.relative_to(REPO)} ({target.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
