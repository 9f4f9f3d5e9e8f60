// SPDX-License-Identifier: MIT OR Apache-2.0
//! An application that writes the contract's metas without registering the plugin, from
//! several threads at once, keeps every meta it attaches. This binary never registers the
//! plugin (it uses no helper of `common` that does): the metas must register themselves,
//! once, however many threads race to do it.

mod common;

use gstdefect::meta::prelude::*;
use gstdefect::meta::{AnomalyMapMeta, Verdict, VerdictMeta};

#[test]
fn metas_attached_before_the_plugin_is_registered_are_kept_from_every_thread() {
    gst::init().unwrap();
    let threads: Vec<_> = (0..8u64)
        .map(|frame| {
            std::thread::spawn(move || {
                let mut buffer = gst::Buffer::new();
                let b = buffer.get_mut().unwrap();
                common::verdict_meta(Verdict::Fail, frame).attach(b);
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
        assert_eq!((meta.frame, meta.verdict), (frame as u64, Verdict::Fail));
        let map = AnomalyMapMeta::from_buffer(&buffer)
            .expect("the anomaly map was dropped")
            .unwrap();
        assert_eq!(map.scores, vec![0.1, 0.9]);
    }
}
