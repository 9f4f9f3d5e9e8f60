// SPDX-License-Identifier: MIT OR Apache-2.0
//! The folder `defect-replay --out` writes into, and how it writes there: it never destroys a
//! file it did not write. A folder that already holds anything is refused unless the user asks
//! for `--overwrite`, and even then only the files this tool writes ([`WRITTEN`]) are replaced;
//! a link, folder or other non-regular file in the way of one of them is an error. Every file is
//! created exclusively (`O_CREAT | O_EXCL`, and `O_NOFOLLOW`): a link put in place meanwhile is
//! never followed, and nothing outside the folder is ever written (as `defectcapture`'s
//! bounded folder does).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The files `defect-replay` writes into its `--out` folder (model B's go into `b/`).
pub const WRITTEN: &[&str] = &[
    "report.json",
    "report.md",
    "truth.coco.json",
    "predictions.coco.json",
    "pr_curves.png",
    "confusion.png",
    "latency.png",
    "swept-policy.toml",
    "agreement.json",
];

/// The folder of model B's files inside `--out`.
pub const B_DIR: &str = "b";

/// Creates `path` for writing; an error when anything is there already (a file, or a link,
/// even a dangling one).
pub fn create_new(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Writes `bytes` into a new file at `path` ([`create_new`]); a failed write removes it.
pub fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = create_new(path)?;
    let written = file.write_all(bytes).and_then(|()| file.flush());
    if written.is_err() {
        let _ = std::fs::remove_file(path);
    }
    written
}

/// Makes `dir` ready for the files of [`WRITTEN`] (and `b/`): creates it when missing; refuses
/// it when it holds anything, unless `overwrite`, which removes those of [`WRITTEN`] that are
/// regular files (anything else by those names is an error, and every other entry is left
/// alone). The error names the folder and what is in the way.
pub fn prepare(dir: &Path, overwrite: bool) -> Result<(), String> {
    let shown = dir.display();
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return std::fs::create_dir_all(dir).map_err(|e| format!("{shown}: {e}"));
        }
        Err(e) => return Err(format!("{shown}: {e}")),
        Ok(m) if !m.is_dir() => return Err(format!("{shown}: exists and is not a folder")),
        Ok(_) => {}
    }
    let mut entries: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("{shown}: {e}"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if entries.is_empty() {
        return Ok(());
    }
    if !overwrite {
        entries.sort();
        let listed = entries
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        let more = if entries.len() > 5 {
            format!(" and {} more", entries.len() - 5)
        } else {
            String::new()
        };
        return Err(format!(
            "{shown}: the folder is not empty (it holds {listed}{more}); defect-replay does not \
             replace what it did not write: choose an empty or new folder, or pass --overwrite \
             to replace its own files there ({}), leaving everything else alone",
            WRITTEN.join(", ")
        ));
    }
    for name in WRITTEN {
        remove_own(dir, name)?;
    }
    let b = dir.join(B_DIR);
    match std::fs::symlink_metadata(&b) {
        Ok(m) if m.is_dir() => prepare(&b, true),
        Ok(_) => Err(format!(
            "{}: is in the way of model B's folder (not a folder); defect-replay does not \
             replace it",
            b.display()
        )),
        Err(_) => Ok(()),
    }
}

/// With `overwrite`, removes `dir/name` when it is a regular file; without it, an existing
/// `dir/name` is an error. A link or anything else by that name is always an error.
pub fn make_room(dir: &Path, name: &str, overwrite: bool) -> Result<(), String> {
    let path = dir.join(name);
    if !overwrite && std::fs::symlink_metadata(&path).is_ok() {
        return Err(format!(
            "{}: exists; defect-replay does not replace what it did not write: move it, or \
             pass --overwrite to replace it",
            path.display()
        ));
    }
    remove_own(dir, name)
}

/// Removes `dir/name` when it is a regular file (never following a link); Ok when there is
/// nothing by that name; an error naming it when it is anything else.
fn remove_own(dir: &Path, name: &str) -> Result<(), String> {
    let path = dir.join(name);
    let kind = match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
        Ok(m) if m.is_file() => {
            return std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()));
        }
        Ok(m) if m.file_type().is_symlink() => "a symbolic link",
        Ok(m) => crate::files::describe_non_regular(m.file_type()),
    };
    Err(format!(
        "{}: is {kind}, where defect-replay writes its {name}; it never follows or replaces \
         that: remove it or choose another folder",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("defect-out-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_folder_with_files_is_refused_unless_overwrite_and_links_always() {
        let dir = temp_dir("prepare");
        prepare(&dir, false).unwrap();
        let fresh = dir.join("new/deeper");
        prepare(&fresh, false).unwrap();
        assert!(fresh.is_dir());
        std::fs::write(dir.join("report.md"), "mine").unwrap();
        std::fs::write(dir.join("notes.txt"), "mine").unwrap();
        let e = prepare(&dir, false).unwrap_err();
        assert!(
            e.contains("not empty") && e.contains("notes.txt, report.md"),
            "{e}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("report.md")).unwrap(),
            "mine"
        );
        prepare(&dir, true).unwrap();
        assert!(!dir.join("report.md").exists());
        assert_eq!(
            std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
            "mine"
        );
        let outside = dir.join("new/outside.json");
        std::fs::write(&outside, "precious").unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("report.json")).unwrap();
        let e = prepare(&dir, true).unwrap_err();
        assert!(
            e.contains("report.json") && e.contains("symbolic link"),
            "{e}"
        );
        // create_new does not follow it either.
        assert!(write_new(&dir.join("report.json"), b"x").is_err());
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious");
        std::fs::remove_file(dir.join("report.json")).unwrap();
        std::os::unix::fs::symlink(dir.join("nowhere"), dir.join("report.json")).unwrap();
        assert!(write_new(&dir.join("report.json"), b"x").is_err());
        assert!(!dir.join("nowhere").exists());
        std::fs::remove_file(dir.join("report.json")).unwrap();
        std::fs::create_dir(dir.join("latency.png")).unwrap();
        let e = prepare(&dir, true).unwrap_err();
        assert!(
            e.contains("latency.png") && e.contains("a directory"),
            "{e}"
        );
        std::fs::remove_dir(dir.join("latency.png")).unwrap();
        std::fs::create_dir(dir.join("b")).unwrap();
        std::fs::write(dir.join("b/report.md"), "old").unwrap();
        prepare(&dir, true).unwrap();
        assert!(!dir.join("b/report.md").exists());
        write_new(&dir.join("report.md"), b"new").unwrap();
        assert!(write_new(&dir.join("report.md"), b"again").is_err());
        assert_eq!(
            std::fs::read_to_string(dir.join("report.md")).unwrap(),
            "new"
        );
        let e = make_room(&dir, "report.md", false).unwrap_err();
        assert!(e.contains("--overwrite"), "{e}");
        make_room(&dir, "report.md", true).unwrap();
        make_room(&dir, "report.md", false).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
