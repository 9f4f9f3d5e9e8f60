// SPDX-License-Identifier: MIT OR Apache-2.0
//! Embedding the elements in a Rust application: build a pipeline, read the ROI metas and the
//! verdict meta from each buffer at an appsink, and the verdict messages from the bus, through
//! the contract's types (`gstdefect::meta`).
//!
//! ```sh
//! cargo run --example embed -- models/test/squares_v8.onnx [VIDEO]
//! ```
//! Without a video it runs on `videotestsrc`. The plugin is registered statically here; an
//! application using the installed plugin would skip that call.

use gst::prelude::*;
use gstdefect::meta::prelude::*;
use gstdefect::meta::{DetectionParams, PartVerdictMeta, Verdict, VerdictMeta};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model = args.next().ok_or("usage: embed MODEL.onnx [VIDEO]")?;
    let source = match args.next() {
        Some(video) => format!("filesrc location=\"{video}\" ! decodebin ! videoconvert"),
        None => "videotestsrc num-buffers=30 pattern=ball ! video/x-raw,width=640,height=480"
            .to_string(),
    };
    gst::init()?;
    gstdefect::plugin_register_static()?;

    let pipeline = gst::parse::launch(&format!(
        "{source} ! defectdetect model=\"{model}\" frames-per-part=10 ! appsink name=sink sync=false"
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "not a pipeline")?;
    let sink = pipeline
        .by_name("sink")
        .ok_or("no sink")?
        .downcast::<gst_app::AppSink>()
        .map_err(|_| "not an appsink")?;
    pipeline.set_state(gst::State::Playing)?;

    let (mut frames, mut rois, mut fails) = (0u64, 0usize, 0u64);
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(30)) {
        let buffer = sample.buffer().ok_or("sample without buffer")?;
        frames += 1;
        for roi in buffer.iter_meta::<gst_video::VideoRegionOfInterestMeta>() {
            rois += 1;
            // The contract's types read the metas; a malformed one is an error naming the field.
            let confidence = DetectionParams::of_roi(&roi)
                .transpose()?
                .map_or(0.0, |d| d.confidence);
            println!(
                "frame {frames}: {} at {:?} confidence {confidence:.3}",
                roi.roi_type(),
                roi.rect()
            );
        }
        if let Some(meta) = VerdictMeta::from_buffer(buffer).transpose()? {
            fails += (meta.verdict == Verdict::Fail) as u64;
        }
    }

    // Bus messages: one defect-verdict per frame, one defect-part-verdict per part.
    let bus = pipeline.bus().ok_or("no bus")?;
    let (mut verdict_messages, mut parts) = (0u64, Vec::new());
    while let Some(message) = bus.pop() {
        match message.view() {
            gst::MessageView::Element(e) => {
                let Some(s) = e.structure() else { continue };
                if let Some(part) = PartVerdictMeta::from_structure(s).transpose()? {
                    parts.push(format!("{}={}", part.part_id, part.verdict));
                } else if s.name() == gstdefect::meta::fields::VERDICT_MESSAGE {
                    verdict_messages += 1;
                }
            }
            gst::MessageView::Error(e) => {
                return Err(format!(
                    "{}: {}",
                    e.src().map(|s| s.path_string()).unwrap_or_default(),
                    e.error()
                )
                .into());
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null)?;
    println!(
        "frames {frames} rois {rois} fail-frames {fails} verdict-messages {verdict_messages} parts [{}]",
        parts.join(", ")
    );
    Ok(())
}
