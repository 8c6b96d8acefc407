//! What a collection is on disk: `manifest.json` (format version, analyzer, the dense model's
//! record, search defaults) and the engine's record carried by every sparse commit (next key,
//! the live vector segments). Both are written atomically; the commit record is switched by
//! the sparse leg's commit, which is the one durable point of a write.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use hybrid_search_fusion::Fusion;
use hybrid_search_sparse::{AnalyzerConfig, FieldSchema};

use crate::dense_leg::{self, DenseManifest, SegmentRecord};
use crate::error::{Error, Result};

/// The on-disk format version this code writes: 4, documents with fields (their types in the
/// manifest, their values in the sparse index). Versions 1 (no dense leg), 2 (one vector file
/// per commit) and 3 (vector segments listed in each commit, no fields) are still read, and a
/// write upgrades them to 4, so a build that would drop the manifest's fields refuses the
/// collection instead.
pub const FORMAT_VERSION: u32 = 4;

pub(crate) const MANIFEST: &str = "manifest.json";

/// Collections made before the analysis version was recorded were analysed by version 1.
fn analysis_version_1() -> u32 {
    1
}

/// `manifest.json`: what a collection is and how its text is analysed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// On-disk format version.
    pub format_version: u32,
    /// Analyzer settings used for both documents and queries.
    pub analyzer: AnalyzerConfig,
    /// The version of hybrid-search that created the collection.
    pub created_by: String,
    /// The fingerprint of the Korean dictionary the documents were analysed with
    /// ([`hybrid_search_sparse::ko_dic_fingerprint`]); absent for the `en` analyzer and for
    /// collections made before it was recorded. Opening the collection with another
    /// dictionary is an error ([`Error::DictionaryMismatch`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dictionary: Option<String>,
    /// The analysis rules the documents were indexed with
    /// ([`hybrid_search_sparse::ANALYSIS_VERSION`]; 1 for collections that record none).
    /// Opening a collection of another version warns: its queries are analysed by the current
    /// rules.
    #[serde(default = "analysis_version_1")]
    pub analysis: u32,
    /// The dense leg, when the collection was built with a model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dense: Option<DenseManifest>,
    /// Search defaults (the tuned fusion settings), when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchDefaults>,
    /// The documents' fields and their types, in the order first seen (a field's type is
    /// fixed by its first value). Written before the commit that brings a new field.
    #[serde(default, skip_serializing_if = "FieldSchema::is_empty")]
    pub fields: FieldSchema,
}

/// Which leg answers a search.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// BM25 over the analysed text.
    #[default]
    Sparse,
    /// Nearest passages to the query's vector.
    Dense,
    /// Both legs, fused ([`HybridOptions`]).
    #[cfg_attr(feature = "clap", value(help = "Both legs, fused"))]
    Hybrid,
}

impl Mode {
    /// The lowercase name (`sparse`, `dense`, `hybrid`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Sparse => "sparse",
            Mode::Dense => "dense",
            Mode::Hybrid => "hybrid",
        }
    }
}

/// How the hybrid mode blends the legs.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HybridOptions {
    /// The fusion method and its settings.
    pub fusion: Fusion,
    /// Candidates taken from each leg (at least the number of results asked for).
    pub depth: usize,
}

impl Default for HybridOptions {
    /// [`crate::defaults::fusion_tuned_on_scifact_train`].
    fn default() -> Self {
        crate::defaults::fusion_tuned_on_scifact_train()
    }
}

/// How the collection answers a search when the caller does not say: stored in the manifest
/// by [`Collection::set_search_defaults`](crate::Collection::set_search_defaults) (`hybrid-search tune`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchDefaults {
    /// The fusion settings of the hybrid mode.
    pub hybrid: HybridOptions,
    /// Pseudo-relevance feedback for each leg (off unless tuned or set).
    #[serde(default, skip_serializing_if = "crate::Prf::is_off")]
    pub prf: crate::Prf,
    /// Where the settings come from, when tuned on labelled queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuned: Option<TuneRecord>,
}

/// The labelled queries a collection's fusion settings were tuned on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuneRecord {
    /// The dataset (as given on the command line).
    pub dataset: String,
    /// Its split.
    pub split: String,
    /// Queries evaluated.
    pub queries: usize,
    /// Settings tried.
    pub tried: usize,
    /// nDCG@10 of the chosen settings on those queries.
    pub ndcg_at_10: f64,
}

/// The engine's record stored as the payload of every sparse commit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct CommitRecord {
    /// The next internal key to hand out.
    pub(crate) next_key: u64,
    /// Format 2: the generation of the one vector file this commit goes with (read only; it
    /// becomes the single entry of `segments`).
    #[serde(default, skip_serializing)]
    pub(crate) dense_generation: Option<u64>,
    /// The live vector segments, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) segments: Vec<SegmentRecord>,
    /// The id of the next segment file.
    #[serde(default)]
    pub(crate) next_segment: u64,
}

impl CommitRecord {
    /// Reads a commit's payload, turning a format 2 record into a one-segment list (its file
    /// listed with `legacy_keys` keys: the live documents, which it held).
    pub(crate) fn parse(
        payload: Option<&str>,
        dir: &Path,
        kind: Option<dense_leg::VectorKind>,
        legacy_keys: u64,
    ) -> Result<Self> {
        let Some(payload) = payload else {
            return Ok(Self::default());
        };
        let mut record: CommitRecord =
            serde_json::from_str(payload).map_err(|e| Error::Commit {
                path: dir.to_path_buf(),
                message: format!(
                    "the last commit's record is unreadable ({e}); rebuild the collection"
                ),
            })?;
        if let (Some(generation), Some(kind)) = (record.dense_generation.take(), kind)
            && record.segments.is_empty()
        {
            record.segments.push(SegmentRecord {
                file: dense_leg::legacy_file(kind, generation),
                keys: legacy_keys,
            });
        }
        Ok(record)
    }

    pub(crate) fn payload(&self) -> String {
        serde_json::to_string(self).expect("record serialises")
    }
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    let file = fs::File::open(&tmp).map_err(|e| Error::io(&tmp, e))?;
    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

pub(crate) fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<()> {
    let json = serde_json::to_vec_pretty(manifest).expect("manifest serialises");
    write_atomic(&dir.join(MANIFEST), &json)
}

pub(crate) fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST);
    if !path.is_file() {
        return Err(Error::NotACollection(dir.to_path_buf()));
    }
    let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| Error::Manifest {
        path: path.clone(),
        message: format!("not a valid manifest ({e}); the collection must be rebuilt"),
    })?;
    if !(1..=FORMAT_VERSION).contains(&manifest.format_version) {
        return Err(Error::Manifest {
            path,
            message: format!(
                "format version {} is not supported by this build (version {FORMAT_VERSION}); \
                 use a matching hybrid-search or rebuild the collection",
                manifest.format_version
            ),
        });
    }
    Ok(manifest)
}
