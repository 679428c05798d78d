//! A data set in memory, and the plain-Rust records that file readers build it from.

use std::path::Path;

use tch::{Device, Kind, Tensor};

use super::image_folder::ImageFiles;
use super::DataError;

/// Labelled images: uint8 `[N, C, H, W]` and int64 `[N]` targets in `0..num_classes`.
///
/// Loaders read from the tensors and never write to them, so subsets and device copies
/// may share storage.
#[derive(Debug)]
pub struct Dataset {
    /// Where it came from and which part, e.g. `cifar10/train`; used in messages.
    pub name: String,
    pub images: Tensor,
    pub labels: Tensor,
    pub num_classes: usize,
}

impl Dataset {
    /// Checks kinds, shapes and label range, so that everything downstream can rely on them.
    pub fn new(name: impl Into<String>, images: Tensor, labels: Tensor, num_classes: usize) -> Result<Self, DataError> {
        let name = name.into();
        let bad = |problem: String| DataError::BadDataset { name: name.clone(), problem };
        if images.kind() != Kind::Uint8 || images.dim() != 4 {
            return Err(bad(format!("images must be uint8 [N, C, H, W], got {:?} {:?}", images.kind(), images.size())));
        }
        if labels.kind() != Kind::Int64 || labels.size() != [images.size()[0]] {
            return Err(bad(format!("labels must be int64 [{}] (one per image), got {:?} {:?}", images.size()[0], labels.kind(), labels.size())));
        }
        if num_classes == 0 {
            return Err(bad("it must have at least one class".to_string()));
        }
        if labels.numel() > 0 {
            let (lowest, highest) = (labels.min().int64_value(&[]), labels.max().int64_value(&[]));
            if lowest < 0 || highest >= num_classes as i64 {
                return Err(bad(format!("labels run from {lowest} to {highest}, outside 0..{num_classes}")));
            }
        }
        Ok(Dataset { name, images, labels, num_classes })
    }

    pub fn len(&self) -> usize {
        self.images.size()[0] as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `[C, H, W]`.
    pub fn image_shape(&self) -> [i64; 3] {
        let size = self.images.size();
        [size[1], size[2], size[3]]
    }

    pub fn device(&self) -> Device {
        self.images.device()
    }

    /// The labels as a host vector (copies them off the device if need be).
    pub fn label_vec(&self) -> Vec<i64> {
        Vec::<i64>::try_from(&self.labels.to_device(Device::Cpu)).expect("labels are int64 [N], checked in Dataset::new")
    }

    /// How many images each class has.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes];
        for label in self.label_vec() {
            counts[label as usize] += 1;
        }
        counts
    }

    /// The images at `indices`, in that order, as a new data set called `name`.
    pub fn subset(&self, name: impl Into<String>, indices: &[i64]) -> Dataset {
        let index = Tensor::from_slice(indices).to_device(self.device());
        Dataset {
            name: name.into(),
            images: self.images.index_select(0, &index),
            labels: self.labels.index_select(0, &index),
            num_classes: self.num_classes,
        }
    }

    /// `parts` one after another, as a new data set called `name`; they must share the image
    /// shape and the classes (the splits of one data set do).
    pub fn concat(name: impl Into<String>, parts: &[&Dataset]) -> Dataset {
        let first = parts.first().expect("at least one data set to concatenate");
        assert!(
            parts.iter().all(|part| part.image_shape() == first.image_shape() && part.num_classes == first.num_classes),
            "concatenated data sets share the image shape and the classes"
        );
        let images: Vec<&Tensor> = parts.iter().map(|part| &part.images).collect();
        let labels: Vec<&Tensor> = parts.iter().map(|part| &part.labels).collect();
        Dataset { name: name.into(), images: Tensor::cat(&images, 0), labels: Tensor::cat(&labels, 0), num_classes: first.num_classes }
    }

    /// The same data on `device` (storage shared where it is already there).
    pub fn to_device(&self, device: Device) -> Dataset {
        Dataset {
            name: self.name.clone(),
            images: self.images.to_device(device),
            labels: self.labels.to_device(device),
            num_classes: self.num_classes,
        }
    }
}

/// What file readers produce: pixels in `[N, C, H, W]` order and labels, before they become
/// tensors. Batches of one data set are appended to each other cheaply in this form.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageRecords {
    pub pixels: Vec<u8>,
    pub labels: Vec<i64>,
    /// `[C, H, W]`.
    pub image_shape: [usize; 3],
}

