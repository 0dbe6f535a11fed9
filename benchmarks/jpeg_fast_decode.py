"""How far the server's DCT-scaled JPEG decode moves a bundle's inputs and predictions.

``hf-edge serve`` decodes a JPEG at least four times the model's input side at 1/2, 1/4 or 1/8
scale (libjpeg's scaled IDCT through Pillow's ``draft``), never below twice the input side,
before the training resize; ``--exact-jpeg``
decodes at full size, which equals the training preprocessing to 1e-5. For the bundle's model
and the synthetic target-domain tiles rendered at ``--factors`` times its input side (JPEG
quality ``--quality``), this prints per factor: the scale libjpeg used, the input difference
(max and mean, in normalised units and in 8-bit grey levels), the largest change of a
probability, whether every predicted class is unchanged, and the CPU time of the two decodes.

    python benchmarks/jpeg_fast_decode.py runs/<bundle> [--images 200 --factors 2,4,8]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path, help="an image bundle (model.onnx + preprocess.json)")
    ap.add_argument("--images", type=int, default=200, help="synthetic target tiles (test stream)")
    ap.add_argument("--factors", default="2,4,8", help="JPEG side / model input side")
    ap.add_argument("--quality", type=int, default=90)
    args = ap.parse_args(argv)

    import onnxruntime as ort
    from PIL import Image

    from hackforge_edge.data import synthetic
    from hackforge_edge.data.preprocess import ImagePreprocess
    from hackforge_edge.serving.inputs import images_to_batch, load_image
    from hackforge_edge.serving.settings import load_settings

    pre = ImagePreprocess.from_json(json.loads((args.bundle / "preprocess.json").read_text()))
    sess = ort.InferenceSession(str(args.bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    fast_cfg = load_settings({"fast_jpeg": 1}, environ={})
    exact_cfg = load_settings({"fast_jpeg": 0}, environ={})
    # a normalised difference d in channel c is d * 255 * std[c] grey levels (8-bit)
    grey = (255.0 * np.asarray(pre.std, np.float64)).reshape(1, 3, 1, 1)

    def probs(x: np.ndarray) -> np.ndarray:
        logits = np.concatenate([sess.run(None, {pre.input_name: x[i:i + 32]})[0] for i in range(0, len(x), 32)])
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def batch(blobs, cfg) -> tuple[np.ndarray, float]:
        t0 = time.process_time()
        x = np.concatenate([images_to_batch([b], pre, cfg) for b in blobs])
        return x, (time.process_time() - t0) * 1000 / len(blobs)

    side = pre.image_size[0]
    print(f"{args.bundle.name}: input {pre.image_size[0]}x{pre.image_size[1]}, {args.images} synthetic "
          f"target tiles per factor, JPEG quality {args.quality}")
    print("| JPEG side | decoded at | max / mean input diff (normalised) | max / mean (grey levels) | "
          "max |dp| | class unchanged | CPU ms/image exact / fast |")
    print("|---|---|---|---|---|---|---|")
    for factor in (int(f) for f in args.factors.split(",")):
        size = side * factor
        imgs, _ = synthetic.generate(args.images, image_size=size, domain="target", seed=0, stream=2)
        blobs = []
        for im in imgs:
            buf = io.BytesIO()
            Image.fromarray(im).save(buf, format="JPEG", quality=args.quality)
            blobs.append(buf.getvalue())
        # the size the server decodes at: its own loader, on the first image
        probe = load_image(blobs[0], fast_cfg, target_size=tuple(pre.image_size))
        exact, t_exact = batch(blobs, exact_cfg)
        fast, t_fast = batch(blobs, fast_cfg)
        d = np.abs(fast - exact)
        g = d * grey
        p_exact, p_fast = probs(exact), probs(fast)
        same = int((p_exact.argmax(1) == p_fast.argmax(1)).sum())
        print(f"| {size} | {probe.size[0]} px | {d.max():.3f} / {d.mean():.4f} | {g.max():.1f} / "
              f"{g.mean():.2f} | {np.abs(p_fast - p_exact).max():.4f} | {same}/{len(blobs)} | "
              f"{t_exact:.2f} / {t_fast:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
