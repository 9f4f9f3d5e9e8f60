// SPDX-License-Identifier: MIT OR Apache-2.0
//! An application that writes the contract's metas without registering the plugin, from
//! several threads at once, keeps every meta it attaches. This binary never registers the
//! plugin: the metas must register themselves, once, however many threads race to do it.

use gstdefect::meta::prelude::*;
use gstdefect::meta::{AnomalyMapMeta, ModelRef, Verdict, VerdictMeta};

fn verdict(frame: u64) -> VerdictMeta {
    VerdictMeta {
        task: String::new(),
        anomaly_score: None,
        verdict: Verdict::Fail,
        shadow: false,
        part_id: None,
        frame,
        inspected: true,
        carried: false,
        skipped_frames: 0,
        source_frame: None,
        counts: [1, 0, 0, 0],
        model: ModelRef::default(),
        policy_sha256: None,
        inference_ms: 1.0,
        total_ms: 2.0,
        reasons: Vec::new(),
        capture_dropped: None,
    }
}

#[test]
fn metas_attached_before_the_plugin_is_registered_are_kept_from_every_thread() {
    gst::init().unwrap();
    let threads: Vec<_> = (0..8u64)
        .map(|frame| {
            std::thread::spawn(move || {
                let mut buffer = gst::Buffer::new();
                let b = buffer.get_mut().unwrap();
                verdict(frame).attach(b);
                AnomalyMapMeta::new(2, 1, &[0.1, 0.9], [0.0, 0.0, 1.0, 1.0], 0.5).attach(b);
                buffer
            })
        })
        .collect();
    for (frame, thread) in threads.into_iter().enumerate() {
        let buffer = thread.join().unwrap();
        let meta = VerdictMeta::from_buffer(&buffer)
            .expect("the verdict meta was dropped")
            .unwrap();
        assert_eq!(meta.frame, frame as u64);
        let map = AnomalyMapMeta::from_buffer(&buffer)
            .expect("the anomaly map was dropped")
            .unwrap();
        assert_eq!(map.scores, vec![0.1, 0.9]);
    }
}
