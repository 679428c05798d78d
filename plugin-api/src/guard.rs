//! The guard every plugin method runs in.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::std_types::RResult;

use crate::types::{ErrorKind, PluginError, PluginResult};

/// Runs `body`, turning an error into `RErr` and a panic into `RErr(ErrorKind::Panic)`.
///
/// A panic that unwinds out of an `extern "C"` function aborts the whole process, so every
/// function a plugin exports (and every host function a plugin calls) must go through this.
pub fn ffi_guard<T>(body: impl FnOnce() -> Result<T, PluginError>) -> PluginResult<T> {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(result) => RResult::from(result),
        Err(payload) => RResult::RErr(PluginError::new(ErrorKind::Panic, panic_message(payload.as_ref()))),
    }
}

/// The text of a panic payload (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-text payload".to_string()
    }
}
