//! BatchNorm running statistics re-estimated for one architecture of a supernet ("BN
//! recalibration"): what OFA's subnet evaluation and `bench ranking` do before measuring an
//! architecture through weight-sharing weights, whose running statistics mix every path
//! trained.

use std::cell::RefCell;

use splitnas_data::{BatchLoader, LoaderPosition};
use tch::Tensor;

use crate::error::SearchError;

/// A supernet's floating-point BatchNorm buffers (running means and variances; counters are
/// left alone), with a copy to put back after an architecture's recalibration.
pub struct BatchNormStatistics {
    statistics: Vec<Tensor>,
    saved: Vec<Tensor>,
}

impl BatchNormStatistics {
    /// Handles sharing storage with `buffers`, and a copy of their values now.
    pub fn of(buffers: &[(String, Tensor)]) -> Self {
        let statistics: Vec<Tensor> = buffers.iter().map(|(_, tensor)| tensor.shallow_clone()).filter(|tensor| tensor.is_floating_point()).collect();
        let saved = statistics.iter().map(Tensor::copy).collect();
        BatchNormStatistics { statistics, saved }
    }

    pub fn is_empty(&self) -> bool {
        self.statistics.is_empty()
    }

    fn zero(&self) {
        for tensor in &self.statistics {
            let _ = tensor.shallow_clone().zero_();
        }
    }

    /// Puts back the values of [`BatchNormStatistics::of`].
    pub fn restore(&self) {
        tch::no_grad(|| {
            for (live, saved) in self.statistics.iter().zip(&self.saved) {
                live.shallow_clone().copy_(saved);
            }
        });
    }

    /// The BatchNorm momentum m, measured rather than assumed: from zeroed buffers one
    /// training-mode pass (`train_forward`) on `images` leaves r₁ = m·s, a second pass on the
    /// same images r₂ = (2 − m)·r₁. The buffers are restored afterwards.
    pub fn measure_momentum(&self, images: &Tensor, train_forward: &dyn Fn(&Tensor) -> Result<(), SearchError>) -> Result<f64, SearchError> {
        if self.statistics.is_empty() {
            return Ok(1.0);
        }
        let measured = tch::no_grad(|| -> Result<f64, SearchError> {
            self.zero();
            train_forward(images)?;
            let first: Vec<Tensor> = self.statistics.iter().map(Tensor::copy).collect();
            train_forward(images)?;
            // The element with the largest first value is the best-conditioned ratio.
            let (mut best, mut ratio) = (0.0, f64::NAN);
            for (before, after) in first.iter().zip(&self.statistics) {
                let magnitude = before.abs().flatten(0, -1);
                if magnitude.numel() == 0 {
                    continue;
                }
                let index = magnitude.argmax(0, false).int64_value(&[]);
                let value = before.flatten(0, -1).double_value(&[index]);
                if value.abs() > best {
                    best = value.abs();
                    ratio = after.flatten(0, -1).double_value(&[index]) / value;
                }
            }
            Ok(2.0 - ratio)
        });
        self.restore();
        let momentum = measured?;
        if !(momentum > 1e-4 && momentum <= 1.0 + 1e-6) {
            return Err(SearchError::Other(format!(
                "could not measure the supernet's BatchNorm momentum (got {momentum}); BN recalibration needs buffers that follow PyTorch's running-average rule"
            )));
        }
        Ok(momentum)
    }

    /// Sets the statistics to the mean of the architecture's batch statistics over the first
    /// `batches` batches of `calibration` (from its start: the same images for every
    /// architecture). `train_forward` runs the architecture in training mode.
    pub fn recalibrate(
        &self,
        calibration: &RefCell<BatchLoader>,
        batches: usize,
        momentum: f64,
        train_forward: &dyn Fn(&Tensor) -> Result<(), SearchError>,
    ) -> Result<(), SearchError> {
        if batches == 0 || self.statistics.is_empty() {
            return Ok(());
        }
        tch::no_grad(|| {
            let mut loader = calibration.borrow_mut();
            loader.seek(LoaderPosition::default());
            let mut sums: Vec<Tensor> = self.statistics.iter().map(Tensor::zeros_like).collect();
            for _ in 0..batches {
                let batch = loader.next_batch()?;
                self.zero();
                train_forward(&batch.images)?;
                for (sum, live) in sums.iter_mut().zip(&self.statistics) {
                    *sum += live;
                }
            }
            for (live, sum) in self.statistics.iter().zip(sums) {
                live.shallow_clone().copy_(&(sum / (momentum * batches as f64)));
            }
            Ok(())
        })
    }
}
