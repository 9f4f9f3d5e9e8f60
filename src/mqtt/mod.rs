// SPDX-License-Identifier: MIT OR Apache-2.0
//! MQTT 3.1.1 over plain TCP, free of GStreamer: the packet codec ([`codec`]), a small
//! blocking client ([`client`]) and the publisher worker behind `defectmqttsink`
//! ([`publisher`]): a background thread fed through a bounded queue, with reconnection and
//! QoS 1 re-sending; and the topic templates filled from each record ([`topic`]).

pub mod client;
pub mod codec;
pub mod publisher;
pub mod topic;

pub use client::{Client, MqttError};
pub use codec::{Connect, Packet, Publish, QoS};
pub use publisher::{Event, Publisher, PublisherConfig, Stats};
pub use topic::TopicTemplate;
