// SPDX-License-Identifier: MIT OR Apache-2.0
/**
 * SECTION:element-defectmqttsink
 * @see_also: defectmetaconvert
 *
 * `defectmqttsink` publishes the verdict records that `defectmetaconvert` writes
 * (`application/x-ndjson`: each buffer holds one or more `\n`-terminated JSON records) to an
 * MQTT 3.1.1 broker, one MQTT message a record, over TCP or TLS.
 *
 * The topic is a template: `{source_id}` is replaced by the record's `source_id` field and
 * `{type}` by its `type` field (`frame` or `part`); a missing field gives `unknown`. The
 * default is `defect/{source_id}/verdicts`. In those values the characters brokers refuse
 * are percent-escaped (control characters such as TAB or U+0085, noncharacters such as
 * U+FFFF, `+`, `#`, and also `/` and `%`: `line\t1` gives `line%091`), and a value longer
 * than 1024 bytes once escaped is cut and ends with `~` and a hash, so every topic is one
 * brokers accept; each distinct value that needed escaping is reported once in a warning.
 *
 * The element never blocks the streaming thread on the network: records go into a queue of
 * at most `max-queue` records and `max-queue-bytes` bytes that a background task publishes
 * (on the plugin's shared network runtime: the element starts no thread of its own). When the queue is full the oldest record not yet sent is dropped and counted
 * (`dropped`; a record already written to the broker is never dropped for room). A broker
 * that is down at start, or
 * goes away, is not an error: the element posts a warning naming `host:port` once per
 * outage, keeps queueing and reconnects with exponential backoff (100 ms doubling up to
 * `max-backoff-ms`).
 *
 * With `qos=1` a record leaves the queue only when the broker acknowledges it (PUBACK);
 * after a reconnection the unacknowledged records are sent again, in order and with the DUP
 * flag, before any newer one, so that subscribers receive every record, in order (a record
 * appears twice only when its acknowledgement was lost with the connection). With `qos=0`
 * a record leaves the queue once written to the socket.
 *
 * A record the broker refuses by closing the connection (mosquitto: a packet over its
 * `max_packet_size`) is dropped after three tries, each sent alone, and counted in
 * `rejected` and `dropped`, with a warning naming its topic. When a PUBACK or PINGRESP is
 * awaited and nothing comes from the broker for `keepalive` seconds (a broker that stopped
 * reading), the connection is given up with a warning and retried.
 *
 * TLS (rustls) is on with `tls=true` or when `ca-file`, `cert-file` or `key-file` is set:
 * the broker's certificate must chain to `ca-file` (the system's store without it) and name
 * `host`; `cert-file` and `key-file` give a client certificate. `username` and `password`
 * go in CONNECT.
 *
 * When the element stops (PAUSED to READY) it flushes the queue for at most
 * `flush-timeout-ms`, then disconnects; records never sent are counted as dropped, records
 * sent and not acknowledged as `unconfirmed`.
 *
 * The session is clean and the client id is `gst-defect-<pid>` unless `client-id` says
 * otherwise: give each `defectmqttsink` talking to the same broker its own client id, as a
 * broker disconnects the older of two clients with the same id. `sync` is off by default,
 * as for `filesink`.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 -e filesrc location=tests/data/conveyor_color.mp4 ! decodebin ! videoconvert ! \
 *     defectdetect model=models/surface-defects.onnx ! defectmetaconvert source-id=line-1 ! \
 *     defectmqttsink host=127.0.0.1 port=1883 qos=1 topic='defect/{source_id}/{type}'
 * ]|
 * and, to watch the records: `mosquitto_sub -h 127.0.0.1 -t 'defect/#' -q 1`.
 *
 * ## Properties
 *
 * | property | default | meaning |
 * |---|---|---|
 * | `host` | 127.0.0.1 | broker host name or address |
 * | `port` | 1883 | broker TCP port (1 to 65535) |
 * | `client-id` | `gst-defect-<pid>` | MQTT client identifier |
 * | `topic` | `defect/{source_id}/verdicts` | topic template (`{source_id}`, `{type}`) |
 * | `qos` | 1 | 0 (at most once) or 1 (at least once) |
 * | `keepalive` | 30 | keep-alive interval in seconds (0 = off) |
 * | `max-queue` | 1000 | records queued at most; the oldest unsent is dropped beyond |
 * | `max-queue-bytes` | 67108864 | bytes (topics and payloads) queued at most |
 * | `max-backoff-ms` | 5000 | longest wait between reconnection attempts |
 * | `flush-timeout-ms` | 2000 | longest wait for the queue to drain at stop |
 * | `tls` | false | connect over TLS (also on when a file below is set) |
 * | `ca-file` | none | PEM CA certificates for the broker's certificate |
 * | `cert-file`, `key-file` | none | PEM client certificate and its key |
 * | `username`, `password` | none | credentials sent in CONNECT (`password` write-only) |
 * | `dropped` | (read-only) | records no broker received (queue full, never sent at stop, refused) |
 * | `published` | (read-only) | records delivered: acknowledged (QoS 1) or written (QoS 0) |
 * | `rejected` | (read-only) | records dropped because the broker closed the connection on them |
 * | `unconfirmed` | (read-only) | QoS 1 records sent, not acknowledged at stop |
 *
 * Since: plugins-defect-0.1.0
 */
use gst::glib;

mod imp;

crate::element::wrapper!(DefectMqttSink, gst_base::BaseSink);

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    crate::element::register::<DefectMqttSink>(plugin, "defectmqttsink")
}
