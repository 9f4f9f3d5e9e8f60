#!/usr/bin/env bash
# Bayer raw frames (a colour machine-vision camera's sensor mosaic) demosaiced by bayer2rgb into
# defectdetect, with the annotated recording, the NDJSON verdict records and optionally MQTT
# (pipelines/common.sh). By default the frames come from a GigE Vision camera through aravissrc;
# SOURCE takes any source that gives video/x-bayer.
#
#   CAMERA=192.168.10.22 pipelines/bayer.sh
#   SOURCE="v4l2src device=/dev/video0" BAYER_FORMAT=grbg pipelines/bayer.sh
#
# bayer2rgb gives RGBx / BGRx, which defectdetect takes as they are.
set -euo pipefail

# Aravis camera id or IP address for the default source (as in pipelines/gige.sh).
CAMERA=${CAMERA:-}
# The source, a gst-launch-1.0 fragment giving video/x-bayer (words split on spaces).
# Default: aravissrc name=camera [camera-name=$CAMERA] [num-buffers=$NUM_BUFFERS].
SOURCE=${SOURCE:-}
# The sensor's mosaic (rggb, grbg, gbrg, bggr); empty = whatever the source says.
BAYER_FORMAT=${BAYER_FORMAT:-}
SOURCE_ID=${SOURCE_ID:-bayer-camera}

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

counted=()
if [[ -n $SOURCE ]]; then
  mapfile -t src < <(words SOURCE)
else
  src=(aravissrc name=camera)
  [[ -n $CAMERA ]] && src+=("camera-name=$CAMERA")
  if [[ -n $NUM_BUFFERS ]]; then src+=("num-buffers=$NUM_BUFFERS"); counted=(--counted); fi
  mapfile -t extra < <(words SOURCE_PROPS); src+=("${extra[@]}")
fi
src+=(! "video/x-bayer${BAYER_FORMAT:+,format=$BAYER_FORMAT}" ! bayer2rgb)

run_pipeline --live "${counted[@]}" "${src[@]}"
