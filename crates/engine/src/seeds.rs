//! The seed streams of a search: every random choice of a run draws from a stream derived
//! from (run seed, stream, node, epoch, ...), so that a resumed run, or another command that
//! trains "as a run does" (`bench gm-repeats`), replays exactly the same numbers.

use splitnas_data::SeededRng;

/// Independent random streams derived from the run seed. Their numbers are part of every
/// recorded run: changing one changes every result, so they are only ever appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Stream {
    /// A node's fresh weights and α.
    Init = 1,
    /// A node's training epoch (libtorch and the algorithm's generator).
    Epoch = 2,
    /// Supernet evaluation after an epoch.
    Evaluation = 3,
    /// A leaf's derivation.
    Derivation = 4,
    /// Stand-alone training.
    Standalone = 5,
    /// A split (the criterion's generator, context samples).
    Split = 6,
    /// `bench gm-repeats`: recording gradient samples for one study seed.
    GradientRecording = 7,
    /// `bench gm-repeats`: a gm configuration's decision on a recording.
    StudyDecision = 8,
}

/// The seed of one stream at one place: `parts` name it (node, epoch, ...).
pub fn stream_seed(run_seed: u64, stream: Stream, parts: &[u64]) -> u64 {
    let mut all = vec![stream as u64];
    all.extend_from_slice(parts);
    SeededRng::derive(run_seed, &all).next_u64()
}

/// Seeds libtorch's global generator for a node's fresh weights (root: node 0).
pub fn seed_node_init(run_seed: u64, node: usize) {
    tch::manual_seed(stream_seed(run_seed, Stream::Init, &[node as u64]) as i64);
}

/// The seed of a node's training epoch.
pub fn epoch_seed(run_seed: u64, node: usize, epoch: usize) -> u64 {
    stream_seed(run_seed, Stream::Epoch, &[node as u64, epoch as u64])
}

/// The seed of a node's supernet evaluation after `epoch`.
pub fn evaluation_seed(run_seed: u64, node: usize, epoch: usize) -> u64 {
    stream_seed(run_seed, Stream::Evaluation, &[node as u64, epoch as u64])
}

/// Loader epochs far beyond training's, so that a split's gradients come from batches of
/// their own: node `n` reads loader epoch `SPLIT_LOADER_EPOCH + n`.
pub const SPLIT_LOADER_EPOCH: u64 = 1 << 40;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_independent_and_stable() {
        let a = stream_seed(7, Stream::Epoch, &[0, 1]);
        assert_eq!(a, stream_seed(7, Stream::Epoch, &[0, 1]));
        assert_ne!(a, stream_seed(7, Stream::Evaluation, &[0, 1]));
        assert_ne!(a, stream_seed(7, Stream::Epoch, &[1, 0]));
        assert_ne!(a, stream_seed(8, Stream::Epoch, &[0, 1]));
    }
}
