// SPDX-License-Identifier: MIT OR Apache-2.0
//! The capture directory: files named so that they can be told apart from anything else in
//! the directory, created exclusively (never overwriting), removed again when a write fails,
//! and bounded in count and size by removing the oldest captures of this element first.
//!
//! # Names
//!
//! Every file is `<run>_<frame>_<VERDICT>[-<n>].<ext>`:
//!
//! * `<run>` identifies one run (start to stop) of one element: the UTC time it started
//!   with milliseconds, the process id and a counter of runs within the process, e.g.
//!   `20261122T184005123Z-4242-1`. No two runs share it, so a second run never writes the
//!   names of the first.
//! * `<frame>` is the frame number of `DefectVerdictMeta`, at least 8 digits.
//! * `<VERDICT>` is the verdict in capitals and digits (anything else is left out).
//! * `-<n>` (2, 3, ...) only when the name without it exists already (a frame number seen
//!   twice in a run).
//! * `<ext>` is `png`, `jpg` (the image) or `txt` (the YOLO labels).
//!
//! [`BoundedDir::open`] adopts the files whose names parse as [`CaptureName`] (regular files,
//! not links) as earlier captures, oldest run first; every other file in the directory is
//! left alone, whatever the bounds.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// The extensions of capture files.
const EXTENSIONS: [&str; 3] = ["png", "jpg", "txt"];

/// How many `-<n>` suffixes are tried before a capture is given up.
const MAX_DUPLICATES: u32 = 1000;

/// A run id for a run starting now: `YYYYMMDDTHHMMSSmmmZ-<pid>-<n>`.
pub fn new_run_id() -> String {
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    run_id(
        now,
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed) + 1,
    )
}

/// The run id of a run started `since_epoch` by process `pid`, its `n`th in the process.
pub fn run_id(since_epoch: std::time::Duration, pid: u32, n: u32) -> String {
    // 2026-11-22T18:40:05.123Z -> 20261122T184005123Z
    let stamp: String = crate::records::utc_timestamp(since_epoch)
        .chars()
        .filter(|c| !matches!(c, '-' | ':' | '.'))
        .collect();
    format!("{stamp}-{pid}-{n}")
}

/// A verdict as it appears in a name: capitals and digits only, `UNKNOWN` when none is left.
pub fn verdict_for_name(verdict: &str) -> String {
    let kept: String = verdict
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .take(32)
        .collect();
    if kept.is_empty() {
        "UNKNOWN".to_owned()
    } else {
        kept
    }
}

/// A file name this module writes, parsed. Ordered as the captures were made: by run (its
/// time first), then frame, then duplicate number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CaptureName {
    /// `YYYYMMDDTHHMMSSmmmZ`.
    pub started: String,
    pub pid: u32,
    /// The run's number within its process.
    pub run: u32,
    pub frame: u64,
    pub duplicate: u32,
    pub verdict: String,
    pub extension: String,
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

impl CaptureName {
    /// Parses a file name; `None` for any name this module does not write.
    pub fn parse(name: &str) -> Option<CaptureName> {
        let (stem, extension) = name.rsplit_once('.')?;
        if !EXTENSIONS.contains(&extension) {
            return None;
        }
        let mut parts = stem.split('_');
        let (run, frame, verdict) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let mut run_parts = run.split('-');
        let (started, pid, number) = (run_parts.next()?, run_parts.next()?, run_parts.next()?);
        if run_parts.next().is_some() {
            return None;
        }
        let stamp = started.as_bytes();
        let stamp_ok = stamp.len() == 19
            && stamp[8] == b'T'
            && stamp[18] == b'Z'
            && all_digits(&started[..8])
            && all_digits(&started[9..18]);
        if !stamp_ok || !all_digits(pid) || !all_digits(number) {
            return None;
        }
        if frame.len() < 8 || !all_digits(frame) {
            return None;
        }
        let (verdict, duplicate) = match verdict.split_once('-') {
            Some((v, n)) if all_digits(n) && !n.starts_with('0') => (v, n.parse().ok()?),
            Some(_) => return None,
            None => (verdict, 0),
        };
        if verdict.is_empty()
            || !verdict
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            return None;
        }
        Some(CaptureName {
            started: started.to_owned(),
            pid: pid.parse().ok()?,
            run: number.parse().ok()?,
            frame: frame.parse().ok()?,
            duplicate,
            verdict: verdict.to_owned(),
            extension: extension.to_owned(),
        })
    }

    /// The name without its extension (shared by a capture's image and labels).
    pub fn stem(&self) -> String {
        let duplicate = if self.duplicate > 0 {
            format!("-{}", self.duplicate)
        } else {
            String::new()
        };
        format!(
            "{}-{}-{}_{:08}_{}{duplicate}",
            self.started, self.pid, self.run, self.frame, self.verdict
        )
    }

    /// The whole file name.
    pub fn file_name(&self) -> String {
        format!("{}.{}", self.stem(), self.extension)
    }

    /// The capture this file belongs to (its name without the extension).
    fn capture_key(&self) -> CaptureName {
        CaptureName {
            extension: String::new(),
            ..self.clone()
        }
    }
}

