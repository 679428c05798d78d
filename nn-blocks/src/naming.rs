//! Parameter and buffer names.
//!
//! Names are tch's dotted paths (`cells.10.edges.2<-1.nor_conv_1x1.conv.weight`). They are the
//! identity of a tensor across checkpoints, optimizers and parent-to-child copies, so they must
//! not depend on build order or hash-map order: [`NamedVariables`] lists them in
//! [`natural_cmp`] order.

use std::cmp::Ordering;

use tch::nn::VarStore;
use tch::Tensor;

/// Orders dotted names segment by segment, numeric segments by value (`cells.2` before
/// `cells.10`), other segments as strings.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let order = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(m), Ok(n)) => m.cmp(&n).then_with(|| x.cmp(y)),
                    _ => x.cmp(y),
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

/// Whether `name` is `prefix` itself or lies below it (`cells.1` holds `cells.1.x`, not `cells.10.x`).
pub fn is_under(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// A var store's tensors split into trainable parameters and buffers (batch norm running
/// statistics), each in [`natural_cmp`] order. The tensors share storage with the var store.
pub struct NamedVariables {
    pub parameters: Vec<(String, Tensor)>,
    pub buffers: Vec<(String, Tensor)>,
}

impl NamedVariables {
    /// Take this right after building: a tensor counts as a parameter when it requires grad,
    /// which a caller may change later (freezing) without making it a buffer.
    pub fn of(var_store: &VarStore) -> Self {
        let (mut parameters, mut buffers): (Vec<_>, Vec<_>) = var_store.variables().into_iter().partition(|(_, tensor)| tensor.requires_grad());
        parameters.sort_by(|a, b| natural_cmp(&a.0, &b.0));
        buffers.sort_by(|a, b| natural_cmp(&a.0, &b.0));
        NamedVariables { parameters, buffers }
    }

    /// Number of trainable values.
    pub fn parameter_count(&self) -> u64 {
        self.parameters.iter().map(|(_, tensor)| tensor.numel() as u64).sum()
    }

    pub fn parameter_names(&self) -> impl Iterator<Item = &str> {
        self.parameters.iter().map(|(name, _)| name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_sort_by_value() {
        let mut names = vec!["cells.10.a", "cells.2.b", "cells.2.a", "stem.conv.weight", "cells.2"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(names, ["cells.2", "cells.2.a", "cells.2.b", "cells.10.a", "stem.conv.weight"]);
    }

    #[test]
    fn prefixes_respect_segments() {
        assert!(is_under("cells.1.x", "cells.1"));
        assert!(is_under("cells.1", "cells.1"));
        assert!(!is_under("cells.10.x", "cells.1"));
    }
}
