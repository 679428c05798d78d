//! What the supernet and the stand-alone networks share: the stem (3x3 conv, BN, ReLU6), the
//! fixed `3x3_MBConv1` first block, the 21 searchable blocks (each network's own kind), the
//! 1x1 feature mix (BN, ReLU6), global average pooling, dropout and the classifier.
//!
//! Names: `stem.{conv,bn}.*`, `first_block.{depthwise,project}.{conv,bn}.*`,
//! `blocks.{1..=21}.{op}.{expand,depthwise,project}.{conv,bn}.*`, `feature_mix.{conv,bn}.*`,
//! `classifier.{weight,bias}`.

use splitnas_nn_blocks::{global_avg_pool, BatchNormNumerics, ConvBn, Linear, MbConv, ParamInit};
use tch::nn::Path;
use tch::{TchError, Tensor};

use crate::space::NetworkLayout;

/// The path of searchable block `block` (0-based choice point): `blocks.{block + 1}`.
pub fn block_prefix(block: usize) -> String {
    format!("blocks.{}", block + 1)
}

pub struct Skeleton<B> {
    pub layout: NetworkLayout,
    pub stem: ConvBn,
    pub first_block: MbConv,
    pub blocks: Vec<B>,
    pub feature_mix: ConvBn,
    pub classifier: Linear,
    pub dropout: f64,
}

impl<B> Skeleton<B> {
    /// `make_block(path, block)` builds searchable block `block` (0-based) under `path`.
    pub fn new(
        root: &Path,
        layout: &NetworkLayout,
        dropout: f64,
        init: ParamInit,
        mut make_block: impl FnMut(&Path, usize) -> Result<B, TchError>,
    ) -> Result<Self, TchError> {
        let numerics = BatchNormNumerics::MOBILE;
        let stem = ConvBn::new(&(root / "stem"), layout.stem_conv(), numerics, init)?;
        let first_block = MbConv::new(&(root / "first_block"), layout.first_block, numerics, init)?;
        let blocks =
            (0..layout.blocks.len()).map(|block| make_block(&(root / "blocks" / (block + 1).to_string()), block)).collect::<Result<Vec<_>, _>>()?;
        let feature_mix = ConvBn::new(&(root / "feature_mix"), layout.feature_mix_conv(), numerics, init)?;
        let classifier = Linear::new(&(root / "classifier"), layout.feature_mix_channels, layout.classes, init)?;
        Ok(Skeleton { layout: layout.clone(), stem, first_block, blocks, feature_mix, classifier, dropout })
    }

    /// Logits of `input`; `run_block(block index, block, features)` runs a searchable block.
    pub fn forward(
        &self,
        input: &Tensor,
        train: bool,
        mut run_block: impl FnMut(usize, &B, &Tensor) -> Result<Tensor, TchError>,
    ) -> Result<Tensor, TchError> {
        let mut features = self.first_block.forward(&self.stem.forward_relu6(input, train)?, train)?;
        for (index, block) in self.blocks.iter().enumerate() {
            features = run_block(index, block, &features)?;
        }
        let mut pooled = global_avg_pool(&self.feature_mix.forward_relu6(&features, train)?)?;
        if self.dropout > 0.0 {
            pooled = pooled.f_dropout(self.dropout, train)?;
        }
        self.classifier.forward(&pooled)
    }
}
