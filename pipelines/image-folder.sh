#!/usr/bin/env bash
# A folder of still images (PNG or JPEG, numbered: frame-000000.png, frame-000001.png, ...)
# through defectdetect in name order, with the annotated recording (at FRAMERATE), the NDJSON
# verdict records and optionally MQTT (pipelines/common.sh). Ends after the last image.
#
#   IMAGES='captures/frame-%06d.png' pipelines/image-folder.sh
#   IMAGES='line3/img%04d.jpg' START_INDEX=1 FRAMERATE=2/1 pipelines/image-folder.sh
set -euo pipefail

# printf pattern of the file names; the extension picks the decoder (.png: pngdec;
# .jpg/.jpeg: jpegdec).
IMAGES=${IMAGES:-images/frame-%06d.png}
# Number of the first image.
START_INDEX=${START_INDEX:-0}
# Frame rate the images are stamped with (timestamps of the records and the recording).
FRAMERATE=${FRAMERATE:-10/1}
SOURCE_ID=${SOURCE_ID:-image-folder}

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

case ${IMAGES,,} in
  *.png) mime=image/png decoder=pngdec ;;
  *.jpg | *.jpeg) mime=image/jpeg decoder=jpegdec ;;
  *) echo "image-folder: IMAGES must end in .png, .jpg or .jpeg: $IMAGES" >&2; exit 2 ;;
esac
src=(multifilesrc name=camera "location=$IMAGES" "index=$START_INDEX" "caps=$mime,framerate=$FRAMERATE")
[[ -n $NUM_BUFFERS ]] && src+=("num-buffers=$NUM_BUFFERS")
mapfile -t extra < <(words SOURCE_PROPS); src+=("${extra[@]}")
src+=(! "$decoder" ! videoconvert)

run_pipeline --counted "${src[@]}"
