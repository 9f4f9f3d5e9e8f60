#!/usr/bin/env bash
# IP camera (RTSP: H.264, H.265, MJPEG, ... as decodebin finds a decoder) through rtspsrc into
# defectdetect, with the annotated recording, the NDJSON verdict records and optionally MQTT
# (pipelines/common.sh).
#
#   URL=rtsp://admin:secret@192.168.1.64:554/Streaming/Channels/101 pipelines/rtsp.sh
#
# A camera that stops sending is an error from `camera-watchdog` after WATCHDOG_MS (rtspsrc
# itself would wait for its RTCP timeout and then end the stream); a camera that closes the
# connection is a warning from `camera` ("Could not read from resource") and the end of the
# stream. pipelines/restart_on_error.py restarts the pipeline in both cases.
set -euo pipefail

URL=${URL:-rtsp://127.0.0.1:8554/camera}
# tcp (interleaved in the RTSP connection: no loss, through firewalls), udp, or udp+tcp
# (try UDP, fall back to TCP).
PROTOCOLS=${PROTOCOLS:-tcp}
# Jitter buffer in ms.
LATENCY=${LATENCY:-200}
SOURCE_ID=${SOURCE_ID:-ip-camera}

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

src=(rtspsrc name=camera "location=$URL" "protocols=$PROTOCOLS" "latency=$LATENCY")
mapfile -t extra < <(words SOURCE_PROPS); src+=("${extra[@]}")
# Only the video stream (a camera may offer audio and metadata streams too).
src+=(! application/x-rtp,media=video ! decodebin ! videoconvert)

run_pipeline --live "${src[@]}"
