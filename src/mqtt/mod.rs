// SPDX-License-Identifier: MIT OR Apache-2.0
//! MQTT 3.1.1 publishing over TCP or TLS, free of GStreamer: the packets a publisher sends
//! and receives ([`codec`]), a tokio connection split in a reading and a writing half
//! ([`client`], TLS settings in [`tls`]) and the publisher worker behind `defectmqttsink`
//! ([`publisher`]): a task on the plugin's shared network runtime fed through a bounded
//! queue, with reconnection and QoS 1 re-sending; and the topic templates filled from each
//! record ([`topic`]).

pub mod client;
pub mod codec;
pub mod publisher;
pub mod tls;
pub mod topic;

pub use client::{ConnectOptions, MqttError};
pub use codec::{Connect, Incoming, QoS};
pub use publisher::{Event, Publisher, PublisherConfig, Stats};
pub use topic::TopicTemplate;
