// SPDX-License-Identifier: MIT OR Apache-2.0
/**
 * SECTION:element-defectopcuasink
 * @see_also: defectdetect, defectmodbussink
 *
 * `defectopcuasink` takes `defectdetect`'s output (video buffers with `DefectVerdictMeta`,
 * and the `defect-part-verdict` events of finished parts) and serves it to SCADA/MES as an
 * OPC UA server (`async-opcua`), with a small address space under the Objects folder:
 *
 * | node (`ns=<urn:gst-plugin-defect:inspection>;s=Inspection/<source-id>/...`) | type | content |
 * |---|---|---|
 * | `LastVerdict` | String | PASS, FAIL, REVIEW or UNKNOWN (not inspected) of the last part (or frame, `unit=frame`); empty before the first |
 * | `LastPartId` | String | its part id (empty for a frame without part) |
 * | `LastDefects` | String[] | class labels of the detections that decided it |
 * | `PassCount`, `FailCount`, `ReviewCount`, `UnknownCount` | UInt64 | verdicts counted since start |
 * | `FrameCount` | UInt64 | frames with a verdict since start |
 * | `FrameVerdict` | String | the verdict of the last frame |
 * | `ModelVersion` | String | the model's id: file stem, version, SHA-256 prefix |
 * | `Heartbeat` | UInt32 | +1 every second |
 * | `ShadowMode` | Boolean | whether the verdicts are made in shadow mode |
 *
 * Values change per frame and per part; clients subscribe to them (the server samples at
 * 100 ms at the fastest). The stream never waits for the server: the streaming thread only
 * hands new values over to the server's thread.
 *
 * Security: `security-mode=none` (the default; for tests and closed networks) offers one
 * endpoint without signing or encryption; `sign` and `sign-and-encrypt` offer one
 * Basic256Sha256 endpoint instead, with the server's certificate and private key from
 * `pki-dir` (`own/cert.der`, `private/private.pem`; a self-signed pair is made there when
 * missing and `create-certificate` is set). Client certificates are accepted when they are in
 * `pki-dir/trusted/` (or any, with `trust-client-certificates`); rejected ones are copied to
 * `pki-dir/rejected/` for an operator to move. Sessions are anonymous and read-only.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 -e filesrc location=tests/data/conveyor_color.mp4 ! decodebin ! videoconvert ! \
 *     defectdetect model=models/surface-defects.onnx policy=pipelines/policy.toml frames-per-part=50 ! \
 *     defectopcuasink host=0.0.0.0 port=4840 source-id=line-1
 * ]|
 * then browse `opc.tcp://<host>:4840/` with any OPC UA client.
 *
 * Since: plugins-defect-0.1.0
 */
use gst::glib;
use gst::prelude::*;

mod imp;

crate::element::wrapper!(DefectOpcUaSink, gst_base::BaseSink);

crate::element::enumeration! {
    /// How OPC UA clients must secure the channel (the `security-mode` property).
    pub enum SecurityMode("GstDefectOpcUaSecurityMode") {
        None, "none", "None: no signing, no encryption";
        Sign, "sign", "Sign: Basic256Sha256, signed";
        SignAndEncrypt, "sign-and-encrypt", "SignAndEncrypt: Basic256Sha256, signed and encrypted";
    }
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    crate::element::mark_plugin_api(&[SecurityMode::static_type()]);
    crate::element::register::<DefectOpcUaSink>(plugin, "defectopcuasink")
}
