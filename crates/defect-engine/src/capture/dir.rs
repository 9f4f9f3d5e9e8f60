// SPDX-License-Identifier: MIT OR Apache-2.0
//! The capture directory: files named so that they can be told apart from anything else in
//! the directory, created exclusively (never overwriting), removed again when a write fails,
//! and bounded in count and size by removing the oldest captures of this element first.
//!
//! # Layout
//!
//! A capture's files go into folders of the directory, the layout YOLO tools and annotation
//! tools open as a dataset: `images/<stem>.png` (or `.jpg`), `labels/<stem>.txt` (YOLO
//! labels), `heatmaps/<stem>_heatmap.png` (an anomaly model's map). Those folders are created
//! when missing; one that is a link or not a folder is refused (nothing is written through a
//! link). Captures of earlier versions, all in the directory itself, are adopted too.
//!
//! # Names
//!
//! Every capture is `<run>_<frame>_<VERDICT>[-<n>]` (its stem) plus its extension:
//!
//! * `<run>` identifies one run (start to stop) of one element: the UTC time it started
//!   with milliseconds, the process id and a counter of runs within the process, e.g.
//!   `20261122T184005123Z-4242-1`. No two runs share it, so a second run never writes the
//!   names of the first.
//! * `<frame>` is the frame number of `DefectVerdictMeta`, at least 8 digits.
//! * `<VERDICT>` is the verdict in capitals and digits (anything else is left out).
//! * `-<n>` (2, 3, ...) only when the name without it exists already (a frame number seen
//!   twice in a run).
//! * `<ext>` is `png`, `jpg` (the image) or `txt` (the YOLO labels); a heat map's name ends in
//!   `_heatmap.png`.
//!
//! [`BoundedDir::open`] adopts the files whose names parse as [`CaptureName`] (regular files,
//! not links) as earlier captures, oldest run first; every other file in the directory and its
//! folders is left alone, whatever the bounds.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// The extensions of capture files.
const EXTENSIONS: [&str; 3] = ["png", "jpg", "txt"];

/// The folder of the images.
pub const IMAGES: &str = "images";
/// The folder of the YOLO label files.
pub const LABELS: &str = "labels";
/// The folder of the anomaly heat maps.
pub const HEATMAPS: &str = "heatmaps";
/// What ends a heat map's name (before `.png`).
pub const HEATMAP_SUFFIX: &str = "_heatmap";

/// One file of a capture: which folder it goes to and how it is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// `images/<stem>.<ext>`, `ext` `png` or `jpg`.
    Image(&'static str),
    /// `labels/<stem>.txt`.
    Labels,
    /// `heatmaps/<stem>_heatmap.png`.
    Heatmap,
}

impl Part {
    /// The file's path in the capture directory, e.g. `images/<stem>.png`.
    pub fn path(self, stem: &str) -> PathBuf {
        match self {
            Part::Image(extension) => Path::new(IMAGES).join(format!("{stem}.{extension}")),
            Part::Labels => Path::new(LABELS).join(format!("{stem}.txt")),
            Part::Heatmap => Path::new(HEATMAPS).join(format!("{stem}{HEATMAP_SUFFIX}.png")),
        }
    }
}

/// Creates `dir/name` as a folder when missing; refuses one that is a link or not a folder.
pub fn own_folder(dir: &Path, name: &str) -> std::io::Result<PathBuf> {
    let path = dir.join(name);
    match std::fs::create_dir(&path) {
        Ok(()) => return Ok(path),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    // `symlink_metadata` does not follow links: a link to a folder is refused too.
    let kind = std::fs::symlink_metadata(&path)?.file_type();
    if kind.is_dir() {
        Ok(path)
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            format!(
                "{} is a {}, not a folder: captures are never written through links or in place of files",
                path.display(),
                if kind.is_symlink() { "link" } else { "file" }
            ),
        ))
    }
}

