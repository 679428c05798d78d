//! `splitnas data check DIR`: what an image folder holds and which of its files a run would
//! skip, before a long run finds out.
//!
//! `DIR` is one image folder (class sub-folders), or a data set root holding `train/`,
//! `val/` and/or `test/` image folders, as `data.path` does; then each is checked as its
//! own split. Every image is decoded in full with the loader's own decoder (a header can be
//! intact while the data after it is truncated), on several threads.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

use super::image_folder::{read_rgb, scan_image_folder, FolderScan};
use super::DataError;

/// Split folders a data set root may hold, in the order they are reported.
pub const SPLIT_FOLDERS: &[&str] = &["train", "val", "test"];

/// Smallest, median and largest of a list of sizes (pixels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SizeRange {
    pub min: u32,
    pub median: u32,
    pub max: u32,
}

impl SizeRange {
    /// `None` for an empty list. The median of an even count is the lower middle value (a size
    /// that occurs).
    fn of(mut values: Vec<u32>) -> Option<SizeRange> {
        values.sort_unstable();
        let (&min, &max) = (values.first()?, values.last()?);
        Some(SizeRange { min, median: values[(values.len() - 1) / 2], max })
    }
}

/// One class folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClassCount {
    pub name: String,
    /// Files taken as images (by extension), readable or not.
    pub images: usize,
    pub unreadable: usize,
}

/// A file a run would skip, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnreadableFile {
    pub path: PathBuf,
    pub reason: String,
}

/// One image folder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitCheck {
    /// `train`, `val`, `test`, or the folder's own name when `DIR` is one image folder.
    pub name: String,
    pub path: PathBuf,
    pub classes: Vec<ClassCount>,
    pub images: usize,
    /// Of the readable images; `None` when none is readable.
    pub width: Option<SizeRange>,
    pub height: Option<SizeRange>,
    pub unreadable: Vec<UnreadableFile>,
    /// Files in class folders that are not taken as images (their extension is not one of
    /// `IMAGE_EXTENSIONS`); runs never read them.
    pub ignored: Vec<PathBuf>,
}

/// The whole check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FolderCheck {
    pub root: PathBuf,
    pub splits: Vec<SplitCheck>,
    /// Splits whose class names differ from the first split's: class indices would not match.
    pub class_mismatches: Vec<String>,
}

impl FolderCheck {
    pub fn unreadable_count(&self) -> usize {
        self.splits.iter().map(|split| split.unreadable.len()).sum()
    }

    /// True when a run would read every image and the splits agree on their classes.
    pub fn is_clean(&self) -> bool {
        self.unreadable_count() == 0 && self.class_mismatches.is_empty()
    }
}

/// The image folders to check under `root`: its `train/`, `val/`, `test/` when it has any of
/// them, else `root` itself.
pub fn split_folders(root: &Path) -> Vec<(String, PathBuf)> {
    let splits: Vec<(String, PathBuf)> =
        SPLIT_FOLDERS.iter().map(|name| (name.to_string(), root.join(name))).filter(|(_, path)| path.is_dir()).collect();
    if splits.is_empty() {
        let name = root.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_else(|| root.display().to_string());
        vec![(name, root.to_path_buf())]
    } else {
        splits
    }
}

/// Checks every image under `root` (see the module documentation) on `threads` threads (at
/// least 1). `progress(done, total)` is called now and then while images are decoded.
/// Fails only when a folder cannot be listed or is not an image folder at all.
pub fn check_image_folder(root: &Path, threads: usize, progress: &mut dyn FnMut(usize, usize)) -> Result<FolderCheck, DataError> {
    if !root.is_dir() {
        return Err(DataError::MissingFiles {
            path: root.to_path_buf(),
            what: "folder".to_string(),
            hint: "give an image folder (one sub-folder per class) or a folder holding train/ and val/".to_string(),
        });
    }
    let scans: Vec<(String, FolderScan)> =
        split_folders(root).into_iter().map(|(name, path)| Ok((name, scan_image_folder(&path)?))).collect::<Result<_, DataError>>()?;
    let total: usize = scans.iter().map(|(_, scan)| scan.files.len()).sum();
    let mut done = 0;
    let mut splits = Vec::new();
    for (name, scan) in scans {
        let decoded = decode_all(&scan, threads, &mut |finished| progress(done + finished, total));
        done += scan.files.len();
        splits.push(summarise(name, scan, decoded));
    }
    let class_mismatches = match splits.split_first() {
        Some((first, rest)) => {
            let names = |split: &SplitCheck| split.classes.iter().map(|class| class.name.clone()).collect::<Vec<_>>();
            rest.iter()
                .filter(|split| names(split) != names(first))
                .map(|split| {
                    format!(
                        "{} has {} classes and {} has {}, or their names differ: class indices would not match",
                        split.name,
                        split.classes.len(),
                        first.name,
                        first.classes.len()
                    )
                })
                .collect()
        }
        None => Vec::new(),
    };
    Ok(FolderCheck { root: root.to_path_buf(), splits, class_mismatches })
}

