#!/usr/bin/env bash
# Build docker/Dockerfile.cpu with podman and prove the image serves a correct prediction.
#
#   docker/check_cpu_image.sh BUNDLE_DIR [TAG]
#
# For machines without a Docker engine (see notes/containers.md): a local Debian base image is
# made with debootstrap (cached under .cache/containers/), the real Dockerfile is built on it
# with `podman build --isolation chroot`, and because `podman run` cannot work in this sandbox
# the server is started by chroot-ing into a container's filesystem, as the image's non-root
# user, on 127.0.0.1. A real multipart upload is compared with onnxruntime run directly (inside
# the image) on the bundle's training preprocessing. Prints the image size and the build time.
set -euo pipefail

BUNDLE=${1:?usage: docker/check_cpu_image.sh BUNDLE_DIR [TAG]}
TAG=${2:-localhost/hf-edge:cpu-check}
REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE="$REPO/.cache/containers"
BASE=localhost/debian-python:bookworm-slim
BASE_TAR="$CACHE/debian-python-bookworm-slim.tar"
PORT=${HF_EDGE_CHECK_PORT:-18431}
[ -f "$BUNDLE/model.onnx" ] || { echo "error: $BUNDLE has no model.onnx" >&2; exit 2; }
# the image's `hf-edge serve` verifies the bundle (Bundle.open): pass a complete one
[ -f "$BUNDLE/manifest.json" ] || { echo "error: $BUNDLE is an incomplete bundle (no manifest.json); re-run train-and-export" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "error: run as root (podman image mount and chroot need it)" >&2; exit 2; }

log() { printf '[check_cpu_image] %s\n' "$*"; }

# ---- tools
missing=()
for tool in podman debootstrap runc; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman debootstrap runc >/dev/null
fi