/// One capture: its files and their total size.
#[derive(Debug)]
struct Capture {
    paths: Vec<PathBuf>,
    bytes: u64,
}

/// A capture directory kept under a size and a count of captures by deleting the oldest
/// captures first: those of earlier runs it adopted at [`BoundedDir::open`], then its own.
#[derive(Debug)]
pub struct BoundedDir {
    dir: PathBuf,
    run: String,
    max_bytes: u64,
    max_captures: usize,
    /// Oldest first.
    captures: VecDeque<Capture>,
    bytes: u64,
    /// Tests: bytes that can still be written before writes fail as on a full disk.
    #[cfg(test)]
    space: Option<u64>,
}

impl BoundedDir {
    /// Opens (creating) the directory for run `run` (see [`new_run_id`]), checks that it is
    /// writable and adopts the captures of earlier runs, oldest first; trims them to the
    /// bounds. Files whose names this module does not write are never adopted.
    pub fn open(
        dir: &Path,
        run: &str,
        max_bytes: u64,
        max_captures: usize,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        // A name of this run (not one of the capture extensions): nobody else's file.
        let probe = dir.join(format!(".{run}.probe"));
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)?;
        std::fs::remove_file(&probe)?;
        let mut existing: Vec<(CaptureName, PathBuf, u64)> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                // `file_type` does not follow links: a link is never adopted.
                if !e.file_type().ok()?.is_file() {
                    return None;
                }
                let name = CaptureName::parse(e.file_name().to_str()?)?;
                let size = e.metadata().ok()?.len();
                Some((name, e.path(), size))
            })
            .collect();
        existing.sort();
        let mut bounded = Self {
            dir: dir.to_path_buf(),
            run: run.to_owned(),
            max_bytes,
            max_captures,
            captures: VecDeque::new(),
            bytes: 0,
            #[cfg(test)]
            space: None,
        };
        let mut last_key = None;
        for (name, path, size) in existing {
            let key = name.capture_key();
            bounded.bytes += size;
            if last_key.as_ref() == Some(&key)
                && let Some(capture) = bounded.captures.back_mut()
            {
                capture.paths.push(path);
                capture.bytes += size;
            } else {
                bounded.captures.push_back(Capture {
                    paths: vec![path],
                    bytes: size,
                });
                last_key = Some(key);
            }
        }
        bounded.trim()?;
        Ok(bounded)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn run(&self) -> &str {
        &self.run
    }

    /// Writes the files of one capture of `frame` (`(extension, bytes)` each, extensions
    /// among `png`, `jpg`, `txt`), never over an existing file, then removes the oldest
    /// captures beyond the bounds. Returns the names written. When a write fails (disk full),
    /// every file of this capture written so far is removed again and the error returned.
    pub fn write(
        &mut self,
        frame: u64,
        verdict: &str,
        files: &[(&str, &[u8])],
    ) -> std::io::Result<Vec<String>> {
        let (started, rest) = self.run.split_once('-').unwrap_or((&self.run, "0-0"));
        let (pid, number) = rest.split_once('-').unwrap_or((rest, "0"));
        let mut name = CaptureName {
            started: started.to_owned(),
            pid: pid.parse().unwrap_or(0),
            run: number.parse().unwrap_or(0),
            frame,
            duplicate: 0,
            verdict: verdict_for_name(verdict),
            extension: String::new(),
        };
        loop {
            match self.write_files(&name, files) {
                Ok((paths, bytes)) => {
                    let names = paths
                        .iter()
                        .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
                        .collect();
                    self.bytes += bytes;
                    self.captures.push_back(Capture { paths, bytes });
                    self.trim()?;
                    return Ok(names);
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::AlreadyExists
                        && name.duplicate < MAX_DUPLICATES =>
                {
                    name.duplicate = name.duplicate.max(1) + 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Creates each file exclusively; on any error removes those it created.
    fn write_files(
        &mut self,
        name: &CaptureName,
        files: &[(&str, &[u8])],
    ) -> std::io::Result<(Vec<PathBuf>, u64)> {
        let mut written: Vec<PathBuf> = Vec::new();
        let mut bytes = 0;
        for (extension, data) in files {
            debug_assert!(EXTENSIONS.contains(extension));
            let path = self.dir.join(
                CaptureName {
                    extension: (*extension).to_owned(),
                    ..name.clone()
                }
                .file_name(),
            );
            let created = OpenOptions::new().write(true).create_new(true).open(&path);
            let result = created.and_then(|mut file| {
                // Ours from here on: whatever happens next, a failed file is removed.
                written.push(path.clone());
                #[cfg(test)]
                if let Some(space) = self.space.as_mut() {
                    let fits = (*space).min(data.len() as u64) as usize;
                    *space -= fits as u64;
                    file.write_all(&data[..fits])?;
                    if fits < data.len() {
                        return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
                    }
                }
                file.write_all(data)?;
                file.flush()
            });
            if let Err(e) = result {
                for path in &written {
                    let _ = std::fs::remove_file(path);
                }
                return Err(e);
            }
            bytes += data.len() as u64;
        }
        Ok((written, bytes))
    }

    fn trim(&mut self) -> std::io::Result<()> {
        while (self.bytes > self.max_bytes || self.captures.len() > self.max_captures)
            && self.captures.len() > 1
        {
            if let Some(capture) = self.captures.pop_front() {
                for path in capture.paths {
                    match std::fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
                self.bytes -= capture.bytes;
            }
        }
        Ok(())
    }

    pub fn captures(&self) -> usize {
        self.captures.len()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bounded-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn names_round_trip_and_nothing_else_parses() {
        let run = run_id(std::time::Duration::from_millis(1_795_372_805_123), 4242, 1);
        assert_eq!(run, "20261122T184005123Z-4242-1");
        let name = format!("{run}_00000012_FAIL.png");
        let parsed = CaptureName::parse(&name).unwrap();
        assert_eq!((parsed.frame, parsed.duplicate), (12, 0));
        assert_eq!(parsed.file_name(), name);
        let dup = format!("{run}_12345678901_REVIEW-3.txt");
        assert_eq!(CaptureName::parse(&dup).unwrap().file_name(), dup);
        for other in [
            "report.docx",
            "inventory.sqlite",
            "frame_00000000_FAIL.png",
            "frame_00000000_FAIL.txt",
            "20261122T184005123Z-4242-1_00000012_FAIL.PNG",
            "20261122T184005123Z-4242-1_00000012_FAIL.png.bak",
            "20261122T184005123Z-4242-1_0000012_FAIL.png",
            "20261122T184005123Z-4242-1_00000012_fail.png",
            "20261122T184005123Z-4242-1_00000012_FAIL-0.png",
            "20261122T184005123Z-4242-1_00000012_FAIL-x.png",
            "20261122T184005123Z-4242_00000012_FAIL.png",
            "2026112XT184005123Z-4242-1_00000012_FAIL.png",
            "20261122T184005123Z-4242-1_00000012_FAIL_x.png",
            ".20261122T184005123Z-4242-1.probe",
        ] {
            assert_eq!(CaptureName::parse(other), None, "{other}");
        }
        assert_eq!(verdict_for_name("../../etc/passwd"), "ETCPASSWD");
        assert_eq!(verdict_for_name("fail"), "FAIL");
        assert_eq!(verdict_for_name("//"), "UNKNOWN");
    }

    #[test]
    fn the_directory_stays_bounded_oldest_first() {
        let dir = temp_dir("oldest");
        let mut bounded = BoundedDir::open(&dir, "20260101T000000000Z-1-1", 250, 100).unwrap();
        for i in 0..5 {
            bounded
                .write(i, "FAIL", &[("png", &[0; 90]), ("txt", &[0; 10])])
                .unwrap();
        }
        assert_eq!(bounded.captures(), 2);
        assert_eq!(
            listing(&dir),
            [
                "20260101T000000000Z-1-1_00000003_FAIL.png",
                "20260101T000000000Z-1-1_00000003_FAIL.txt",
                "20260101T000000000Z-1-1_00000004_FAIL.png",
                "20260101T000000000Z-1-1_00000004_FAIL.txt",
            ]
        );
        // A later run adopts them; the oldest run's go first.
        let mut later = BoundedDir::open(&dir, "20260101T000001000Z-1-2", 1000, 3).unwrap();
        assert_eq!((later.captures(), later.bytes()), (2, 200));
        later.write(0, "PASS", &[("png", &[1; 5])]).unwrap();
        later.write(1, "PASS", &[("png", &[1; 5])]).unwrap();
        assert_eq!(
            listing(&dir),
            [
                "20260101T000000000Z-1-1_00000004_FAIL.png",
                "20260101T000000000Z-1-1_00000004_FAIL.txt",
                "20260101T000001000Z-1-2_00000000_PASS.png",
                "20260101T000001000Z-1-2_00000001_PASS.png",
            ]
        );
        assert!(BoundedDir::open(Path::new("/proc/nonexistent/dir"), "r", 10, 10).is_err());
    }

    /// Issue 14, item 1: files the element did not write are never adopted, so never
    /// removed, whatever the bounds.
    #[test]
    fn unrelated_files_are_never_removed() {
        let dir = temp_dir("unrelated");
        let mut names: Vec<String> = (0..19).map(|i| format!("notes-{i}.txt")).collect();
        names.extend(["report.docx".into(), "inventory.sqlite".into()]);
        for name in &names {
            std::fs::write(dir.join(name), vec![7u8; 4096]).unwrap();
        }
        std::os::unix::fs::symlink(
            dir.join("report.docx"),
            dir.join("20250101T000000000Z-1-1_00000000_FAIL.png"),
        )
        .unwrap();
        names.push("20250101T000000000Z-1-1_00000000_FAIL.png".into());
        names.sort();
        let mut bounded = BoundedDir::open(&dir, &new_run_id(), 1, 2).unwrap();
        assert_eq!(bounded.captures(), 0);
        for frame in 0..5 {
            bounded
                .write(frame, "FAIL", &[("png", &[0; 10]), ("txt", &[0; 1])])
                .unwrap();
        }
        let listed = listing(&dir);
        let survivors: Vec<&String> = names.iter().filter(|n| listed.contains(n)).collect();
        assert_eq!(survivors.len(), 22, "{listed:?}");
        assert_eq!(listed.len(), 22 + 2, "one capture of two files is kept");
    }

    /// Issue 14, item 2: a second run never overwrites the first's files; a name that
    /// exists already gets a `-<n>` suffix.
    #[test]
    fn nothing_is_overwritten() {
        let dir = temp_dir("overwrite");
        let first = new_run_id();
        let second = new_run_id();
        assert_ne!(first, second);
        let mut a = BoundedDir::open(&dir, &first, 1 << 20, 100).unwrap();
        a.write(0, "FAIL", &[("png", b"first")]).unwrap();
        let mut b = BoundedDir::open(&dir, &second, 1 << 20, 100).unwrap();
        b.write(0, "FAIL", &[("png", b"second")]).unwrap();
        let names = b.write(0, "FAIL", &[("png", b"again")]).unwrap();
        assert_eq!(names, [format!("{second}_00000000_FAIL-2.png")]);
        assert_eq!(
            std::fs::read(dir.join(format!("{first}_00000000_FAIL.png"))).unwrap(),
            b"first"
        );
        assert_eq!(listing(&dir).len(), 3);
    }

    /// Issue 14, item 5: when the disk fills during a capture, neither a truncated image nor
    /// a 0-byte label stays behind, and the next capture that fits is written whole.
    #[test]
    fn a_failed_write_removes_the_files_of_the_capture() {
        let dir = temp_dir("failed");
        let mut bounded = BoundedDir::open(&dir, "20260101T000000000Z-1-1", 1 << 20, 100).unwrap();
        for space in [0, 50, 100] {
            bounded.space = Some(space);
            let error = bounded
                .write(
                    0,
                    "FAIL",
                    &[("png", &[1; 100]), ("txt", b"0 0.5 0.5 0.1 0.1\n")],
                )
                .unwrap_err();
            assert_eq!(error.raw_os_error(), Some(28), "{error}");
            assert_eq!(listing(&dir), Vec::<String>::new(), "space {space}");
        }
        assert_eq!((bounded.captures(), bounded.bytes()), (0, 0));
        bounded.space = Some(1000);
        bounded
            .write(1, "FAIL", &[("png", &[1; 100]), ("txt", b"x")])
            .unwrap();
        assert_eq!(listing(&dir).len(), 2);
    }
}
