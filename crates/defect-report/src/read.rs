// SPDX-License-Identifier: MIT OR Apache-2.0
//! Reading any number of NDJSON files (plain or gzipped, rotated ones included) into
//! [`Stats`]: one thread reads and decompresses, workers parse chunks of whole lines, each
//! into its own [`Stats`], merged at the end. Memory: a few chunks in flight, whatever the
//! size of the files.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};

use flate2::read::MultiGzDecoder;

use crate::stats::Stats;

/// Bytes of whole lines handed to a worker at once.
const CHUNK_BYTES: usize = 4 << 20;
/// Chunks waiting for a worker at most (bounds memory: (this + workers) x CHUNK_BYTES).
const QUEUED_CHUNKS: usize = 4;

struct Chunk {
    file: usize,
    first_line: u64,
    bytes: Vec<u8>,
}

/// Counts the bytes read from a file (compressed bytes for a gzipped one), for progress.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Is this file gzipped (by its magic bytes, not its name)?
fn is_gzip(path: &Path) -> std::io::Result<bool> {
    let mut magic = [0u8; 2];
    let mut file = File::open(path)?;
    let mut got = 0;
    while got < 2 {
        match file.read(&mut magic[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got == 2 && magic == [0x1f, 0x8b])
}

/// An error reading a file, naming it.
#[derive(Debug)]
pub struct ReadError {
    pub path: PathBuf,
    pub error: std::io::Error,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.error)
    }
}

fn worker(rx: Arc<Mutex<Receiver<Chunk>>>, offset_s: i64) -> Stats {
    let mut stats = Stats::new(offset_s);
    loop {
        let chunk = match rx.lock().map(|r| r.recv()) {
            Ok(Ok(chunk)) => chunk,
            _ => return stats,
        };
        for (line_no, line) in (chunk.first_line..).zip(chunk.bytes.split(|b| *b == b'\n')) {
            stats.add_line(chunk.file, line_no, line);
        }
    }
}

/// Reads `paths` (in order) with `workers` parsing threads; `read_bytes` counts progress.
pub fn read_files(
    paths: &[PathBuf],
    offset_s: i64,
    workers: usize,
    read_bytes: Arc<AtomicU64>,
) -> Result<Stats, ReadError> {
    let (tx, rx) = sync_channel::<Chunk>(QUEUED_CHUNKS);
    let rx = Arc::new(Mutex::new(rx));
    let handles: Vec<_> = (0..workers.max(1))
        .map(|_| {
            let rx = rx.clone();
            std::thread::spawn(move || worker(rx, offset_s))
        })
        .collect();
    let mut result = Ok(());
    'files: for (file, path) in paths.iter().enumerate() {
        let fail = |error| ReadError {
            path: path.clone(),
            error,
        };
        let gz = match is_gzip(path) {
            Ok(gz) => gz,
            Err(e) => {
                result = Err(fail(e));
                break;
            }
        };
        let raw = match File::open(path) {
            Ok(f) => Counting {
                inner: f,
                read: read_bytes.clone(),
            },
            Err(e) => {
                result = Err(fail(e));
                break;
            }
        };
        let reader: Box<dyn Read> = if gz {
            Box::new(MultiGzDecoder::new(raw))
        } else {
            Box::new(raw)
        };
        let mut reader = BufReader::with_capacity(1 << 20, reader);
        let mut line_no = 1u64;
        loop {
            let mut bytes = Vec::with_capacity(CHUNK_BYTES + 4096);
            let mut lines = 0u64;
            let first_line = line_no;
            while bytes.len() < CHUNK_BYTES {
                match reader.read_until(b'\n', &mut bytes) {
                    Ok(0) => break,
                    Ok(_) => lines += 1,
                    Err(e) => {
                        result = Err(fail(e));
                        break 'files;
                    }
                }
            }
            if bytes.last() == Some(&b'\n') {
                bytes.pop();
            }
            if lines == 0 {
                break;
            }
            line_no += lines;
            if tx
                .send(Chunk {
                    file,
                    first_line,
                    bytes,
                })
                .is_err()
            {
                break 'files;
            }
        }
    }
    drop(tx);
    let mut stats = Stats::new(offset_s);
    for handle in handles {
        match handle.join() {
            Ok(part) => stats.merge(part),
            Err(_) => {
                if result.is_ok() {
                    result = Err(ReadError {
                        path: PathBuf::new(),
                        error: std::io::Error::other("a parsing thread panicked"),
                    });
                }
            }
        }
    }
    result.map(|()| stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn plain_and_gzipped_files_give_the_same_counts_with_line_numbers() {
        let dir = std::env::temp_dir().join(format!("defect-report-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut text = String::new();
        for i in 0..5000 {
            text.push_str(&format!(
                "{{\"type\":\"frame\",\"utc\":\"2026-12-06T10:{:02}:{:02}.000Z\",\"verdict\":\"{}\"}}\n",
                (i / 60) % 60,
                i % 60,
                if i % 10 == 0 { "FAIL" } else { "PASS" }
            ));
        }
        text.push_str("garbage\n");
        let plain = dir.join("a.ndjson");
        std::fs::write(&plain, &text).unwrap();
        // A rotated file gzipped in two members, as `cat a.gz b.gz` makes.
        let gz = dir.join("a.ndjson.1.gz");
        let mut out = Vec::new();
        for half in [&text[..text.len() / 2], &text[text.len() / 2..]] {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(half.as_bytes()).unwrap();
            out.extend(e.finish().unwrap());
        }
        std::fs::write(&gz, out).unwrap();
        let counter = Arc::new(AtomicU64::new(0));
        let a = read_files(std::slice::from_ref(&plain), 0, 2, counter.clone()).unwrap();
        let b = read_files(std::slice::from_ref(&gz), 0, 3, counter).unwrap();
        assert_eq!(a.frame_totals(), [4500, 500, 0, 0]);
        assert_eq!(b.frame_totals(), a.frame_totals());
        assert_eq!(a.problems[0].line, 5001);
        assert_eq!(b.problems[0].line, 5001);
        let missing = read_files(&[dir.join("missing")], 0, 1, Arc::new(AtomicU64::new(0)));
        assert!(missing.unwrap_err().to_string().contains("missing"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
