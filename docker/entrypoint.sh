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
exec /opt/venv/bin/hf-edge serve "$MODEL" --host "${HF_EDGE_HOST:-0.0.0.0}" --port "${HF_EDGE_PORT:-8000}" "$@"
