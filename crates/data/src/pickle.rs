//! Python pickles of dataset batches: a dict of numpy arrays and lists.
//!
//! `serde-pickle` parses the pickle; it cannot run numpy's reconstruction code, so with
//! unresolved globals replaced and restore state kept, a numpy array arrives as the
//! arguments numpy pickled for itself. Two forms occur:
//!
//! - protocols 0–4 (and every Python 2 pickle): the `__setstate__` tuple
//!   `(version, shape, dtype, is_fortran, raw_bytes)` (older numpy: without `version`);
//! - protocol 5: the `_frombuffer` arguments `(raw_bytes, dtype, shape, order)`.
//!
//! The dtype itself arrives as its state `(3, byteorder, ...)`, without the type name, so
//! the element size is raw length ÷ element count: 1 byte is read as uint8, 2/4/8 bytes as
//! signed integers in the dtype's byte order. That suffices for pixels (uint8) and labels
//! (any integer type); a float array shows up as absurd labels and is rejected by the range
//! check. Python 2 pickles have byte-string keys; both kinds of key are accepted.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use serde_pickle::{DeOptions, HashableValue, Value};

use super::DataError;

/// A numpy array or (nested) list of integers, decoded to its shape and values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodedArray {
    pub shape: Vec<usize>,
    pub elements: Elements,
}

/// Values stay one byte each where they fit, so image data costs no more than its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Elements {
    U8(Vec<u8>),
    I64(Vec<i64>),
}

impl Elements {
    fn len(&self) -> usize {
        match self {
            Elements::U8(values) => values.len(),
            Elements::I64(values) => values.len(),
        }
    }

    fn from_integers(values: Vec<i64>) -> Elements {
        if values.iter().all(|v| (0..=255).contains(v)) {
            Elements::U8(values.into_iter().map(|v| v as u8).collect())
        } else {
            Elements::I64(values)
        }
    }

    fn into_i64(self) -> Vec<i64> {
        match self {
            Elements::U8(values) => values.into_iter().map(i64::from).collect(),
            Elements::I64(values) => values,
        }
    }
}

impl DecodedArray {
    /// The values as bytes, e.g. pixels; an error names `key` if one does not fit in a byte.
    pub fn into_bytes(self, path: &Path, key: &str) -> Result<Vec<u8>, DataError> {
        match self.elements {
            Elements::U8(values) => Ok(values),
            Elements::I64(values) => values.iter().map(|&v| u8::try_from(v)).collect::<Result<Vec<u8>, _>>().map_err(|_| {
                let wide = values.iter().find(|v| !(0..=255).contains(*v)).copied().unwrap_or_default();
                DataError::bad_file(path, format!("`{key}` holds {wide}; expected uint8 pixel values 0..=255"))
            }),
        }
    }

    /// The values as a label vector; the array must be one-dimensional.
    pub fn into_labels(self, path: &Path, key: &str) -> Result<Vec<i64>, DataError> {
        if self.shape.len() != 1 {
            return Err(DataError::bad_file(path, format!("`{key}` has shape {:?}; expected one label per image, shape [N]", self.shape)));
        }
        Ok(self.elements.into_i64())
    }
}

/// The top-level dict of a dataset pickle, keys decoded to text.
pub(crate) struct PickleDict {
    path: PathBuf,
    entries: BTreeMap<String, Value>,
}

pub(crate) fn read_pickle_dict(path: &Path) -> Result<PickleDict, DataError> {
    let file = File::open(path).map_err(|error| DataError::io(path, error))?;
    let length = file.metadata().map_err(|error| DataError::io(path, error))?.len();
    if length == 0 {
        return Err(DataError::bad_file(path, "the file is empty; download it again"));
    }
    let options = DeOptions::new().replace_unresolved_globals().keep_restore_state();
    let value = serde_pickle::value_from_reader(BufReader::new(file), options).map_err(|error| {
        DataError::bad_file(
            path,
            format!("not a readable Python pickle ({error}); the file is truncated or corrupt, or not a python-format batch (see data.format)"),
        )
    })?;
    dict_from_value(path, value)
}

