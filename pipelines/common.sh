# Shared part of the ready pipelines in pipelines/: sourced by every script there, not run on
# its own. A script names its source (a gst-launch-1.0 fragment that ends in raw video) and calls
#
#   run_pipeline [--live] [--counted] SOURCE-TOKENS...
#
# (--live: a camera, watched by a watchdog; --counted: the source itself stops after
# NUM_BUFFERS frames, its num-buffers property set by the script), which appends the same
# inspection and outputs to every source:
#
#   SOURCE ! [watchdog] ! [identity eos-after=NUM_BUFFERS] ! defectdetect ! tee name=frames
#     frames. ! queue ! defectmetaconvert ! tee name=recs
#       recs. ! queue ! filesink            the NDJSON verdict records, one a line
#       recs. ! queue ! defectmqttsink      the same records over MQTT (only when MQTT_HOST is set)
#     frames. ! queue ! defectmodbussink    reject pulses to the PLC over Modbus TCP (MODBUS_HOST set)
#     frames. ! queue ! defectopcuasink     the OPC UA server for SCADA (OPCUA_PORT set)
#     frames. ! queue ! defectoverlay ! videoconvert ! ENCODER ! MUXER ! filesink   annotated recording
#
# and runs it with `gst-launch-1.0 -e` (Ctrl-C sends EOS first, so the MP4 is finalised, the
# reject coil switched off). SIGTERM (systemctl stop, docker stop) does the same: gst-launch-1.0
# handles only SIGINT, so it runs with SIGTERM ignored and the script turns a SIGTERM into a
# SIGINT for it.
#
# Variables (environment; each script sets its own SOURCE_ID default):
#   MODEL        ONNX detector                       (default models/surface-defects.onnx)
#   POLICY       inspection policy, empty for none    (default pipelines/policy.toml)
#   SOURCE_ID    camera / line id in every record     (per script)
#   OUT_DIR      where the outputs go                 (default out)
#   VERDICTS     NDJSON verdict records               (default $OUT_DIR/$SOURCE_ID.ndjson)
#   RECORDING    annotated recording, empty for none  (default $OUT_DIR/$SOURCE_ID.mp4)
#   ENCODER      encoder of the recording             (default x264enc speed-preset=ultrafast tune=zerolatency)
#   MUXER        muxer of the recording               (default mp4mux)
#   NUM_BUFFERS  stop (EOS) after this many frames    (default: run until the source ends or Ctrl-C);
#                exact where the source counts frames (cameras, image folders), about that many
#                where identity eos-after counts them after a decoder (video file, RTSP)
#   WATCHDOG_MS  live sources: error when no frame came for this long, 0 = off (default 5000)
#   MQTT_HOST    publish the records to this MQTT broker too (default: no MQTT)
#   MQTT_PORT, MQTT_TOPIC, MQTT_QOS                   (default: the element's: 1883,
#                                                      defect/{source_id}/verdicts, QoS 1)
#   MODBUS_HOST  pulse a reject coil of this PLC over Modbus TCP (default: no Modbus)
#   MODBUS_PORT                                       (default: the element's, 502)
#   OPCUA_PORT   serve the verdicts over OPC UA on this port (default: no OPC UA)
#   OPCUA_HOST   address the OPC UA server listens on (default: the element's, 127.0.0.1)
#   SOURCE_PROPS, DETECT_PROPS, OVERLAY_PROPS, MQTT_PROPS, MODBUS_PROPS, OPCUA_PROPS
#                extra properties (name=value, space separated) of the source, defectdetect,
#                defectoverlay, defectmqttsink, defectmodbussink, defectopcuasink
#   DRY_RUN=1    print the pipeline description (as Gst.parse_launch takes it) instead of running
# Arguments of a script are passed to gst-launch-1.0 as its options (-v, -m, ...).

PIPELINES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$PIPELINES_DIR")

MODEL=${MODEL:-$REPO_DIR/models/surface-defects.onnx}
POLICY=${POLICY-$REPO_DIR/pipelines/policy.toml}
OUT_DIR=${OUT_DIR:-out}
VERDICTS=${VERDICTS:-$OUT_DIR/$SOURCE_ID.ndjson}
RECORDING=${RECORDING-$OUT_DIR/$SOURCE_ID.mp4}
ENCODER=${ENCODER:-x264enc speed-preset=ultrafast tune=zerolatency}
MUXER=${MUXER:-mp4mux}
NUM_BUFFERS=${NUM_BUFFERS:-}
WATCHDOG_MS=${WATCHDOG_MS:-5000}
MQTT_HOST=${MQTT_HOST:-}
MQTT_PORT=${MQTT_PORT:-}
MQTT_TOPIC=${MQTT_TOPIC:-}
MQTT_QOS=${MQTT_QOS:-}
SOURCE_PROPS=${SOURCE_PROPS:-}
DETECT_PROPS=${DETECT_PROPS:-}
OVERLAY_PROPS=${OVERLAY_PROPS:-}
MQTT_PROPS=${MQTT_PROPS:-}
MODBUS_HOST=${MODBUS_HOST:-}
MODBUS_PORT=${MODBUS_PORT:-}
MODBUS_PROPS=${MODBUS_PROPS:-}
OPCUA_PORT=${OPCUA_PORT:-}
OPCUA_HOST=${OPCUA_HOST:-}
OPCUA_PROPS=${OPCUA_PROPS:-}
DRY_RUN=${DRY_RUN:-}