/// Each file's size, or why it cannot be read, in file order.
fn decode_all(scan: &FolderScan, threads: usize, progress: &mut dyn FnMut(usize)) -> Vec<Result<(u32, u32), String>> {
    let files = &scan.files;
    let threads = threads.max(1).min(files.len().max(1));
    let next = AtomicUsize::new(0);
    let finished = AtomicUsize::new(0);
    let mut results: Vec<Option<Result<(u32, u32), String>>> = vec![None; files.len()];
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (next, finished) = (&next, &finished);
                scope.spawn(move || {
                    let mut found = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(file) = files.get(index) else { break };
                        found.push((index, read_rgb(&file.path).map(|image| (image.width, image.height)).map_err(|failure| failure.reason)));
                        finished.fetch_add(1, Ordering::Relaxed);
                    }
                    found
                })
            })
            .collect();
        // Report progress from this thread while the workers decode.
        while workers.iter().any(|worker| !worker.is_finished()) {
            progress(finished.load(Ordering::Relaxed));
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        for worker in workers {
            for (index, result) in worker.join().expect("a decoding thread does not panic") {
                results[index] = Some(result);
            }
        }
    });
    progress(files.len());
    results.into_iter().map(|result| result.expect("every file was decoded")).collect()
}

fn summarise(name: String, scan: FolderScan, decoded: Vec<Result<(u32, u32), String>>) -> SplitCheck {
    let mut classes: Vec<ClassCount> = scan.class_names.iter().map(|name| ClassCount { name: name.clone(), images: 0, unreadable: 0 }).collect();
    let (mut widths, mut heights, mut unreadable) = (Vec::new(), Vec::new(), Vec::new());
    for (file, result) in scan.files.iter().zip(decoded) {
        let class = &mut classes[file.label as usize];
        class.images += 1;
        match result {
            Ok((width, height)) => {
                widths.push(width);
                heights.push(height);
            }
            Err(reason) => {
                class.unreadable += 1;
                unreadable.push(UnreadableFile { path: file.path.clone(), reason });
            }
        }
    }
    SplitCheck {
        name,
        path: scan.root,
        classes,
        images: scan.files.len(),
        width: SizeRange::of(widths),
        height: SizeRange::of(heights),
        unreadable,
        ignored: scan.ignored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{generate_image_folder, SyntheticOptions};

    fn write_png(path: &Path, width: u32, height: u32) {
        image::RgbImage::from_pixel(width, height, image::Rgb([10, 200, 30])).save(path).unwrap();
    }

    #[test]
    fn names_every_bad_file_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let options = SyntheticOptions { images: 8, classes: 2, width: 48, height: 32, quality: 90, seed: 1, val_fraction: 0.0 };
        generate_image_folder(dir.path(), &options, 1).unwrap();
        let train = dir.path().join("train");
        let good = train.join("n00000001/n00000001_00001.JPEG");
        let bytes = std::fs::read(&good).unwrap();
        let (cat, dog) = (train.join("n00000001"), train.join("n00000002"));
        let truncated = cat.join("truncated.jpg");
        std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
        // Bytes after the end-of-image marker (cameras append such data) are no truncation.
        let mut trailing = bytes.clone();
        trailing.extend_from_slice(b"appended by a camera");
        std::fs::write(cat.join("trailing.jpg"), trailing).unwrap();
        let empty = cat.join("empty.jpeg");
        std::fs::write(&empty, b"").unwrap();
        let text = dog.join("notes.jpg");
        std::fs::write(&text, b"this is not an image\n").unwrap();
        let readme = dog.join("README.txt");
        std::fs::write(&readme, b"ignored").unwrap();
        write_png(&dog.join("wide.png"), 200, 20);

        let mut calls = 0;
        let report = check_image_folder(dir.path(), 3, &mut |_, _| calls += 1).unwrap();
        assert!(calls > 0);
        assert_eq!(report.splits.len(), 1, "only train/ exists");
        let split = &report.splits[0];
        assert_eq!(split.name, "train");
        assert_eq!(split.images, 8 + 5);
        assert_eq!(
            split.classes,
            vec![
                ClassCount { name: "n00000001".into(), images: 7, unreadable: 2 },
                ClassCount { name: "n00000002".into(), images: 6, unreadable: 1 }
            ]
        );
        let reason = |path: &Path| {
            split
                .unreadable
                .iter()
                .find(|bad| bad.path == path)
                .unwrap_or_else(|| panic!("{} is reported: {:?}", path.display(), split.unreadable))
                .reason
                .clone()
        };
        assert!(reason(&truncated).contains("corrupt or truncated"), "{}", reason(&truncated));
        assert!(reason(&empty).contains("empty"), "{}", reason(&empty));
        assert!(reason(&text).contains("neither a JPEG nor a PNG"), "{}", reason(&text));
        assert_eq!(split.unreadable.len(), 3);
        assert_eq!(split.ignored, vec![readme]);
        // 9 readable 48×32 JPEGs and one 200×20 PNG.
        assert_eq!(split.width, Some(SizeRange { min: 48, median: 48, max: 200 }));
        assert_eq!(split.height, Some(SizeRange { min: 20, median: 32, max: 32 }));
        assert!(!report.is_clean());
        assert_eq!(report.unreadable_count(), 3);
    }

    #[test]
    fn checks_each_split_and_compares_their_classes() {
        let dir = tempfile::tempdir().unwrap();
        let options = SyntheticOptions { images: 12, classes: 3, width: 20, height: 16, quality: 80, seed: 2, val_fraction: 0.5 };
        generate_image_folder(dir.path(), &options, 1).unwrap();
        let report = check_image_folder(dir.path(), 1, &mut |_, _| {}).unwrap();
        assert_eq!(report.splits.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), vec!["train", "val"]);
        assert_eq!(report.splits.iter().map(|s| s.images).collect::<Vec<_>>(), vec![6, 6]);
        assert!(report.is_clean(), "{report:?}");
        // A class folder only val/ has: reported as a mismatch.
        let extra = dir.path().join("val/n00000009");
        std::fs::create_dir(&extra).unwrap();
        write_png(&extra.join("a.png"), 5, 5);
        let report = check_image_folder(dir.path(), 1, &mut |_, _| {}).unwrap();
        assert_eq!(report.class_mismatches.len(), 1, "{:?}", report.class_mismatches);
        assert!(report.class_mismatches[0].starts_with("val has 4 classes and train has 3"));
        // A single image folder given directly.
        let report = check_image_folder(&dir.path().join("val"), 2, &mut |_, _| {}).unwrap();
        assert_eq!(report.splits.len(), 1);
        assert_eq!(report.splits[0].name, "val");
        assert_eq!(report.splits[0].classes.len(), 4);
    }

    #[test]
    fn a_folder_without_classes_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let message = check_image_folder(&dir.path().join("missing"), 1, &mut |_, _| {}).unwrap_err().to_string();
        assert!(message.contains("missing"), "{message}");
        let message = check_image_folder(dir.path(), 1, &mut |_, _| {}).unwrap_err().to_string();
        assert!(message.contains("class folder"), "{message}");
    }

    #[test]
    fn the_median_is_a_value_that_occurs() {
        assert_eq!(SizeRange::of(vec![4, 1, 3, 2]), Some(SizeRange { min: 1, median: 2, max: 4 }));
        assert_eq!(SizeRange::of(vec![]), None);
    }
}