/// Checks that `dir` can be written by creating and removing a file named for run `run`
/// (not a capture name: nobody else's file).
fn probe(dir: &Path, run: &str) -> std::io::Result<()> {
    let probe = dir.join(format!(".{run}.probe"));
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    std::fs::remove_file(&probe)
}

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

/// One capture: its stem, its files and their total size.
#[derive(Debug)]
struct Capture {
    stem: String,
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
    /// Stems of the captures removed to keep the bounds, not yet taken ([`Self::take_removed`]).
    removed: Vec<String>,
    /// Tests: bytes that can still be written before writes fail as on a full disk.
    #[cfg(test)]
    space: Option<u64>,
}

impl BoundedDir {
    /// Opens (creating) the directory and its folders for run `run` (see [`new_run_id`]),
    /// checks that they are writable and adopts the captures of earlier runs, oldest first;
    /// trims them to the bounds. Files whose names this module does not write are never
    /// adopted.
    pub fn open(
        dir: &Path,
        run: &str,
        max_bytes: u64,
        max_captures: usize,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        probe(dir, run)?;
        let mut folders = vec![(dir.to_path_buf(), "")];
        for (name, suffix) in [(IMAGES, ""), (LABELS, ""), (HEATMAPS, HEATMAP_SUFFIX)] {
            // Created when the first file goes there; one that exists must be a folder.
            if std::fs::symlink_metadata(dir.join(name)).is_ok() {
                folders.push((own_folder(dir, name)?, suffix));
            }
        }
        let mut existing: Vec<(CaptureName, PathBuf, u64)> = Vec::new();
        for (folder, suffix) in folders {
            existing.extend(
                std::fs::read_dir(&folder)?
                    .filter_map(|e| e.ok())
                    .filter_map(|e| {
                        // `file_type` does not follow links: a link is never adopted.
                        if !e.file_type().ok()?.is_file() {
                            return None;
                        }
                        let file_name = e.file_name();
                        let file_name = file_name.to_str()?;
                        let name = if suffix.is_empty() {
                            CaptureName::parse(file_name)?
                        } else {
                            let stem = file_name.strip_suffix(".png")?.strip_suffix(suffix)?;
                            CaptureName::parse(&format!("{stem}.png"))?
                        };
                        let size = e.metadata().ok()?.len();
                        Some((name, e.path(), size))
                    }),
            );
        }
        existing.sort();
        let mut bounded = Self {
            dir: dir.to_path_buf(),
            run: run.to_owned(),
            max_bytes,
            max_captures,
            captures: VecDeque::new(),
            bytes: 0,
            removed: Vec::new(),
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
                    stem: name.stem(),
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

    /// Writes the files of one capture of `frame` (`(part, bytes)` each), never over an
    /// existing file, then removes the oldest captures beyond the bounds. Returns the stem
    /// written (shared by the capture's files). When a write fails (disk full), every file of
    /// this capture written so far is removed again and the error returned.
    pub fn write(
        &mut self,
        frame: u64,
        verdict: &str,
        files: &[(Part, &[u8])],
    ) -> std::io::Result<String> {
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
                    let stem = name.stem();
                    self.bytes += bytes;
                    self.captures.push_back(Capture {
                        stem: stem.clone(),
                        paths,
                        bytes,
                    });
                    self.trim()?;
                    return Ok(stem);
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
        files: &[(Part, &[u8])],
    ) -> std::io::Result<(Vec<PathBuf>, u64)> {
        let mut written: Vec<PathBuf> = Vec::new();
        let mut bytes = 0;
        let stem = name.stem();
        for (part, data) in files {
            let relative = part.path(&stem);
            let path = self.dir.join(&relative);
            let folder = relative
                .parent()
                .and_then(|f| f.to_str())
                .unwrap_or_default();
            let created = own_folder(&self.dir, folder)
                .and_then(|_| OpenOptions::new().write(true).create_new(true).open(&path));
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
                self.removed.push(capture.stem);
            }
        }
        Ok(())
    }

    /// The stems of the captures removed to keep the bounds since the last call.
    pub fn take_removed(&mut self) -> Vec<String> {
        std::mem::take(&mut self.removed)
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

    /// The files in `dir` and its folders, as `folder/name`.
    fn listing(dir: &Path) -> Vec<String> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().unwrap().is_dir() {
                names.extend(
                    listing(&entry.path())
                        .into_iter()
                        .map(|n| format!("{name}/{n}")),
                );
            } else {
                names.push(name);
            }
        }
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
                .write(
                    i,
                    "FAIL",
                    &[(Part::Image("png"), &[0; 90]), (Part::Labels, &[0; 10])],
                )
                .unwrap();
        }
        assert_eq!(bounded.captures(), 2);
        assert_eq!(
            listing(&dir),
            [
                "images/20260101T000000000Z-1-1_00000003_FAIL.png",
                "images/20260101T000000000Z-1-1_00000004_FAIL.png",
                "labels/20260101T000000000Z-1-1_00000003_FAIL.txt",
                "labels/20260101T000000000Z-1-1_00000004_FAIL.txt",
            ]
        );
        assert_eq!(
            bounded.take_removed(),
            (0..3)
                .map(|i| format!("20260101T000000000Z-1-1_0000000{i}_FAIL"))
                .collect::<Vec<_>>()
        );
        assert!(bounded.take_removed().is_empty());
        // A later run adopts them; the oldest run's go first.
        let mut later = BoundedDir::open(&dir, "20260101T000001000Z-1-2", 1000, 3).unwrap();
        assert_eq!((later.captures(), later.bytes()), (2, 200));
        later
            .write(0, "PASS", &[(Part::Image("png"), &[1; 5])])
            .unwrap();
        later
            .write(1, "PASS", &[(Part::Image("png"), &[1; 5])])
            .unwrap();
        assert_eq!(
            listing(&dir),
            [
                "images/20260101T000000000Z-1-1_00000004_FAIL.png",
                "images/20260101T000001000Z-1-2_00000000_PASS.png",
                "images/20260101T000001000Z-1-2_00000001_PASS.png",
                "labels/20260101T000000000Z-1-1_00000004_FAIL.txt",
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
                .write(
                    frame,
                    "FAIL",
                    &[(Part::Image("png"), &[0; 10]), (Part::Labels, &[0; 1])],
                )
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
        a.write(0, "FAIL", &[(Part::Image("png"), b"first")])
            .unwrap();
        let mut b = BoundedDir::open(&dir, &second, 1 << 20, 100).unwrap();
        b.write(0, "FAIL", &[(Part::Image("png"), b"second")])
            .unwrap();
        let names = b
            .write(0, "FAIL", &[(Part::Image("png"), b"again")])
            .unwrap();
        assert_eq!(names, format!("{second}_00000000_FAIL-2"));
        assert_eq!(
            std::fs::read(dir.join(format!("images/{first}_00000000_FAIL.png"))).unwrap(),
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
                    &[
                        (Part::Image("png"), &[1; 100]),
                        (Part::Labels, b"0 0.5 0.5 0.1 0.1\n"),
                    ],
                )
                .unwrap_err();
            assert_eq!(error.raw_os_error(), Some(28), "{error}");
            assert_eq!(listing(&dir), Vec::<String>::new(), "space {space}");
        }
        assert_eq!((bounded.captures(), bounded.bytes()), (0, 0));
        bounded.space = Some(1000);
        bounded
            .write(
                1,
                "FAIL",
                &[(Part::Image("png"), &[1; 100]), (Part::Labels, b"x")],
            )
            .unwrap();
        assert_eq!(listing(&dir).len(), 2);
    }

