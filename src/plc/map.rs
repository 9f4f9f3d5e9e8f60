// SPDX-License-Identifier: MIT OR Apache-2.0
//! The Modbus address map of `defectmodbussink`'s status block: which holding register holds
//! what, and how values are encoded. Free of any I/O.
//!
//! Offsets from the `status-register` property (the block is written with function 16,
//! write multiple registers; the heartbeat alone with function 6 every second):
//!
//! | offset | content |
//! |---|---|
//! | 0 | heartbeat: +1 every second, wraps after 65535 |
//! | 1 | last verdict: 0 none yet, 1 PASS, 2 FAIL, 3 REVIEW, 4 UNKNOWN (not inspected) |
//! | 2 | flags: bit 0 shadow mode, bit 1 the last verdict asked for a reject (FAIL; UNKNOWN unless `reject-unknown` is off; REVIEW with `reject-review`; never in shadow mode) |
//! | 3..=6 | detections of the last verdict by severity: critical, major, minor, cosmetic |
//! | 7..=8 | PASS verdicts counted (u32, high word first) |
//! | 9..=10 | FAIL verdicts counted |
//! | 11..=12 | REVIEW verdicts counted |
//! | 13..=14 | reject pulses fired |
//! | 15..=16 | rejects missed (`missed-rejects`) |
//! | 17..=24 | model version, 16 ASCII characters, 2 per register, first in the high byte, zero-padded |
//! | 25..=26 | UNKNOWN verdicts counted (parts or frames the model did not judge) |

use super::verdict::{SeverityCounts, Verdict};

/// Registers in the status block.
pub const STATUS_REGISTERS: u16 = 27;
/// Offset of the heartbeat in the block.
pub const HEARTBEAT: u16 = 0;
/// Characters of the model version kept.
pub const MODEL_VERSION_CHARS: usize = 16;

/// What the status block shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    pub heartbeat: u16,
    pub last_verdict: Option<Verdict>,
    pub shadow: bool,
    pub reject_asked: bool,
    pub counts: SeverityCounts,
    pub pass: u64,
    pub fail: u64,
    pub review: u64,
    pub unknown: u64,
    pub fired: u64,
    pub missed: u64,
    pub model_version: String,
}

pub fn verdict_code(verdict: Option<Verdict>) -> u16 {
    match verdict {
        None => 0,
        Some(Verdict::Pass) => 1,
        Some(Verdict::Fail) => 2,
        Some(Verdict::Review) => 3,
        Some(Verdict::Unknown) => 4,
    }
}

/// A counter as two registers, high word first; saturates at u32::MAX.
fn u32_words(n: u64) -> [u16; 2] {
    let n = n.min(u32::MAX as u64) as u32;
    [(n >> 16) as u16, n as u16]
}

/// Up to 16 characters of ASCII, 2 a register, first in the high byte; other characters
/// become '?'.
pub fn ascii_words(text: &str) -> [u16; MODEL_VERSION_CHARS / 2] {
    let mut bytes = [0u8; MODEL_VERSION_CHARS];
    for (slot, c) in bytes.iter_mut().zip(text.chars()) {
        *slot = if c.is_ascii() && !c.is_ascii_control() {
            c as u8
        } else {
            b'?'
        };
    }
    std::array::from_fn(|i| u16::from_be_bytes([bytes[2 * i], bytes[2 * i + 1]]))
}

impl Status {
    /// The block's registers, offset 0 first.
    pub fn registers(&self) -> Vec<u16> {
        let mut regs = Vec::with_capacity(STATUS_REGISTERS as usize);
        regs.push(self.heartbeat);
        regs.push(verdict_code(self.last_verdict));
        regs.push(u16::from(self.shadow) | (u16::from(self.reject_asked) << 1));
        regs.extend(self.counts.map(|c| c.min(u16::MAX as u32) as u16));
        for n in [self.pass, self.fail, self.review, self.fired, self.missed] {
            regs.extend(u32_words(n));
        }
        regs.extend(ascii_words(&self.model_version));
        regs.extend(u32_words(self.unknown));
        debug_assert_eq!(regs.len(), STATUS_REGISTERS as usize);
        regs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_follows_the_documented_map() {
        let status = Status {
            heartbeat: 7,
            last_verdict: Some(Verdict::Fail),
            shadow: true,
            reject_asked: false,
            counts: [1, 2, 3, 70_000],
            pass: 5,
            fail: 0x1_0002,
            review: 9,
            unknown: 0x2_0003,
            fired: 4,
            missed: 1,
            model_version: "1.0.0".into(),
        };
        let r = status.registers();
        assert_eq!(r.len(), STATUS_REGISTERS as usize);
        assert_eq!(&r[..7], &[7, 2, 0b01, 1, 2, 3, 65535]);
        assert_eq!(&r[7..17], &[0, 5, 1, 2, 0, 9, 0, 4, 0, 1]);
        assert_eq!(r[17], u16::from_be_bytes(*b"1."));
        assert_eq!(r[19], u16::from_be_bytes([b'0', 0]));
        assert_eq!(&r[20..25], &[0; 5]);
        assert_eq!(&r[25..], &[2, 3]);
        assert_eq!(verdict_code(Some(Verdict::Unknown)), 4);
    }

    #[test]
    fn ascii_is_cut_and_cleaned() {
        let w = ascii_words("é-abcdefghijklmnopq");
        assert_eq!(w[0], u16::from_be_bytes(*b"?-"));
        assert_eq!(w[7], u16::from_be_bytes(*b"mn"));
        assert_eq!(u32_words(u64::MAX), [65535, 65535]);
    }
}
