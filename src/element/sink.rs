// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the plugin's sinks (`defectmqttsink`, `defectmodbussink`, `defectopcuasink`) share:
//! their setup, the check of their `port` property and the callback through which their
//! worker threads report to the element.

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;

/// A sink's setup in `constructed`: verdicts go out as they come, never waiting for the
/// clock; a sink that only reads the metas of video frames (`metas_only`) keeps no frame
/// alive as its last sample.
pub fn configure(sink: &impl IsA<gst_base::BaseSink>, metas_only: bool) {
    sink.set_sync(false);
    if metas_only {
        sink.set_enable_last_sample(false);
    }
}

/// A sink's `ObjectImpl::constructed`: the parent's, then [`configure`].
macro_rules! constructed {
    ($metas_only:expr) => {
        fn constructed(&self) {
            self.parent_constructed();
            $crate::element::sink::configure(&*self.obj(), $metas_only);
        }
    };
}
pub(crate) use constructed;

/// A `port` property's value as a TCP port, or the error `start` fails with.
pub fn port(port: u32) -> Result<u16, gst::ErrorMessage> {
    u16::try_from(port)
        .map_err(|_| gst::error_msg!(gst::LibraryError::Settings, ["Invalid port {}", port]))
}

/// The callback a sink's worker thread reports its events through: each goes to `handle`
/// with the peer's address (`target`) while the element exists. The callback holds only a
/// weak reference, so that the worker never keeps the element alive.
pub fn worker_events<T, E: 'static>(
    imp: &T,
    target: String,
    handle: fn(&T, &str, E),
) -> impl Fn(E) + Send + Sync + 'static
where
    T: ObjectSubclass,
    T::Type: Send + Sync,
{
    let weak: glib::WeakRef<T::Type> = imp.obj().downgrade();
    move |event| {
        if let Some(obj) = weak.upgrade() {
            handle(T::from_obj(&obj), &target, event);
        }
    }
}

/// Starts a sink's worker thread (`start` gets the callback of [`worker_events`]); a thread
/// that cannot start is the error `start` fails with, naming the worker (`what`).
pub fn start_worker<T, E: 'static, W>(
    imp: &T,
    target: String,
    handle: fn(&T, &str, E),
    what: &str,
    start: impl FnOnce(Box<dyn Fn(E) + Send + Sync>) -> std::io::Result<W>,
) -> Result<W, gst::ErrorMessage>
where
    T: ObjectSubclass,
    T::Type: Send + Sync,
{
    start(Box::new(worker_events(imp, target, handle))).map_err(|e| {
        gst::error_msg!(
            gst::ResourceError::Failed,
            ["Cannot start the {} thread: {}", what, e]
        )
    })
}
