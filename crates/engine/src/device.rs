//! Choosing where tensors live.

use std::fmt;
use std::str::FromStr;

use splitnas_plugin_api::Device;

/// What the user asked for: `cpu`, `cuda`, `cuda:N` or `auto` (CUDA where available).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    Auto,
    Cpu,
    Cuda(u32),
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("unknown device `{0}`: use cpu, cuda, cuda:N or auto")]
    Unknown(String),
    #[error("device {requested} requested, but {available}")]
    Unavailable { requested: String, available: String },
}

impl FromStr for DeviceChoice {
    type Err = DeviceError;
    fn from_str(text: &str) -> Result<Self, DeviceError> {
        match text {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|index| index.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(|| DeviceError::Unknown(other.to_string())),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Auto => f.write_str("auto"),
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda(index) => write!(f, "cuda:{index}"),
        }
    }
}

/// What this process can use, and what a plugin must be built against to load in it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeviceReport {
    pub cuda_available: bool,
    pub cuda_devices: usize,
    pub cudnn_available: bool,
    /// The tch and libtorch release tag a plugin must carry (`TORCH_ABI`).
    pub torch_abi: &'static str,
    pub cpu_threads: i32,
    /// Why that many: chosen from the free CPUs (see [`crate::threads`]) or set by the user.
    pub cpu_threads_reason: String,
    /// The splitnas-plugin-api version a plugin must be built against (same major.minor).
    pub plugin_api_version: &'static str,
    /// The plugin ABI version (`ABI_VERSION`).
    pub abi_version: u32,
    /// The libtorch `lib` directory this process runs on: build plugins against the same
    /// libtorch (`LIBTORCH` = its parent directory).
    pub libtorch_lib: String,
    /// What to set `LIBTORCH` to when building a plugin for this host: the parent of
    /// `libtorch_lib` (with `LIBTORCH_CXX11_ABI=1`).
    pub libtorch: String,
}

pub fn device_report() -> DeviceReport {
    let libtorch_lib = loaded_libtorch_lib().unwrap_or_else(|| env!("SPLITNAS_LIBTORCH_LIB").to_string());
    DeviceReport {
        cuda_available: tch::Cuda::is_available(),
        cuda_devices: tch::Cuda::device_count().max(0) as usize,
        cudnn_available: tch::Cuda::cudnn_is_available(),
        torch_abi: splitnas_plugin_api::TORCH_ABI,
        cpu_threads: tch::get_num_threads(),
        cpu_threads_reason: crate::threads::current().reason,
        plugin_api_version: splitnas_plugin_api::PLUGIN_API_VERSION,
        abi_version: splitnas_plugin_api::ABI_VERSION,
        libtorch: std::path::Path::new(&libtorch_lib).parent().map(|root| root.display().to_string()).unwrap_or_default(),
        libtorch_lib,
    }
}

/// The directory of the `libtorch_cpu.so` this process has mapped (Linux), which may differ
/// from the build's when `LD_LIBRARY_PATH` points elsewhere.
fn loaded_libtorch_lib() -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let library = maps.lines().filter_map(|line| line.split_whitespace().nth(5)).find(|path| path.ends_with("/libtorch_cpu.so"))?;
    std::path::Path::new(library).parent().map(|dir| dir.display().to_string())
}

impl DeviceChoice {
    /// The concrete device, or an error saying what is available.
    pub fn resolve(self) -> Result<Device, DeviceError> {
        let count = tch::Cuda::device_count().max(0) as u32;
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Auto => Ok(if count > 0 { Device::Cuda(0) } else { Device::Cpu }),
            DeviceChoice::Cuda(index) if index < count => Ok(Device::Cuda(index)),
            DeviceChoice::Cuda(index) => Err(DeviceError::Unavailable {
                requested: format!("cuda:{index}"),
                available: if count == 0 {
                    "CUDA is not available in this process (no GPU or driver found); use --device cpu".to_string()
                } else {
                    format!("only {count} CUDA device(s) exist")
                },
            }),
        }
    }
}
