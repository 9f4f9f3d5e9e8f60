// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the plugin's network elements share: one tokio runtime for every sink that talks to a
//! peer (PLC, OPC UA clients, MQTT broker, Prometheus scrapers), as gst-plugins-rs's network
//! elements do. No GStreamer in here.
//!
//! Streaming threads never wait on this runtime: elements hand it work (`spawn`) and read the
//! results through channels or atomics.

use std::sync::LazyLock;

mod guarded;
pub mod reconnect;

pub use guarded::Guarded;
pub use reconnect::{Reconnect, Retry, STABLE_CONNECTION};

/// Worker threads of the shared runtime: network I/O only, never inference.
pub const RUNTIME_WORKERS: usize = 2;

/// The process-wide runtime of the plugin's network elements, started on first use.
pub static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(RUNTIME_WORKERS)
        .thread_name("defect-net")
        .build()
        .expect("start the network runtime")
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_runs_spawned_work() {
        let handle = RUNTIME.spawn(async { 6 * 7 });
        assert_eq!(RUNTIME.block_on(handle).unwrap(), 42);
    }
}