# words VAR: the space-separated words of a variable, as separate tokens (no globbing)
words() {
  local -a w
  read -r -a w <<<"${!1}"
  [[ ${#w[@]} -eq 0 ]] || printf '%s\n' "${w[@]}"
}

# run_pipeline [--live] [--counted] TOKENS...: append detection and the tee branches, then run
# or print.
run_pipeline() {
  local live=false counted=false
  while [[ ${1:-} == --* ]]; do
    case $1 in
      --live) live=true ;;
      --counted) counted=true ;;
    esac
    shift
  done
  local -a line=("$@") extra
  if [[ $live == true && $WATCHDOG_MS != 0 ]]; then
    # A camera that stops sending is an error on the bus naming camera-watchdog, not a hang.
    line+=(! watchdog name=camera-watchdog "timeout=$WATCHDOG_MS")
  fi
  if [[ -n $NUM_BUFFERS && $counted == false ]]; then
    line+=(! identity name=frame-limit "eos-after=$NUM_BUFFERS")
  fi
  line+=(! defectdetect name=detect "model=$MODEL")
  [[ -n $POLICY ]] && line+=("policy=$POLICY")
  mapfile -t extra < <(words DETECT_PROPS); line+=("${extra[@]}")
  line+=(! tee name=frames)

  # The verdict records: line-buffered, so `tail -f` sees every record as it is made.
  line+=(frames. ! queue ! defectmetaconvert name=records "source-id=$SOURCE_ID" ! tee name=recs)
  line+=(recs. ! queue ! filesink name=verdicts "location=$VERDICTS" buffer-mode=line)
  if [[ -n $MQTT_HOST ]]; then
    line+=(recs. ! queue ! defectmqttsink name=mqtt "host=$MQTT_HOST")
    [[ -n $MQTT_PORT ]] && line+=("port=$MQTT_PORT")
    [[ -n $MQTT_TOPIC ]] && line+=("topic=$MQTT_TOPIC")
    [[ -n $MQTT_QOS ]] && line+=("qos=$MQTT_QOS")
    mapfile -t extra < <(words MQTT_PROPS); line+=("${extra[@]}")
  fi

  # Verdicts to the machine: reject pulses to the PLC, the OPC UA server for SCADA.
  if [[ -n $MODBUS_HOST ]]; then
    line+=(frames. ! queue ! defectmodbussink name=plc "host=$MODBUS_HOST")
    [[ -n $MODBUS_PORT ]] && line+=("port=$MODBUS_PORT")
    mapfile -t extra < <(words MODBUS_PROPS); line+=("${extra[@]}")
  fi
  if [[ -n $OPCUA_PORT ]]; then
    line+=(frames. ! queue ! defectopcuasink name=opcua "port=$OPCUA_PORT" "source-id=$SOURCE_ID")
    [[ -n $OPCUA_HOST ]] && line+=("host=$OPCUA_HOST")
    mapfile -t extra < <(words OPCUA_PROPS); line+=("${extra[@]}")
  fi

  if [[ -n $RECORDING ]]; then
    line+=(frames. ! queue ! defectoverlay name=overlay)
    mapfile -t extra < <(words OVERLAY_PROPS); line+=("${extra[@]}")
    # I420: what every encoder takes, and what players expect of H.264 (not 4:4:4 from RGB).
    line+=(! videoconvert ! video/x-raw,format=I420)
    mapfile -t extra < <(words ENCODER); line+=(! "${extra[@]}")
    mapfile -t extra < <(words MUXER); line+=(! "${extra[@]}")
    line+=(! filesink name=recording "location=$RECORDING")
  fi

  if [[ -n $DRY_RUN ]]; then
    # One token a word, spaces inside a token escaped as gst-launch-1.0 does.
    local out=() t
    for t in "${line[@]}"; do out+=("${t// /\\ }"); done
    printf '%s\n' "${out[*]}"
    return 0
  fi
  mkdir -p "$(dirname "$VERDICTS")"
  [[ -n $RECORDING ]] && mkdir -p "$(dirname "$RECORDING")"
  if [[ -z ${GST_PLUGIN_PATH:-} ]]; then
    # The plugin as built in this checkout, unless the caller points elsewhere (or installed it).
    for dir in "$REPO_DIR/target/release" "$REPO_DIR/target/debug"; do
      if [[ -e $dir/libgstdefect.so ]]; then export GST_PLUGIN_PATH=$dir; break; fi
    done
  fi
  # SIGTERM, to the script or to every process of the service (systemd's default), stops the
  # pipeline as Ctrl-C does: gst-launch-1.0 ignores it, the script hands it on as SIGINT.
  (trap '' TERM; exec gst-launch-1.0 -e "${GST_LAUNCH_OPTIONS[@]}" "${line[@]}") &
  local pid=$! rc=0
  trap 'kill -INT "$pid" 2>/dev/null' TERM
  # Ctrl-C in a terminal reaches gst-launch-1.0 itself: the script only waits for it.
  trap ':' INT
  while :; do
    wait "$pid" && rc=0 || rc=$?
    kill -0 "$pid" 2>/dev/null || break
  done
  trap - TERM INT
  return "$rc"
}

# Options for gst-launch-1.0: the script's arguments.
GST_LAUNCH_OPTIONS=("$@")
