#!/usr/bin/env bash
# GenICam / GigE Vision camera through aravissrc (Debian: libaravis-0.8-0) into defectdetect,
# with the annotated recording, the NDJSON verdict records and optionally MQTT
# (pipelines/common.sh). Mono8 frames go into defectdetect as GRAY8, without colour conversion.
#
#   CAMERA=192.168.10.21 pipelines/gige.sh
#   CAMERA=Basler-12345678 PIXEL_FORMAT=RGB FEATURES="ExposureTime=4000" pipelines/gige.sh
#
# Aravis tools list and test cameras: arv-camera-test-0.8 (aravis-tools). A camera that stops
# sending is an error naming the source: `camera` (aravissrc: no frame within 2 s) or
# `camera-watchdog` (WATCHDOG_MS). Bayer cameras: pipelines/bayer.sh.
set -euo pipefail

# Aravis camera id ("Vendor-Model-Serial" or "Vendor-Serial", as arv-camera-test-0.8 prints it) or
# the camera's IP address; empty = the first camera found. An address opens the camera through
# the interface whose network holds it, without discovery (needed when camera and host share
# an interface, as the fake camera on 127.0.0.1 does: see pipelines/README.md).
CAMERA=${CAMERA:-}
# GRAY8 for Mono8 cameras (straight into defectdetect), RGB or BGR for colour cameras.
PIXEL_FORMAT=${PIXEL_FORMAT:-GRAY8}
# Optional frame size and rate (empty = the camera's current setting).
WIDTH=${WIDTH:-}
HEIGHT=${HEIGHT:-}
FRAMERATE=${FRAMERATE:-}
# GigE Vision stream packet size in bytes (e.g. 8000 on a link with jumbo frames); empty =
# Aravis's default (1400 on Ethernet); AUTO_PACKET_SIZE=true negotiates the largest that passes.
PACKET_SIZE=${PACKET_SIZE:-}
AUTO_PACKET_SIZE=${AUTO_PACKET_SIZE:-false}
# Exposure (µs) and gain (dB); empty = the camera's own setting.
EXPOSURE_US=${EXPOSURE_US:-}
GAIN_DB=${GAIN_DB:-}
# Further GenICam features, space separated, e.g. "TriggerMode=On TriggerSource=Line1".
FEATURES=${FEATURES:-}
SOURCE_ID=${SOURCE_ID:-gige-camera}

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

src=(aravissrc name=camera)
[[ -n $CAMERA ]] && src+=("camera-name=$CAMERA")
[[ -n $NUM_BUFFERS ]] && src+=("num-buffers=$NUM_BUFFERS")
[[ -n $PACKET_SIZE ]] && src+=("packet-size=$PACKET_SIZE")
[[ $AUTO_PACKET_SIZE == true ]] && src+=(auto-packet-size=true)
[[ -n $EXPOSURE_US ]] && src+=("exposure=$EXPOSURE_US")
[[ -n $GAIN_DB ]] && src+=("gain=$GAIN_DB")
[[ -n $FEATURES ]] && src+=("features=$FEATURES")
mapfile -t extra < <(words SOURCE_PROPS); src+=("${extra[@]}")
caps="video/x-raw,format=$PIXEL_FORMAT"
[[ -n $WIDTH ]] && caps+=",width=$WIDTH"
[[ -n $HEIGHT ]] && caps+=",height=$HEIGHT"
[[ -n $FRAMERATE ]] && caps+=",framerate=$FRAMERATE"
src+=(! "$caps")

run_pipeline --live --counted "${src[@]}"