# ---- local base image (Debian's python3 3.11), rootfs tarball cached in .cache/ (git-ignored)
if ! podman image exists "$BASE"; then
    if [ ! -s "$BASE_TAR" ]; then
        log "debootstrap bookworm -> $BASE_TAR"
        mkdir -p "$CACHE"
        rm -rf "$CACHE/rootfs-bookworm"
        debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
            bookworm "$CACHE/rootfs-bookworm" >"$CACHE/debootstrap.log" 2>&1
        # like python:3.11-slim: no downloaded .debs or apt lists left in the base (~100 MB)
        rm -rf "$CACHE/rootfs-bookworm"/var/cache/apt/archives/*.deb "$CACHE/rootfs-bookworm"/var/lib/apt/lists/*
        tar -C "$CACHE/rootfs-bookworm" -cf "$BASE_TAR.tmp" . && mv "$BASE_TAR.tmp" "$BASE_TAR"
        rm -rf "$CACHE/rootfs-bookworm"
    fi
    log "podman import $BASE"
    podman import "$BASE_TAR" "$BASE" >/dev/null
fi

# ---- build the real Dockerfile
# A TLS-inspecting proxy signs with a CA the host trusts but the fresh image does not: lend the
# host's CA bundle to the build's RUN steps only (a bind mount; nothing lands in the image).
# Debian's pip (in the venv from python3-venv) reads the system bundle.
HOST_CA=${HF_EDGE_CHECK_CA:-/etc/ssl/certs/ca-certificates.crt}
ca_mount=()
[ -s "$HOST_CA" ] && ca_mount=(-v "$HOST_CA:/etc/ssl/certs/ca-certificates.crt:ro")
log "podman build -f docker/Dockerfile.cpu -t $TAG"
t0=$(date +%s)
podman build --isolation chroot --network host --format docker "${ca_mount[@]}" \
    --build-arg BASE_IMAGE="$BASE" -t "$TAG" -f "$REPO/docker/Dockerfile.cpu" "$REPO"
build_s=$(( $(date +%s) - t0 ))
size_b=$(podman image inspect --format '{{.Size}}' "$TAG")

# ---- run its filesystem: a container's writable root, the bundle copied in at /models
ctr=$(podman create "$TAG")
root=$(podman mount "$ctr")
server_pid=
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    umount "$root/proc" 2>/dev/null || true
    podman umount "$ctr" >/dev/null 2>&1 || true
    podman rm -f "$ctr" >/dev/null 2>&1 || true
}
trap cleanup EXIT
mount -t proc proc "$root/proc" 2>/dev/null || log "note: /proc not mounted in the chroot"
cp -a "$BUNDLE"/. "$root/models/"
chmod -R a+rX "$root/models"
mkdir -p "$root/tmp" && chmod 1777 "$root/tmp"
CHROOT=$(command -v chroot)
# the image's environment (its ENV lines), not the host's; 127.0.0.1 instead of 0.0.0.0
IMAGE_ENV=(PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin HOME=/tmp PYTHONUNBUFFERED=1
           HF_EDGE_MODEL=/models HF_EDGE_HOST=127.0.0.1 HF_EDGE_PORT="$PORT")
run_in_image() {
    env -i "${IMAGE_ENV[@]}" "$CHROOT" --userspec=10001:10001 "$root" "$@"
}

# reference: onnxruntime directly on the training preprocessing, inside the image (a text
# bundle: the tokenizers library on the bundle's tokenizer.json; an image bundle: a PNG probe)
run_in_image /opt/venv/bin/python - <<'PY'
import io, json
import numpy as np
import onnxruntime as ort
labels = json.load(open("/models/labels.json"))
pre_json = json.load(open("/models/preprocess.json"))
sess = ort.InferenceSession("/models/model.onnx", providers=["CPUExecutionProvider"])
if pre_json.get("kind") == "text":
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file("/models/tokenizer.json")
    tok.enable_truncation(pre_json["max_length"])
    text = "Dear Doctor, thank you for seeing this 71-year-old man with crushing chest pain."
    ids = np.asarray([tok.encode(text).ids], dtype=np.int64)
    z = sess.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0]
    json.dump({"texts": [text]}, open("/tmp/probe.json", "w"))
else:
    from PIL import Image
    from hackforge_edge.data.preprocess import ImagePreprocess
    pre = ImagePreprocess.from_json(pre_json)
    rgb = np.random.default_rng(7).integers(0, 256, size=(97, 131, 3), dtype=np.uint8)
    Image.fromarray(rgb).save("/tmp/probe.png")
    x = pre.pil_to_chw(Image.open("/tmp/probe.png"))[None]
    z = sess.run(None, {pre.input_name: x})[0][0]
p = np.exp(z - z.max()); p /= p.sum()
json.dump({lab: float(v) for lab, v in zip(labels, p)}, open("/tmp/reference.json", "w"))
PY

log "starting the image's entrypoint on 127.0.0.1:$PORT (chroot, uid 10001)"
# started directly (not through a function) so $! is the server itself: env, chroot and the
# entrypoint each exec the next
env -i "${IMAGE_ENV[@]}" "$CHROOT" --userspec=10001:10001 "$root" /usr/local/bin/hf-edge-entrypoint \
    >"$root/tmp/server.log" 2>&1 &
server_pid=$!

python3 - "$PORT" "$root/tmp/probe.png" "$root/tmp/reference.json" "$root/tmp/server.log" <<'PY'
import json, os, sys, time, urllib.error, urllib.request, uuid
port, probe, ref_path, log_path = sys.argv[1:]
text_probe = os.path.join(os.path.dirname(probe), "probe.json")
base = f"http://127.0.0.1:{port}"
deadline = time.monotonic() + 180
while True:
    try:
        if urllib.request.urlopen(base + "/readyz", timeout=5).status == 200:
            break
    except (urllib.error.URLError, ConnectionError, OSError):
        pass
    if time.monotonic() > deadline:
        sys.exit("server never became ready:\n" + open(log_path).read()[-3000:])
    time.sleep(0.5)
if os.path.exists(text_probe):  # a text bundle: {"texts": [...]}
    req = urllib.request.Request(base + "/v1/predict", data=open(text_probe, "rb").read(), method="POST",
                                 headers={"Content-Type": "application/json"})
else:
    boundary = uuid.uuid4().hex
    data = open(probe, "rb").read()
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"probe.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(base + "/v1/predict", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
t = time.perf_counter()
resp = json.load(urllib.request.urlopen(req, timeout=60))
ms = (time.perf_counter() - t) * 1000
ref = json.load(open(ref_path))
got = resp["predictions"][0]["probabilities"]
diff = max(abs(got[k] - ref[k]) for k in ref)
health = urllib.request.urlopen(base + "/healthz", timeout=5).read().decode()
md = json.load(urllib.request.urlopen(base + "/v1/metadata", timeout=5))
print(f"[check_cpu_image] prediction {resp['predictions'][0]['label']!r} ({ms:.1f} ms round trip), "
      f"max |p_server - p_onnxruntime| = {diff:.2e}; providers {md['providers']['in_use']}; healthz {health}")
if diff > 1e-5 or set(got) != set(ref):
    sys.exit(f"prediction differs from onnxruntime: {got} vs {ref}")
PY

server_uid=$(ps -o uid= -p "$server_pid" | tr -d ' ')
log "server pid $server_pid ran as uid $server_uid: $(ps -o args= -p "$server_pid")"
[ "$server_uid" = 10001 ] || { echo "error: the server did not run as the image's user" >&2; exit 1; }
if run_in_image /opt/venv/bin/python -c "import torch" 2>/dev/null; then
    echo "error: torch is importable in the image" >&2; exit 1
fi
log "image $TAG: size $(( size_b / 1000000 )) MB ($size_b bytes), build time ${build_s} s"
log "OK"