pub(crate) fn dict_from_value(path: &Path, value: Value) -> Result<PickleDict, DataError> {
    let Value::Dict(items) = value else {
        return Err(DataError::bad_file(path, format!("the pickle holds {}, expected a dict with `data` and labels", value_kind(&value))));
    };
    let mut entries = BTreeMap::new();
    for (key, value) in items {
        let key = match key {
            HashableValue::String(text) => text,
            // Python 2 `str` keys.
            HashableValue::Bytes(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            _ => continue,
        };
        entries.insert(key, value);
    }
    Ok(PickleDict { path: path.to_path_buf(), entries })
}

impl PickleDict {
    pub fn take(&mut self, key: &str) -> Result<Value, DataError> {
        self.entries.remove(key).ok_or_else(|| {
            let found: Vec<&str> = self.entries.keys().map(String::as_str).collect();
            DataError::bad_file(
                &self.path,
                format!("missing key `{key}` (keys present: {}); is it a batch of the data set data.dataset names?", found.join(", ")),
            )
        })
    }

    pub fn take_array(&mut self, key: &str) -> Result<DecodedArray, DataError> {
        let value = self.take(key)?;
        decode_array(value).map_err(|problem| DataError::bad_file(&self.path, format!("`{key}`: {problem}")))
    }
}

/// A numpy array (either pickled form), bytes, or a (nested) list or tuple of integers.
pub(crate) fn decode_array(value: Value) -> Result<DecodedArray, String> {
    match value {
        Value::Tuple(items) => match numpy_parts(items) {
            Ok(parts) => parts.decode(),
            Err(items) => decode_sequence(items),
        },
        Value::List(items) => decode_sequence(items),
        Value::Bytes(bytes) => Ok(DecodedArray { shape: vec![bytes.len()], elements: Elements::U8(bytes) }),
        other => Err(format!("is {}, expected a numpy array or a list of integers", value_kind(&other))),
    }
}

struct NumpyParts {
    shape: Vec<usize>,
    dtype: Value,
    fortran_order: bool,
    raw: Vec<u8>,
}

/// Recognises the two tuples numpy pickles an array as; gives the items back otherwise.
fn numpy_parts(items: Vec<Value>) -> Result<NumpyParts, Vec<Value>> {
    let shape_of = |value: &Value| match value {
        Value::Tuple(dims) => dims.iter().map(|d| integer(d).and_then(|d| usize::try_from(d).ok())).collect::<Option<Vec<usize>>>(),
        _ => None,
    };
    let text_of = |value: &Value| match value {
        Value::String(text) => Some(text.clone()),
        Value::Bytes(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        _ => None,
    };
    // `__setstate__`: (version, shape, dtype, is_fortran, raw) or, from old numpy, without version.
    // Protocols 0 and 1 may write the flag as an integer.
    let flag_of = |value: &Value| match value {
        Value::Bool(flag) => Some(*flag),
        Value::I64(flag) => Some(*flag != 0),
        _ => None,
    };
    let state = match items.as_slice() {
        [Value::I64(_), shape, _, fortran, Value::Bytes(_)] => shape_of(shape).zip(flag_of(fortran)).map(|(s, f)| (1, s, f)),
        [shape, _, fortran, Value::Bytes(_)] => shape_of(shape).zip(flag_of(fortran)).map(|(s, f)| (0, s, f)),
        _ => None,
    };
    if let Some((offset, shape, fortran_order)) = state {
        let mut items = items.into_iter().skip(offset + 1);
        let dtype = items.next().expect("matched above");
        let Some(Value::Bytes(raw)) = items.nth(1) else { unreachable!("matched above") };
        return Ok(NumpyParts { shape, dtype, fortran_order, raw });
    }
    // `_frombuffer(buffer, dtype, shape, order)`.
    if let [Value::Bytes(_), _, shape, order] = items.as_slice() {
        if let (Some(shape), Some(order)) = (shape_of(shape), text_of(order)) {
            let mut items = items.into_iter();
            let Some(Value::Bytes(raw)) = items.next() else { unreachable!("matched above") };
            let dtype = items.next().expect("matched above");
            return Ok(NumpyParts { shape, dtype, fortran_order: order == "F", raw });
        }
    }
    Err(items)
}

impl NumpyParts {
    fn decode(self) -> Result<DecodedArray, String> {
        let count: usize = self.shape.iter().product();
        if self.fortran_order && self.shape.iter().filter(|&&d| d > 1).count() > 1 {
            return Err(format!("a Fortran-ordered numpy array of shape {:?}; save it with numpy.ascontiguousarray(...) first", self.shape));
        }
        if count == 0 {
            return Ok(DecodedArray { shape: self.shape, elements: Elements::U8(Vec::new()) });
        }
        let leftover = self.raw.len() % count;
        if leftover != 0 || ![1, 2, 4, 8].contains(&(self.raw.len() / count)) {
            return Err(format!(
                "a numpy array of shape {:?} with {} bytes of data: not a whole number of 1-, 2-, 4- or 8-byte elements (truncated?)",
                self.shape,
                self.raw.len()
            ));
        }
        let element_bytes = self.raw.len() / count;
        let big_endian = matches!(&self.dtype, Value::Tuple(state) if state.get(1).is_some_and(|order| match order {
            Value::String(text) => text == ">",
            Value::Bytes(bytes) => bytes == b">",
            _ => false,
        }));
        let elements = if element_bytes == 1 {
            Elements::U8(self.raw)
        } else {
            Elements::I64(
                self.raw
                    .chunks_exact(element_bytes)
                    .map(|chunk| {
                        let mut buffer = [0u8; 8];
                        // Sign-extend: copy the element into the low (or high) bytes, then shift.
                        if big_endian {
                            buffer[..element_bytes].copy_from_slice(chunk);
                            i64::from_be_bytes(buffer) >> (64 - 8 * element_bytes)
                        } else {
                            buffer[8 - element_bytes..].copy_from_slice(chunk);
                            i64::from_le_bytes(buffer) >> (64 - 8 * element_bytes)
                        }
                    })
                    .collect(),
            )
        };
        Ok(DecodedArray { shape: self.shape, elements })
    }
}

/// A list or tuple: of integers (one dimension), or of equally shaped arrays (one more).
fn decode_sequence(items: Vec<Value>) -> Result<DecodedArray, String> {
    if items.iter().all(|item| integer(item).is_some()) {
        let values: Vec<i64> = items.iter().map(|item| integer(item).expect("checked")).collect();
        return Ok(DecodedArray { shape: vec![values.len()], elements: Elements::from_integers(values) });
    }
    let outer = items.len();
    let mut inner_shape: Option<Vec<usize>> = None;
    let mut parts = Vec::with_capacity(outer);
    for (index, item) in items.into_iter().enumerate() {
        let part = decode_array(item).map_err(|problem| format!("item {index} {problem}"))?;
        match &inner_shape {
            None => inner_shape = Some(part.shape.clone()),
            Some(shape) if *shape != part.shape => {
                return Err(format!("item {index} has shape {:?} where item 0 has {shape:?}; rows must be equal", part.shape))
            }
            Some(_) => {}
        }
        parts.push(part.elements);
    }
    let mut shape = vec![outer];
    shape.extend(inner_shape.unwrap_or_default());
    let elements = if parts.iter().all(|part| matches!(part, Elements::U8(_))) {
        let mut bytes = Vec::with_capacity(parts.iter().map(Elements::len).sum());
        for part in parts {
            let Elements::U8(values) = part else { unreachable!("checked") };
            bytes.extend_from_slice(&values);
        }
        Elements::U8(bytes)
    } else {
        Elements::I64(parts.into_iter().flat_map(Elements::into_i64).collect())
    };
    Ok(DecodedArray { shape, elements })
}

fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::I64(v) => Some(*v),
        Value::Int(big) => i64::try_from(big).ok(),
        _ => None,
    }
}

fn value_kind(value: &Value) -> &'static str {
    match value {
        Value::None => "None",
        Value::Bool(_) => "a bool",
        Value::I64(_) | Value::Int(_) => "an integer",
        Value::F64(_) => "a float",
        Value::Bytes(_) => "bytes",
        Value::String(_) => "a string",
        Value::List(_) => "a list",
        Value::Tuple(_) => "a tuple",
        Value::Set(_) | Value::FrozenSet(_) => "a set",
        Value::Dict(_) => "a dict",
    }
}
