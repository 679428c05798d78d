//! Batches decoded from image files while the network trains: a pool of worker threads
//! decodes and transforms whole batches ahead of the consumer, at most `prefetch` of them, and
//! the consumer takes them back in order.
//!
//! Determinism: a batch is a function of its position alone. Its files come from the epoch's
//! seeded order and image `k` of batch `b` in epoch `e` draws its crop, flip and jitter from
//! `SeededRng::derive(seed, [AUGMENT, e, b, k])`, so which worker made it, and how many there
//! are, changes nothing. A seek (resume) drops what was prefetched and starts over at the new
//! position. Memory is bounded by `prefetch` finished batches plus one per worker in progress.
//!
//! An image that cannot be read is left out of its batch (the batch is one image shorter), its
//! path and reason are logged once, and when more than `max_unreadable_fraction` of the
//! split's files have failed the loader stops with the list.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::SeededRng;

use super::image_folder::{read_rgb, ImageFiles, UnreadableImage};
use super::image_transform::{apply_eval, apply_train, draw_train, TransformScratch};
use super::loader::LoaderPosition;
use super::DataError;

/// The random stream of the per-image transforms (the same tag the in-memory loader uses).
pub(crate) const AUGMENT_STREAM: u64 = 0x4155_474d; // "AUGM"

/// How a streaming loader runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamOptions {
    /// Decoding threads; 0 decodes on the calling thread when a batch is asked for.
    pub workers: usize,
    /// Finished batches kept ahead of the consumer (at least 1).
    pub prefetch: usize,
    /// Share of the split's files that may fail before the loader stops (0 stops at the first).
    pub max_unreadable_fraction: f64,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions { workers: 2, prefetch: 4, max_unreadable_fraction: 0.01 }
    }
}

/// Pixels and labels of one batch, before they become tensors.
#[derive(Debug)]
pub(crate) struct DecodedBatch {
    /// `[n, 3, size, size]` uint8.
    pub pixels: Vec<u8>,
    pub labels: Vec<i64>,
    pub unreadable: Vec<UnreadableImage>,
}

/// What a batch needs to be made anywhere: the files and settings, shared by the workers.
struct BatchMaker {
    files: ImageFiles,
    augment: bool,
    seed: u64,
}

impl BatchMaker {
    fn make(&self, epoch: u64, batch: usize, indices: &[i64], scratch: &mut TransformScratch) -> DecodedBatch {
        let size = self.files.transforms.image_size;
        let image_len = 3 * size as usize * size as usize;
        let mut decoded = DecodedBatch { pixels: Vec::with_capacity(indices.len() * image_len), labels: Vec::new(), unreadable: Vec::new() };
        for (position, &index) in indices.iter().enumerate() {
            let file = &self.files.files[index as usize];
            let image = match read_rgb(&file.path) {
                Ok(image) => image,
                Err(unreadable) => {
                    decoded.unreadable.push(unreadable);
                    continue;
                }
            };
            let start = decoded.pixels.len();
            decoded.pixels.resize(start + image_len, 0);
            let out = &mut decoded.pixels[start..];
            if self.augment {
                let mut rng = SeededRng::derive(self.seed, &[AUGMENT_STREAM, epoch, batch as u64, position as u64]);
                let draw = draw_train(&self.files.transforms, image.width, image.height, &mut rng);
                apply_train(&image, &draw, size, scratch, out);
            } else {
                apply_eval(&image, self.files.transforms.eval_resize(), size, scratch, out);
            }
            decoded.labels.push(file.label);
        }
        decoded
    }
}

struct Job {
    generation: u64,
    position: LoaderPosition,
    indices: Vec<i64>,
}

struct Finished {
    generation: u64,
    position: LoaderPosition,
    batch: DecodedBatch,
}

/// The worker pool and the reorder buffer; owned by a `BatchLoader` over image files.
pub(crate) struct BatchStream {
    maker: Arc<BatchMaker>,
    options: StreamOptions,
    workers: Vec<JoinHandle<()>>,
    jobs: Option<Sender<Job>>,
    results: Option<Receiver<Finished>>,
    /// Bumped by every seek; workers skip jobs of older generations.
    generation: Arc<AtomicU64>,
    /// The position the consumer will ask for next, and the next one to hand a worker.
    expected: Option<LoaderPosition>,
    next_dispatch: LoaderPosition,
    in_flight: usize,
    ready: BTreeMap<(u64, usize), DecodedBatch>,
    /// Every file that failed so far, with its reason (each counted once).
    unreadable: BTreeMap<std::path::PathBuf, String>,
    scratch: TransformScratch,
}

impl std::fmt::Debug for BatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchStream").field("files", &self.maker.files.name).field("options", &self.options).finish_non_exhaustive()
    }
}

/// Where batches come from: the epoch order and the batch size (owned by the loader).
pub(crate) trait BatchPlan {
    fn batches_per_epoch(&self) -> usize;
    /// The dataset indices of batch `position`.
    fn batch_indices(&mut self, position: LoaderPosition) -> Vec<i64>;
}

