//! Finding a data set's files in the directory a user points at.

use std::path::{Path, PathBuf};

use super::DataError;

pub(crate) fn read_whole_file(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|error| DataError::io(path, error))
}

/// `dir/{prefix}{n}{suffix}` for n = 1, 2, ..., in order: the batches of a data set split into
/// numbered files (`data_batch_1.bin`, `train_data_batch_1`, ...). Taking what is there rather
/// than a fixed count lets small test copies work; a gap (1, 2, 4) is an error because it
/// means a file went missing.
pub(crate) fn numbered_files(dir: &Path, prefix: &str, suffix: &str) -> Result<Vec<PathBuf>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|error| DataError::io(dir, error))?;
    let mut numbers = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| DataError::io(dir, error))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let number = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(suffix))
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u32>().ok());
        if let Some(number) = number {
            numbers.push(number);
        }
    }
    numbers.sort_unstable();
    if numbers.is_empty() {
        return Err(DataError::MissingFiles {
            path: dir.to_path_buf(),
            what: format!("{prefix}N{suffix} files"),
            hint: format!("expected {prefix}1{suffix}, {prefix}2{suffix}, ...; check data.path and data.format"),
        });
    }
    for (position, &number) in numbers.iter().enumerate() {
        let expected = position as u32 + 1;
        if number != expected {
            return Err(DataError::MissingFiles {
                path: dir.to_path_buf(),
                what: format!("{prefix}{expected}{suffix}"),
                hint: format!("{prefix}{number}{suffix} exists, so the numbered files are incomplete; restore the missing one"),
            });
        }
    }
    Ok(numbers.iter().map(|n| dir.join(format!("{prefix}{n}{suffix}"))).collect())
}

/// The first of `names` that exists in `dir`.
pub(crate) fn first_existing(dir: &Path, names: &[String]) -> Result<PathBuf, DataError> {
    names.iter().map(|name| dir.join(name)).find(|path| path.is_file()).ok_or_else(|| DataError::MissingFiles {
        path: dir.to_path_buf(),
        what: names.first().cloned().unwrap_or_default(),
        hint: format!("looked for {}; check data.path", names.join(", ")),
    })
}

/// `dir`, or its standard sub-directory when the user pointed at the folder the archive was
/// unpacked in (`.../cifar-10-batches-bin` inside `.../`); `marker` is a file that must exist.
pub(crate) fn locate_dir(dir: &Path, standard_subdirs: &[&str], marker: &str) -> PathBuf {
    if dir.join(marker).exists() {
        return dir.to_path_buf();
    }
    standard_subdirs.iter().map(|sub| dir.join(sub)).find(|candidate| candidate.join(marker).exists()).unwrap_or_else(|| dir.to_path_buf())
}
