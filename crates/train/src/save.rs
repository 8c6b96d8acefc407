//! Writing trained models as model directories.
//!
//! A directory is written into a sibling staging folder `.NAME.partial` and renamed to its
//! name at the end, so an interrupted save leaves no half-written model under the name a
//! user asked for. An existing non-empty output directory is never overwritten.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;

use hybrid_search_dense::{Error, Result};

/// Files and folders of a base model directory that are never copied to a trained one: the
/// weights (written anew, or in a format the trained model no longer matches), hidden files,
/// the base model's README (it describes the base model) and the base's own training record.
fn never_copied(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "model.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
        "pytorch_model.bin.index.json",
        "README.md",
        "training.json",
        "onnx",
        "openvino",
    ];
    const ENDINGS: &[&str] = &[".bin", ".h5", ".msgpack", ".ot", ".onnx", ".safetensors"];
    name.starts_with('.') || EXACT.contains(&name) || ENDINGS.iter().any(|e| name.ends_with(e))
}

/// Checks that `out` can receive a model and creates its staging folder, which is returned.
pub(crate) fn begin(out: &Path) -> Result<PathBuf> {
    let invalid = |message: String| Error::Model {
        path: out.to_path_buf(),
        message,
    };
    if out.exists() {
        if !out.is_dir() {
            return Err(invalid(
                "exists and is not a directory; choose another output path".into(),
            ));
        }
        let mut entries = std::fs::read_dir(out).map_err(|e| Error::io(out, e))?;
        if entries.next().is_some() {
            return Err(invalid(
                "already exists and is not empty; choose a new output directory \
                 (a trained model never overwrites one)"
                    .into(),
            ));
        }
    }
    let name = out
        .file_name()
        .ok_or_else(|| invalid("is not a usable directory name".into()))?;
    let staging = out.with_file_name(format!(".{}.partial", name.to_string_lossy()));
    if staging.exists() {
        // Left by an interrupted save of this same output.
        std::fs::remove_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
    }
    std::fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
    Ok(staging)
}

/// Moves the finished staging folder to `out`.
pub(crate) fn commit(staging: &Path, out: &Path) -> Result<()> {
    if out.is_dir() {
        // `begin` checked that it is empty.
        std::fs::remove_dir(out).map_err(|e| Error::io(out, e))?;
    }
    std::fs::rename(staging, out).map_err(|e| Error::io(out, e))
}

/// Copies the files and folders of the model directory `base` into `dest`, except the weights
/// (see `never_copied`) and what `skip` names.
pub(crate) fn copy_support_files(
    base: &Path,
    dest: &Path,
    skip: &dyn Fn(&str) -> bool,
) -> Result<()> {
    let entries = std::fs::read_dir(base).map_err(|e| Error::io(base, e))?;
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::io(base, e))?;
    paths.sort();
    for path in paths {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if never_copied(&name) || skip(&name) {
            continue;
        }
        copy_tree(&path, &dest.join(&name))?;
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    if from.is_dir() {
        std::fs::create_dir_all(to).map_err(|e| Error::io(to, e))?;
        for entry in std::fs::read_dir(from).map_err(|e| Error::io(from, e))? {
            let entry = entry.map_err(|e| Error::io(from, e))?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        std::fs::copy(from, to)
            .map(|_| ())
            .map_err(|e| Error::io(from, e))
    }
}

/// Writes `tensors` as a safetensors file.
pub(crate) fn write_safetensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    // Weights trained on a GPU are written from host memory.
    let on_cpu = tensors
        .iter()
        .map(|(name, t)| Ok((name.clone(), t.to_device(&candle_core::Device::Cpu)?)))
        .collect::<candle_core::Result<HashMap<_, _>>>()
        .map_err(|e| Error::candle(path, e))?;
    candle_core::safetensors::save(&on_cpu, path).map_err(|e| Error::candle(path, e))
}

/// Writes pretty-printed JSON.
pub(crate) fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Model {
        path: path.to_path_buf(),
        message: format!("cannot serialise ({e})"),
    })?;
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}