impl BatchStream {
    pub fn new(files: ImageFiles, augment: bool, seed: u64, options: StreamOptions) -> Self {
        let maker = Arc::new(BatchMaker { files, augment, seed });
        let generation = Arc::new(AtomicU64::new(0));
        let (mut workers, mut jobs, mut results) = (Vec::new(), None, None);
        if options.workers > 0 {
            let (job_sender, job_receiver) = crossbeam_channel::unbounded::<Job>();
            let (result_sender, result_receiver) = crossbeam_channel::unbounded::<Finished>();
            for worker in 0..options.workers {
                let (job_receiver, result_sender) = (job_receiver.clone(), result_sender.clone());
                let (maker, generation) = (Arc::clone(&maker), Arc::clone(&generation));
                let handle = std::thread::Builder::new()
                    .name(format!("splitnas-data-{worker}"))
                    .spawn(move || {
                        let mut scratch = TransformScratch::default();
                        for job in job_receiver {
                            if job.generation != generation.load(Ordering::Acquire) {
                                continue;
                            }
                            let batch = maker.make(job.position.epoch, job.position.batch, &job.indices, &mut scratch);
                            let finished = Finished { generation: job.generation, position: job.position, batch };
                            if result_sender.send(finished).is_err() {
                                return;
                            }
                        }
                    })
                    .expect("the operating system starts a data worker thread");
                workers.push(handle);
            }
            (jobs, results) = (Some(job_sender), Some(result_receiver));
        }
        BatchStream {
            maker,
            options: StreamOptions { prefetch: options.prefetch.max(1), ..options },
            workers,
            jobs,
            results,
            generation,
            expected: None,
            next_dispatch: LoaderPosition::default(),
            in_flight: 0,
            ready: BTreeMap::new(),
            unreadable: BTreeMap::new(),
            scratch: TransformScratch::default(),
        }
    }

    pub fn files(&self) -> &ImageFiles {
        &self.maker.files
    }

    /// Every file that has failed so far and why.
    pub fn unreadable(&self) -> &BTreeMap<std::path::PathBuf, String> {
        &self.unreadable
    }

    /// The batch at `position`; prefetches the following ones.
    pub fn take(&mut self, position: LoaderPosition, plan: &mut dyn BatchPlan) -> Result<DecodedBatch, DataError> {
        let batch = match (&self.jobs, &self.results) {
            (Some(_), Some(_)) => self.take_from_workers(position, plan),
            _ => {
                let indices = plan.batch_indices(position);
                self.maker.make(position.epoch, position.batch, &indices, &mut self.scratch)
            }
        };
        self.record_unreadable(&batch.unreadable)?;
        Ok(batch)
    }

    fn take_from_workers(&mut self, position: LoaderPosition, plan: &mut dyn BatchPlan) -> DecodedBatch {
        if self.expected != Some(position) {
            // A seek, or the first batch: forget what was prefetched for another position.
            let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
            debug_assert!(generation > 0);
            self.ready.clear();
            self.in_flight = 0;
            self.next_dispatch = position;
        }
        let generation = self.generation.load(Ordering::Acquire);
        while self.in_flight < self.options.prefetch {
            let job = Job { generation, position: self.next_dispatch, indices: plan.batch_indices(self.next_dispatch) };
            self.jobs.as_ref().expect("workers exist").send(job).expect("data workers live as long as the stream");
            self.in_flight += 1;
            self.next_dispatch = advance(self.next_dispatch, plan.batches_per_epoch());
        }
        let key = (position.epoch, position.batch);
        while !self.ready.contains_key(&key) {
            let finished = self.results.as_ref().expect("workers exist").recv().expect("data workers live as long as the stream");
            if finished.generation == generation {
                self.ready.insert((finished.position.epoch, finished.position.batch), finished.batch);
            }
        }
        self.in_flight -= 1;
        self.expected = Some(advance(position, plan.batches_per_epoch()));
        self.ready.remove(&key).expect("waited for it above")
    }

    fn record_unreadable(&mut self, failed: &[UnreadableImage]) -> Result<(), DataError> {
        for image in failed {
            if self.unreadable.insert(image.path.clone(), image.reason.clone()).is_none() {
                eprintln!(
                    "warning: skipping unreadable image {}: {} ({} unreadable in {} so far)",
                    image.path.display(),
                    image.reason,
                    self.unreadable.len(),
                    self.maker.files.name
                );
            }
        }
        let total = self.maker.files.len();
        if !failed.is_empty() && self.unreadable.len() as f64 > self.options.max_unreadable_fraction * total as f64 {
            return Err(DataError::TooManyUnreadableImages {
                name: self.maker.files.name.clone(),
                count: self.unreadable.len(),
                total,
                limit: self.options.max_unreadable_fraction,
                list: self.unreadable.iter().map(|(path, reason)| format!("{}: {reason}", path.display())).collect(),
            });
        }
        Ok(())
    }
}

impl Drop for BatchStream {
    fn drop(&mut self) {
        // Closing the job queue ends the workers' loops; stale jobs are skipped on the way out.
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.jobs = None;
        self.results = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn advance(position: LoaderPosition, batches_per_epoch: usize) -> LoaderPosition {
    if position.batch + 1 >= batches_per_epoch {
        LoaderPosition { epoch: position.epoch + 1, batch: 0 }
    } else {
        LoaderPosition { epoch: position.epoch, batch: position.batch + 1 }
    }
}
