// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the plugin's sinks (`defectmqttsink`, `defectmodbussink`, `defectopcuasink`) share:
//! their setup, the check of their `port` property and the callback through which their
//! worker threads report to the element.

use std::sync::{Mutex, MutexGuard};

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

/// How a sink's worker lost its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// A connection attempt failed.
    Failed,
    /// An established connection was lost.
    Lost,
}

/// The peer a sink's worker connects to, as its connection warnings name it.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// What the peer is ("MQTT broker").
    pub name: &'static str,
    /// What the sink does while it cannot reach the peer (the warnings' detail).
    pub meanwhile: &'static str,
}

impl Peer {
    /// The warning that the worker cannot reach the peer at `target`.
    pub fn warn<T>(&self, imp: &T, target: &str, connection: Connection, reason: &str)
    where
        T: ObjectSubclass<Type: IsA<gst::Element>>,
    {
        let element = imp.obj();
        let element: &gst::Element = element.upcast_ref();
        let (peer, meanwhile) = (self.name, self.meanwhile);
        match connection {
            Connection::Failed => gst::element_warning!(
                element,
                gst::ResourceError::OpenWrite,
                ("Cannot connect to the {peer} at {target}: {reason}"),
                ["{meanwhile}"]
            ),
            Connection::Lost => gst::element_warning!(
                element,
                gst::ResourceError::Write,
                ("Lost the connection to the {peer} at {target}: {reason}"),
                ["{meanwhile}"]
            ),
        }
    }
}

/// A sink's state between start and stop (`R`) and the counters (`C`) its properties report:
/// the running worker's, or the last run's once stopped.
pub struct Run<R, C> {
    running: Mutex<Option<R>>,
    last: Mutex<C>,
}

impl<R, C: Default> Default for Run<R, C> {
    fn default() -> Self {
        Self {
            running: Mutex::new(None),
            last: Mutex::new(C::default()),
        }
    }
}

impl<R, C: Copy + Default> Run<R, C> {
    /// The state while running (None when stopped).
    pub fn state(&self) -> &Mutex<Option<R>> {
        &self.running
    }

    pub fn lock(&self) -> MutexGuard<'_, Option<R>> {
        super::lock(&self.running)
    }

    /// Starts a run; its counters start from zero.
    pub fn start(&self, running: R) {
        *super::lock(&self.last) = C::default();
        *self.lock() = Some(running);
    }

    /// Ends the run, if any: `finish` stops its worker, not under the lock (the properties
    /// stay readable meanwhile), and gives the run's last counters and what `stop` returns.
    pub fn stop<T>(&self, finish: impl FnOnce(R) -> (C, T)) -> Option<T> {
        let running = self.lock().take()?;
        let (counters, out) = finish(running);
        *super::lock(&self.last) = counters;
        Some(out)
    }

    /// The counters: the running worker's (`live`), else the last run's.
    pub fn counters(&self, live: impl FnOnce(&R) -> C) -> C {
        match self.lock().as_ref() {
            Some(running) => live(running),
            None => *super::lock(&self.last),
        }
    }
}
