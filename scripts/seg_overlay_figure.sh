#!/usr/bin/env bash
# The picture of models/magnetic-tile-seg.md drawn by the element: the first test tile of each
# defect class of the Magnetic Tile Defect dataset (sorted names, the split's test tiles are
# exp<k>_num_<n>.jpg with n % 5 == 0, tiles whose true mask is empty left out, as
# training/mtd_seg_eval.py --figure picks them) through a real pipeline,
#   filesrc ! jpegdec ! videoconvert ! video/x-raw,format=RGB !
#   defectdetect model=MODEL task=segment policy=... ! defectoverlay ! videoconvert ! pngenc
# (defectdetect's defaults: conf 0.25, class-wise NMS 0.45; a policy that fails every detection
# at conf 0.25 as major, so masks and boxes are orange), then the five outputs side by side
# (OpenCV in .venv joins them, nothing else).
#   MTD_DIR=/path/to/Magnetic-tile-defect-datasets MODEL=/path/to/magnetic-tile-seg.onnx \
#     scripts/seg_overlay_figure.sh [OUT.png]
# Uses the plugin in target/debug (cargo build --lib first).
set -euo pipefail
cd "$(dirname "$0")/.."
MTD_DIR=${MTD_DIR:?set MTD_DIR to a copy of the Magnetic Tile Defect dataset}
MODEL=${MODEL:?set MODEL to the magnetic-tile segmentation model (ONNX)}
OUT=${1:-models/magnetic-tile-seg-overlay.png}
export GST_PLUGIN_PATH=$PWD/target/debug
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '[default]\nmin-confidence = 0.25\nseverity = "major"\n' >"$tmp/policy.toml"

tiles=()
for class in Blowhole Break Crack Fray Uneven; do
  tile=$(.venv/bin/python - "$MTD_DIR/MT_$class/Imgs" <<'EOF'
import glob, os, re, sys
import cv2
for jpg in sorted(glob.glob(os.path.join(sys.argv[1], "*.jpg"))):
    m = re.fullmatch(r"exp\d+_num_(\d+)", os.path.splitext(os.path.basename(jpg))[0])
    if m and int(m.group(1)) % 5 == 0:
        mask = cv2.imread(jpg[:-4] + ".png", cv2.IMREAD_GRAYSCALE)
        if mask is not None and mask.any():
            print(jpg)
            break
EOF
)
  [[ -n $tile ]] || { echo "no test tile of $class under $MTD_DIR" >&2; exit 1; }
  echo "$class: $tile"
  gst-launch-1.0 -q filesrc location="$tile" ! jpegdec ! videoconvert ! video/x-raw,format=RGB ! \
    defectdetect model="$MODEL" task=segment policy="$tmp/policy.toml" ! defectoverlay ! \
    videoconvert ! pngenc ! filesink location="$tmp/$class.png"
  tiles+=("$tmp/$class.png")
done

.venv/bin/python - "$OUT" "${tiles[@]}" <<'EOF'
import sys
import cv2
import numpy as np
out, paths = sys.argv[1], sys.argv[2:]
images = [cv2.imread(p, cv2.IMREAD_COLOR) for p in paths]
h = max(im.shape[0] for im in images)
row = [cv2.copyMakeBorder(im, 0, h - im.shape[0], 0, 8, cv2.BORDER_CONSTANT, value=(255, 255, 255)) for im in images]
cv2.imwrite(out, np.hstack(row), [cv2.IMWRITE_PNG_COMPRESSION, 9])
print(f"{out}: {np.hstack(row).shape[1]}x{h}")
EOF