    /// Captures of the flat layout of earlier versions and heat maps are adopted with their
    /// images; a folder that is a link or a file is refused, and no file is written through it.
    #[test]
    fn the_dataset_layout() {
        let dir = temp_dir("layout");
        std::fs::write(
            dir.join("20250101T000000000Z-1-1_00000000_FAIL.png"),
            [0; 10],
        )
        .unwrap();
        std::fs::write(
            dir.join("20250101T000000000Z-1-1_00000000_FAIL.txt"),
            [0; 10],
        )
        .unwrap();
        std::fs::create_dir(dir.join(HEATMAPS)).unwrap();
        std::fs::write(dir.join("heatmaps/notes_heatmap.png"), [0; 10]).unwrap();
        let mut bounded = BoundedDir::open(&dir, "20260101T000000000Z-1-1", 1 << 20, 2).unwrap();
        assert_eq!((bounded.captures(), bounded.bytes()), (1, 20));
        let stem = bounded
            .write(
                1,
                "REVIEW",
                &[
                    (Part::Image("jpg"), &[1; 10]),
                    (Part::Labels, &[]),
                    (Part::Heatmap, &[2; 10]),
                ],
            )
            .unwrap();
        assert_eq!(
            listing(&dir),
            [
                "20250101T000000000Z-1-1_00000000_FAIL.png",
                "20250101T000000000Z-1-1_00000000_FAIL.txt",
                "heatmaps/20260101T000000000Z-1-1_00000001_REVIEW_heatmap.png",
                "heatmaps/notes_heatmap.png",
                "images/20260101T000000000Z-1-1_00000001_REVIEW.jpg",
                "labels/20260101T000000000Z-1-1_00000001_REVIEW.txt",
            ]
        );
        drop(bounded);
        let mut again = BoundedDir::open(&dir, "20260101T000001000Z-1-2", 1 << 20, 1).unwrap();
        assert_eq!(
            again.take_removed(),
            ["20250101T000000000Z-1-1_00000000_FAIL"]
        );
        assert_eq!((again.captures(), again.bytes()), (1, 20));
        again.write(0, "FAIL", &[(Part::Heatmap, &[3; 5])]).unwrap();
        assert_eq!(again.take_removed(), [stem]);
        assert_eq!(
            listing(&dir),
            [
                "heatmaps/20260101T000001000Z-1-2_00000000_FAIL_heatmap.png",
                "heatmaps/notes_heatmap.png",
            ]
        );

        // A link in place of a folder: refused at open and at write, nothing written there.
        let elsewhere = temp_dir("layout-elsewhere");
        let linked = temp_dir("layout-linked");
        std::os::unix::fs::symlink(&elsewhere, linked.join(IMAGES)).unwrap();
        let e = BoundedDir::open(&linked, "20260101T000000000Z-1-1", 1 << 20, 10).unwrap_err();
        assert!(e.to_string().contains("is a link, not a folder"), "{e}");
        std::fs::write(linked.join(LABELS), b"a file").unwrap();
        std::fs::remove_file(linked.join(IMAGES)).unwrap();
        let e = BoundedDir::open(&linked, "20260101T000000000Z-1-1", 1 << 20, 10).unwrap_err();
        assert!(e.to_string().contains("is a file, not a folder"), "{e}");
        std::fs::remove_file(linked.join(LABELS)).unwrap();
        let mut bounded =
            BoundedDir::open(&linked, "20260101T000000000Z-1-1", 1 << 20, 10).unwrap();
        std::os::unix::fs::symlink(&elsewhere, linked.join(LABELS)).unwrap();
        let e = bounded
            .write(
                0,
                "FAIL",
                &[(Part::Image("png"), &[1]), (Part::Labels, &[2])],
            )
            .unwrap_err();
        assert!(e.to_string().contains("is a link"), "{e}");
        assert_eq!(listing(&elsewhere), Vec::<String>::new());
        assert_eq!(
            listing(&linked),
            ["labels"],
            "the image written first is removed again"
        );
    }
}
