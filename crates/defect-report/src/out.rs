// SPDX-License-Identifier: MIT OR Apache-2.0
//! Writing a report's files into its folder without harming anything else there: a folder
//! that holds anything is refused unless the user allows replacing the report's own files;
//! every file is created exclusively, and no link is ever followed.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct OutError(pub String);

impl std::fmt::Display for OutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Writes `files` (relative paths) under `dir`. `overwrite`: replace earlier copies of these
/// same files (regular files only); anything else in the folder is left as it is.
pub fn write_report(
    dir: &Path,
    files: &[(String, String)],
    overwrite: bool,
) -> Result<Vec<PathBuf>, OutError> {
    let err = |p: &Path, e: std::io::Error| OutError(format!("{}: {e}", p.display()));
    match fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(OutError(format!(
                "{}: is a symbolic link; give the real folder",
                dir.display()
            )));
        }
        Ok(m) if !m.is_dir() => {
            return Err(OutError(format!("{}: is not a folder", dir.display())));
        }
        Ok(_) => {
            let mut entries = fs::read_dir(dir).map_err(|e| err(dir, e))?;
            if !overwrite && entries.next().is_some() {
                return Err(OutError(format!(
                    "{}: the folder is not empty; choose an empty or new folder, or pass --overwrite to replace an earlier report there (only its own files)",
                    dir.display()
                )));
            }
        }
        Err(_) => fs::create_dir_all(dir).map_err(|e| err(dir, e))?,
    }
    let mut written = Vec::new();
    for (name, contents) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            if let Ok(m) = fs::symlink_metadata(parent) {
                if m.file_type().is_symlink() || !m.is_dir() {
                    return Err(OutError(format!(
                        "{}: is not a plain folder",
                        parent.display()
                    )));
                }
            } else {
                fs::create_dir(parent).map_err(|e| err(parent, e))?;
            }
        }
        if let Ok(m) = fs::symlink_metadata(&path) {
            if !m.file_type().is_file() {
                return Err(OutError(format!(
                    "{}: exists and is not a regular file (a link or folder); not touched",
                    path.display()
                )));
            }
            // Only reached with overwrite: an empty folder has no such file.
            fs::remove_file(&path).map_err(|e| err(&path, e))?;
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| err(&path, e))?;
        file.write_all(contents.as_bytes())
            .map_err(|e| err(&path, e))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("defect-report-out-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_folder_with_user_files_is_refused_and_links_are_not_followed() {
        let files = vec![
            ("report.md".to_owned(), "new".to_owned()),
            ("plots/a.svg".to_owned(), "<svg/>".to_owned()),
        ];
        let d = temp("refuse");
        write_report(&d, &files, false).unwrap();
        assert_eq!(fs::read_to_string(d.join("report.md")).unwrap(), "new");
        // Not empty now: refused without --overwrite.
        assert!(
            write_report(&d, &files, false)
                .unwrap_err()
                .0
                .contains("not empty")
        );
        // With it, the report's own files are replaced, the user's kept.
        fs::write(d.join("notes.txt"), "mine").unwrap();
        write_report(&d, &files, true).unwrap();
        assert_eq!(fs::read_to_string(d.join("notes.txt")).unwrap(), "mine");
        // A link where a report file goes is never followed.
        let outside = temp("outside-file");
        fs::write(&outside, "precious").unwrap();
        fs::remove_file(d.join("report.md")).unwrap();
        std::os::unix::fs::symlink(&outside, d.join("report.md")).unwrap();
        assert!(
            write_report(&d, &files, true)
                .unwrap_err()
                .0
                .contains("not a regular file")
        );
        assert_eq!(fs::read_to_string(&outside).unwrap(), "precious");
        fs::remove_dir_all(&d).unwrap();
        fs::remove_file(&outside).unwrap();
    }
}
