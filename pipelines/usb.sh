#!/usr/bin/env bash
# USB (UVC) or other V4L2 camera through v4l2src into defectdetect, with the annotated
# recording, the NDJSON verdict records and optionally MQTT (pipelines/common.sh).
#
#   DEVICE=/dev/video2 CAPS=video/x-raw,width=1280,height=720,framerate=30/1 pipelines/usb.sh
#   CAPS=image/jpeg,width=1920,height=1080 pipelines/usb.sh         # MJPEG, decoded by jpegdec
#   CAPS=video/x-raw,format=GRAY8 pipelines/usb.sh                  # mono camera: no conversion
#
# List a camera's formats with `v4l2-ctl --list-formats-ext -d /dev/video0` (v4l-utils) or
# `gst-device-monitor-1.0 Video/Source`. A camera that is unplugged is an error from `camera`;
# one that stops sending is an error from `camera-watchdog` after WATCHDOG_MS.
# Not tested against hardware: the test suite checks that the line parses (DRY_RUN=1).
set -euo pipefail

DEVICE=${DEVICE:-/dev/video0}
# Caps asked of the camera: video/x-raw[,...] (raw: YUY2, NV12, GRAY8, ...) or image/jpeg[,...]
# (MJPEG, decoded with jpegdec). Formats defectdetect does not take (YUY2) are converted by
# videoconvert; the ones it takes (GRAY8, NV12, I420, RGB, ...) pass through untouched.
CAPS=${CAPS:-video/x-raw}
SOURCE_ID=${SOURCE_ID:-usb-camera}

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

src=(v4l2src name=camera "device=$DEVICE")
[[ -n $NUM_BUFFERS ]] && src+=("num-buffers=$NUM_BUFFERS")
mapfile -t extra < <(words SOURCE_PROPS); src+=("${extra[@]}")
src+=(! "$CAPS")
[[ $CAPS == image/jpeg* ]] && src+=(! jpegdec)
src+=(! videoconvert)

run_pipeline --live --counted "${src[@]}"
