//! Files of a run directory, written atomically: a temporary file in the same directory,
//! flushed, then renamed over the target, so a killed run never leaves a half-written file.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tch::Tensor;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("{path}: cannot {action} tensors: {source}")]
    Tensors { path: PathBuf, action: &'static str, source: tch::TchError },
    #[error("{path}: tensor `{name}` is missing; the checkpoint does not belong to this configuration")]
    MissingTensor { path: PathBuf, name: String },
    #[error("{path}: tensor `{name}` has shape {found:?}, the model has {expected:?}; the checkpoint does not belong to this configuration")]
    ShapeMismatch { path: PathBuf, name: String, expected: Vec<i64>, found: Vec<i64> },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io { path: path.to_path_buf(), source }
}

/// A temporary file beside `path`'s final place, created like any other file (mode 0666 less
/// the umask): a plain `NamedTempFile` is 0600, which its rename would carry over.
fn temporary_beside(dir: &Path, suffix: &str) -> Result<tempfile::NamedTempFile, CheckpointError> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new().suffix(suffix).permissions(std::fs::Permissions::from_mode(0o666)).tempfile_in(dir).map_err(io_error(dir))
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let mut file = temporary_beside(dir, ".tmp")?;
    file.write_all(bytes).map_err(io_error(path))?;
    file.as_file().sync_all().map_err(io_error(path))?;
    file.persist(path).map_err(|error| CheckpointError::Io { path: path.to_path_buf(), source: error.error })?;
    Ok(())
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), CheckpointError> {
    let text = serde_json::to_vec_pretty(value).map_err(|source| CheckpointError::Json { path: path.to_path_buf(), source })?;
    write_atomic(path, &text)
}

pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, CheckpointError> {
    let text = std::fs::read(path).map_err(io_error(path))?;
    serde_json::from_slice(&text).map_err(|source| CheckpointError::Json { path: path.to_path_buf(), source })
}

/// Writes named tensors as safetensors, atomically. Tensors are copied to the CPU first.
pub fn write_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<(), CheckpointError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let temporary = temporary_beside(dir, ".safetensors.tmp")?;
    let cpu: Vec<(String, Tensor)> = tensors.iter().map(|(n, t)| (n.clone(), t.detach().to_device(tch::Device::Cpu).contiguous())).collect();
    Tensor::write_safetensors(&cpu, temporary.path()).map_err(|source| CheckpointError::Tensors {
        path: path.to_path_buf(),
        action: "write",
        source,
    })?;
    temporary.as_file().sync_all().map_err(io_error(path))?;
    temporary.persist(path).map_err(|error| CheckpointError::Io { path: path.to_path_buf(), source: error.error })?;
    Ok(())
}

pub fn read_tensors(path: &Path) -> Result<Vec<(String, Tensor)>, CheckpointError> {
    Tensor::read_safetensors(path).map_err(|source| CheckpointError::Tensors { path: path.to_path_buf(), action: "read", source })
}

/// Copies checkpointed values into live tensors (parameters, buffers, α) by name.
pub fn restore_into(path: &Path, saved: &[(String, Tensor)], targets: &[(String, Tensor)], prefix: &str) -> Result<(), CheckpointError> {
    let saved: std::collections::HashMap<&str, &Tensor> = saved.iter().map(|(n, t)| (n.as_str(), t)).collect();
    tch::no_grad(|| {
        for (name, target) in targets {
            let key = format!("{prefix}{name}");
            let value = saved.get(key.as_str()).ok_or_else(|| CheckpointError::MissingTensor { path: path.to_path_buf(), name: key.clone() })?;
            if value.size() != target.size() {
                return Err(CheckpointError::ShapeMismatch { path: path.to_path_buf(), name: key, expected: target.size(), found: value.size() });
            }
            target.shallow_clone().copy_(value);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn written_files_follow_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let umask = status
            .lines()
            .find_map(|line| line.strip_prefix("Umask:"))
            .map(|value| u32::from_str_radix(value.trim(), 8).unwrap())
            .expect("Linux reports the umask");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        super::write_atomic(&path, b"{}").unwrap();
        super::write_tensors(&dir.path().join("node-0.safetensors"), &[("x".to_string(), tch::Tensor::from_slice(&[1f32]))]).unwrap();
        for file in [path, dir.path().join("node-0.safetensors")] {
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o666 & !umask, "{} has mode {mode:o} under umask {umask:o}", file.display());
        }
    }

    use super::*;

    #[test]
    fn tensors_round_trip_and_replace_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node-0.safetensors");
        let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
        write_tensors(&path, &[("a".into(), a.shallow_clone())]).unwrap();
        write_tensors(&path, &[("a".into(), &a * 2.0)]).unwrap();
        let back = read_tensors(&path).unwrap();
        assert_eq!(back[0].1.double_value(&[2]), 6.0);
        // No temporary files are left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let target = Tensor::zeros([3], (tch::Kind::Float, tch::Device::Cpu));
        restore_into(&path, &back, &[("a".into(), target.shallow_clone())], "").unwrap();
        assert_eq!(target.double_value(&[1]), 4.0);
        let wrong = Tensor::zeros([2], (tch::Kind::Float, tch::Device::Cpu));
        let error = restore_into(&path, &back, &[("a".into(), wrong)], "").unwrap_err().to_string();
        assert!(error.contains("shape [3]"), "{error}");
        let error = restore_into(&path, &back, &[("b".into(), target)], "").unwrap_err().to_string();
        assert!(error.contains("`b` is missing"), "{error}");
    }

    #[test]
    fn json_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_json(&path, &vec![1, 2, 3]).unwrap();
        let back: Vec<i32> = read_json(&path).unwrap();
        assert_eq!(back, vec![1, 2, 3]);
    }
}
