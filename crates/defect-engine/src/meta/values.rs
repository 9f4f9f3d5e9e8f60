// SPDX-License-Identifier: MIT OR Apache-2.0
//! The enumerated values of the contract: severities, verdicts and the policy's decisions,
//! with the strings the metas, messages, records and policy files spell them with.

use std::fmt;

/// How bad a defect is; the order is from worst to mildest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Critical,
    Major,
    Minor,
    Cosmetic,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Critical,
        Severity::Major,
        Severity::Minor,
        Severity::Cosmetic,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Major => "major",
            Severity::Minor => "minor",
            Severity::Cosmetic => "cosmetic",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Its place in [`SeverityCounts`](crate::policy::SeverityCounts).
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A frame's or a part's verdict; the order is from best to worst, so that the worst of a
/// part's frames is its verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Verdict {
    #[default]
    Pass,
    /// Not inspected: the model has given no result for the frame (asynchronous inference
    /// that has not caught up), or for some frames of the part. Never a PASS; a FAIL or a
    /// REVIEW seen on the inspected frames still wins.
    Unknown,
    Review,
    Fail,
}

impl Verdict {
    pub const ALL: [Verdict; 4] = [
        Verdict::Pass,
        Verdict::Unknown,
        Verdict::Review,
        Verdict::Fail,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Unknown => "UNKNOWN",
            Verdict::Review => "REVIEW",
            Verdict::Fail => "FAIL",
        }
    }

    /// The verdict a string names (`PASS`, `UNKNOWN`, `REVIEW`, `FAIL`).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == text)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the policy decided about one detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Fails the part.
    Fail,
    /// A person must look.
    Review,
    /// Counted but acceptable: a non-failing severity, or below the class's threshold.
    Accept,
    OutsideRegion,
    Masked,
    TooSmall,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Fail => "fail",
            Decision::Review => "review",
            Decision::Accept => "accept",
            Decision::OutsideRegion => "outside-region",
            Decision::Masked => "masked",
            Decision::TooSmall => "too-small",
        }
    }

    pub const ALL: [Decision; 6] = [
        Decision::Fail,
        Decision::Review,
        Decision::Accept,
        Decision::OutsideRegion,
        Decision::Masked,
        Decision::TooSmall,
    ];

    /// The decision a string names (`fail`, `review`, `accept`, `outside-region`, `masked`,
    /// `too-small`).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == text)
    }

    /// Whether the policy counted the detection: it was inside the region, not masked and
    /// large enough.
    pub fn counted(self) -> bool {
        !matches!(
            self,
            Decision::OutsideRegion | Decision::Masked | Decision::TooSmall
        )
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
