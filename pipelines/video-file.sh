#!/usr/bin/env bash
# Recorded video (anything decodebin reads: MP4, MKV, WebM, AVI, ...) replayed through
# defectdetect as fast as it decodes, with the annotated recording, the NDJSON verdict records
# and optionally MQTT (pipelines/common.sh).
#
#   pipelines/video-file.sh                                            # the bundled conveyor video
#   VIDEO=tests/data/conveyor_mono.mp4 FORMAT=GRAY8 pipelines/video-file.sh   # as a mono camera
set -euo pipefail

VIDEO=${VIDEO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/data/conveyor_color.mp4}
# Pixel format the decoded frames are converted to (GRAY8 for a mono recording); empty =
# whatever videoconvert and defectdetect agree on.
FORMAT=${FORMAT:-}
SOURCE_ID=${SOURCE_ID:-video-file}

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

src=(filesrc name=camera "location=$VIDEO")
mapfile -t extra < <(words SOURCE_PROPS); src+=("${extra[@]}")
src+=(! decodebin ! videoconvert)
[[ -n $FORMAT ]] && src+=(! "video/x-raw,format=$FORMAT")

run_pipeline "${src[@]}"
