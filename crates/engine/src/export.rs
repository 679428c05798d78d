//! A trained stand-alone network as a PyTorch `state_dict` of its reference implementation:
//! the space's export description (ABI 1.2) renames every tensor; a space without one keeps
//! the network's own names.

use std::collections::{BTreeMap, BTreeSet};

use splitnas_plugin_api::{Architecture, ErrorKind, ExportDescription, NetworkBox, SearchSpaceBox};
use tch::Tensor;

use crate::error::{named, PluginResultExt, SearchError};

/// A network's tensors under their exported names, and how they were named.
pub struct ExportedNetwork {
    /// Parameters and buffers, detached, on the CPU.
    pub tensors: Vec<(String, Tensor)>,
    /// The reference implementation, or `None` where the space has none (the names are then
    /// the network's own).
    pub description: Option<ExportDescription>,
}

/// Renames `network`'s parameters and buffers as `space` describes for `architecture`.
///
/// Every tensor must have a name in the description and no two may share one. Batch norms
/// get the `num_batches_tracked` counter PyTorch keeps beside `running_mean` (0: splitnas
/// uses a fixed momentum, so the counter is never read), so that the result loads strictly.
pub fn export_network(space: &SearchSpaceBox, network: &NetworkBox, architecture: &Architecture) -> Result<ExportedNetwork, SearchError> {
    let mut tensors = named(network.parameters().within("network")?);
    tensors.extend(named(network.buffers().within("network")?));
    let tensors: Vec<(String, Tensor)> = tensors.into_iter().map(|(name, t)| (name, t.detach().to_device(tch::Device::Cpu).contiguous())).collect();
    let description = match space.export_description(architecture).into_result() {
        Ok(text) => serde_json::from_str::<ExportDescription>(&text)
            .map_err(|error| SearchError::Other(format!("space: its export description is not valid JSON of the expected form: {error}")))?,
        Err(error) if error.kind == ErrorKind::Unsupported => return Ok(ExportedNetwork { tensors, description: None }),
        Err(error) => return Err(SearchError::Plugin { component: "space".to_string(), error }),
    };
    let renamed = rename(tensors, &description.names)?;
    Ok(ExportedNetwork { tensors: with_batch_counters(renamed), description: Some(description) })
}

fn rename(tensors: Vec<(String, Tensor)>, names: &BTreeMap<String, String>) -> Result<Vec<(String, Tensor)>, SearchError> {
    let mut seen = BTreeSet::new();
    let mut renamed = Vec::with_capacity(tensors.len());
    for (ours, tensor) in tensors {
        let reference = names
            .get(&ours)
            .ok_or_else(|| SearchError::Other(format!("space: its export description has no reference name for the network's tensor `{ours}`")))?;
        if !seen.insert(reference.clone()) {
            return Err(SearchError::Other(format!("space: its export description names two tensors `{reference}`")));
        }
        renamed.push((reference.clone(), tensor));
    }
    Ok(renamed)
}

fn with_batch_counters(mut tensors: Vec<(String, Tensor)>) -> Vec<(String, Tensor)> {
    let names: BTreeSet<String> = tensors.iter().map(|(name, _)| name.clone()).collect();
    let counters: Vec<(String, Tensor)> = names
        .iter()
        .filter_map(|name| name.strip_suffix(".running_mean"))
        .map(|module| format!("{module}.num_batches_tracked"))
        .filter(|counter| !names.contains(counter))
        .map(|counter| (counter, Tensor::from(0i64)))
        .collect();
    tensors.extend(counters);
    tensors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_mapped_one_to_one_and_batch_norms_get_their_counter() {
        let tensors = vec![
            ("bn.running_mean".to_string(), Tensor::zeros([2], tch::kind::FLOAT_CPU)),
            ("w".to_string(), Tensor::ones([1], tch::kind::FLOAT_CPU)),
        ];
        let names: BTreeMap<String, String> =
            [("bn.running_mean", "1.running_mean"), ("w", "0.weight")].map(|(a, b)| (a.to_string(), b.to_string())).into();
        let exported = with_batch_counters(rename(tensors, &names).unwrap());
        let exported: Vec<&str> = exported.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(exported, ["1.running_mean", "0.weight", "1.num_batches_tracked"]);

        let missing = rename(vec![("x".to_string(), Tensor::from(1.0))], &names).err().unwrap().to_string();
        assert!(missing.contains("`x`"), "{missing}");
        let clash: BTreeMap<String, String> = [("a", "same"), ("b", "same")].map(|(a, b)| (a.to_string(), b.to_string())).into();
        let error = rename(vec![("a".to_string(), Tensor::from(1.0)), ("b".to_string(), Tensor::from(2.0))], &clash).err().unwrap().to_string();
        assert!(error.contains("`same`"), "{error}");
    }
}
