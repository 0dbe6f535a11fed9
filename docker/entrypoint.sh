#!/bin/sh
# Start `hf-edge serve` on the bundle at $HF_EDGE_MODEL (default /models), listening on every
# interface inside the container. Extra arguments are passed on:
#   docker run ... hf-edge:cpu --max-batch 8 --providers cpu
# Limits can also come from the environment (HF_EDGE_MAX_BATCH, HF_EDGE_API_KEY, ...).
set -eu
MODEL="${HF_EDGE_MODEL:-/models}"
if [ ! -e "$MODEL" ]; then
    echo "error: no model at $MODEL: mount a bundle (-v /path/to/bundle:/models:ro) or build with --build-arg BUNDLE=..." >&2
    exit 2
fi
# `hf-edge serve` opens a bundle through the verifying reader: a directory without manifest.json
# (an interrupted run) or with a file that changed since the run is refused (exit 2, one line).
# A bare model baked or mounted alone as $MODEL/model.onnx has nothing to verify: serve the file.
if [ -d "$MODEL" ] && [ ! -e "$MODEL/manifest.json" ] && [ -f "$MODEL/model.onnx" ] \
        && [ "$(ls -A "$MODEL")" = "model.onnx" ]; then
    MODEL="$MODEL/model.onnx"
fi
exec /opt/venv/bin/hf-edge serve "$MODEL" --host "${HF_EDGE_HOST:-0.0.0.0}" --port "${HF_EDGE_PORT:-8000}" "$@"
