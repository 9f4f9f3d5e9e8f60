// SPDX-License-Identifier: MIT OR Apache-2.0
/**
 * SECTION:element-defectmodbussink
 * @see_also: defectdetect, defectopcuasink
 *
 * `defectmodbussink` takes `defectdetect`'s output (video buffers with `DefectVerdictMeta`,
 * and the `defect-part-verdict` events of finished parts) and drives a reject gate over
 * Modbus TCP: on a FAIL, an UNKNOWN (a part or frame the model did not judge: never let
 * through as a PASS; `reject-unknown=false` turns that off) and, with `reject-review`, a
 * REVIEW, it writes the coil
 * `reject-coil` on, and off again `pulse-ms` later, when the part reaches the gate:
 * `reject-delay-ms` after the element saw the part's last frame (or the frame, with
 * `unit=frame`), or, for belts whose speed varies, when the encoder count in holding register
 * `encoder-register` has advanced `reject-delay-counts` since then. Verdicts made in shadow
 * mode never pulse the coil. A block of holding registers from `status-register` on shows the
 * last verdict, the counts, a heartbeat incremented every second and the model version.
 *
 * | holding register | content |
 * |---|---|
 * | `status-register` + 0 | heartbeat: +1 every second, wraps after 65535 |
 * | + 1 | last verdict: 0 none yet, 1 PASS, 2 FAIL, 3 REVIEW, 4 UNKNOWN |
 * | + 2 | flags: bit 0 shadow mode, bit 1 the last verdict asked for a reject |
 * | + 3 ... + 6 | detections of the last verdict: critical, major, minor, cosmetic |
 * | + 7, + 8 | PASS verdicts (32 bits, high word first) |
 * | + 9, + 10 | FAIL verdicts |
 * | + 11, + 12 | REVIEW verdicts |
 * | + 13, + 14 | reject pulses fired |
 * | + 15, + 16 | rejects missed |
 * | + 17 ... + 24 | model version: 16 ASCII characters, 2 a register, first in the high byte |
 * | + 25, + 26 | UNKNOWN verdicts (parts or frames not inspected) |
 *
 * The stream never waits for the PLC: a worker thread owns the connection and fires the
 * pulses on its own timer. A PLC that is away at start, or goes away, is not an error: the
 * element posts one warning naming `host:port` per outage and reconnects with backoff
 * (100 ms doubling up to `max-backoff-ms`). A reject that cannot leave within
 * `max-pulse-lateness-ms` of its due time (not connected, the verdict came too late, the PLC
 * refused the write) is never fired late: it is counted in `missed-rejects`, logged, and
 * posted as a `defect-reject-missed` element message (fields `label`, `reason`). Each pulse
 * fired is posted as a `defect-reject` message (fields `label`, `late-us`: microseconds
 * between its due time and its write). At end of stream the element waits (at most
 * `drain-timeout-ms`) for queued rejects before it lets EOS through. On a busy machine,
 * `realtime-priority` runs the thread that fires the pulses under `SCHED_FIFO` (the process
 * needs `CAP_SYS_NICE` or an rtprio limit; refused, it is a warning).
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 -e filesrc location=tests/data/conveyor_color.mp4 ! decodebin ! videoconvert ! \
 *     defectdetect model=models/surface-defects.onnx policy=pipelines/policy.toml frames-per-part=50 ! \
 *     defectmodbussink host=192.0.2.10 port=502 unit-id=1 reject-coil=0 pulse-ms=100 reject-delay-ms=1500
 * ]|
 *
 * Since: plugins-defect-0.1.0
 */
use gst::glib;

mod imp;

crate::element::wrapper!(DefectModbusSink, gst_base::BaseSink);

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    crate::element::register::<DefectModbusSink>(plugin, "defectmodbussink")
}