impl ImageRecords {
    pub fn new(image_shape: [usize; 3]) -> Self {
        ImageRecords { pixels: Vec::new(), labels: Vec::new(), image_shape }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image_size(&self) -> usize {
        self.image_shape.iter().product()
    }

    /// Adds `other`'s records after these; `other_path` names its file if the shapes differ.
    pub fn append(&mut self, other: ImageRecords, other_path: &Path) -> Result<(), DataError> {
        if other.image_shape != self.image_shape {
            return Err(DataError::bad_file(
                other_path,
                format!(
                    "images are {:?} (C, H, W) where the files before it had {:?}; the files are from different data sets",
                    other.image_shape, self.image_shape
                ),
            ));
        }
        self.pixels.extend_from_slice(&other.pixels);
        self.labels.extend_from_slice(&other.labels);
        Ok(())
    }

    pub fn into_dataset(self, name: impl Into<String>, num_classes: usize) -> Result<Dataset, DataError> {
        let [channels, height, width] = self.image_shape.map(|d| d as i64);
        let count = self.labels.len() as i64;
        assert_eq!(self.pixels.len(), self.labels.len() * self.image_size(), "readers keep pixels and labels in step");
        let images = Tensor::from_slice(&self.pixels).view([count, channels, height, width]);
        Dataset::new(name, images, Tensor::from_slice(&self.labels), num_classes)
    }
}

/// One split of a run's data: in memory, or image files streamed batch by batch.
#[derive(Debug, Clone)]
pub enum SplitData {
    Tensors(Dataset),
    Files(ImageFiles),
}

impl SplitData {
    pub fn name(&self) -> &str {
        match self {
            SplitData::Tensors(dataset) => &dataset.name,
            SplitData::Files(files) => &files.name,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            SplitData::Tensors(dataset) => dataset.len(),
            SplitData::Files(files) => files.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn num_classes(&self) -> usize {
        match self {
            SplitData::Tensors(dataset) => dataset.num_classes,
            SplitData::Files(files) => files.num_classes(),
        }
    }

    /// `[C, H, W]` of the network input: the stored images, or the transforms' output size.
    pub fn image_shape(&self) -> [i64; 3] {
        match self {
            SplitData::Tensors(dataset) => dataset.image_shape(),
            SplitData::Files(files) => {
                let size = i64::from(files.transforms.image_size);
                [3, size, size]
            }
        }
    }

    /// Where batches are served.
    pub fn device(&self) -> Device {
        match self {
            SplitData::Tensors(dataset) => dataset.device(),
            SplitData::Files(files) => files.device,
        }
    }

    pub fn label_vec(&self) -> Vec<i64> {
        match self {
            SplitData::Tensors(dataset) => dataset.label_vec(),
            SplitData::Files(files) => files.label_vec(),
        }
    }

    /// How many images each class has.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes()];
        for label in self.label_vec() {
            counts[label as usize] += 1;
        }
        counts
    }

    /// The data set in memory; `None` for image files.
    pub fn tensors(&self) -> Option<&Dataset> {
        match self {
            SplitData::Tensors(dataset) => Some(dataset),
            SplitData::Files(_) => None,
        }
    }

    /// `parts` one after another (the splits of one data set).
    pub fn concat(name: impl Into<String>, parts: &[&SplitData]) -> SplitData {
        let name = name.into();
        let datasets: Option<Vec<&Dataset>> = parts.iter().map(|part| part.tensors()).collect();
        if let Some(datasets) = datasets {
            return SplitData::Tensors(Dataset::concat(name, &datasets));
        }
        let files: Vec<&ImageFiles> = parts
            .iter()
            .map(|part| match part {
                SplitData::Files(files) => files,
                SplitData::Tensors(_) => panic!("the splits of one data set are all in memory or all files"),
            })
            .collect();
        SplitData::Files(ImageFiles::concat(name, &files))
    }
}

impl Clone for Dataset {
    /// Shares the tensors' storage (loaders never write to it).
    fn clone(&self) -> Self {
        Dataset { name: self.name.clone(), images: self.images.shallow_clone(), labels: self.labels.shallow_clone(), num_classes: self.num_classes }
    }
}

/// What the seeded splits and subsets need of a data set, in memory or as files.
pub trait LabelledImages: Sized {
    fn name(&self) -> &str;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn num_classes(&self) -> usize;
    fn label_vec(&self) -> Vec<i64>;
    fn subset(&self, name: String, indices: &[i64]) -> Self;
    /// The same images (storage shared), for "no subset needed".
    fn shared(&self) -> Self;
}

impl LabelledImages for Dataset {
    fn name(&self) -> &str {
        &self.name
    }
    fn len(&self) -> usize {
        Dataset::len(self)
    }
    fn num_classes(&self) -> usize {
        self.num_classes
    }
    fn label_vec(&self) -> Vec<i64> {
        Dataset::label_vec(self)
    }
    fn subset(&self, name: String, indices: &[i64]) -> Self {
        Dataset::subset(self, name, indices)
    }
    fn shared(&self) -> Self {
        self.clone()
    }
}

impl LabelledImages for ImageFiles {
    fn name(&self) -> &str {
        &self.name
    }
    fn len(&self) -> usize {
        ImageFiles::len(self)
    }
    fn num_classes(&self) -> usize {
        ImageFiles::num_classes(self)
    }
    fn label_vec(&self) -> Vec<i64> {
        ImageFiles::label_vec(self)
    }
    fn subset(&self, name: String, indices: &[i64]) -> Self {
        ImageFiles::subset(self, name, indices)
    }
    fn shared(&self) -> Self {
        self.clone()
    }
}
