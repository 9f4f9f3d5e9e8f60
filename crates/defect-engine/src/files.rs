// SPDX-License-Identifier: MIT OR Apache-2.0
//! Reading the small text files the elements are given (labels, policies): regular files only,
//! opened without blocking (a FIFO would block the state change forever) and read up to a
//! size cap (`/dev/zero` or a runaway file would grow without bound).

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// What kind of file a path names, for messages: "a directory", "a FIFO", ...
pub fn describe_non_regular(file_type: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Checks that `path` names a regular file (following symbolic links).
pub fn check_regular(path: &Path) -> Result<std::fs::Metadata, String> {
    let metadata = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if metadata.is_file() {
        Ok(metadata)
    } else {
        Err(format!(
            "is {}, not a regular file",
            describe_non_regular(metadata.file_type())
        ))
    }
}

/// Reads a UTF-8 text file of at most `max_bytes`. Errors say why, without the path (the
/// caller names the file and what it is for).
pub fn read_text(path: &Path, max_bytes: u64) -> Result<String, String> {
    check_regular(path)?;
    // O_NONBLOCK: should the path become a FIFO between the check and the open, the open
    // does not wait for a writer; it has no effect on regular files.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| e.to_string())?;
    let metadata = file.metadata().map_err(|e| e.to_string())?;
    if !metadata.is_file() {
        return Err(format!(
            "is {}, not a regular file",
            describe_non_regular(metadata.file_type())
        ));
    }
    if metadata.len() > max_bytes {
        return Err(format!(
            "is {} bytes; at most {max_bytes} are read",
            metadata.len()
        ));
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > max_bytes {
        return Err(format!("is larger than {max_bytes} bytes"));
    }
    String::from_utf8(bytes).map_err(|e| format!("is not UTF-8 text ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Item 8 of issue 14: a FIFO, a directory, a device and an oversized file are errors,
    /// at once (the FIFO has no writer: opening it for reading would block).
    #[test]
    fn only_regular_files_within_the_cap() {
        let dir = std::env::temp_dir().join(format!("defect-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let _ = std::fs::remove_file(&fifo);
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let error = read_text(&fifo, 1024).unwrap_err();
        assert!(error.contains("is a FIFO"), "{error}");
        let error = read_text(&dir, 1024).unwrap_err();
        assert!(error.contains("is a directory"), "{error}");
        let error = read_text(Path::new("/dev/zero"), 1024).unwrap_err();
        assert!(error.contains("is a character device"), "{error}");
        let big = dir.join("big.txt");
        std::fs::write(&big, vec![b'a'; 2048]).unwrap();
        let error = read_text(&big, 1024).unwrap_err();
        assert!(error.contains("is 2048 bytes; at most 1024"), "{error}");
        assert_eq!(read_text(&big, 4096).unwrap().len(), 2048);
        std::fs::write(&big, b"\xff\xfe").unwrap();
        assert!(read_text(&big, 4096).unwrap_err().contains("not UTF-8"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
