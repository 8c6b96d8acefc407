//! Finding and loading the dense leg's model: the path the collection was built with first,
//! then the data folder and `models/` folders ([`crate::locate_model`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hybrid_search_dense::{Device, Encoder, PASSAGE_ENCODER_DIR, QUERY_ENCODER_DIR, WeightFormat};

use crate::collection::{Collection, Snapshot};
use crate::dense_leg::{ModelRecord, model_roots_with_env};
use crate::error::{Error, Result};
use crate::manifest::Mode;
use crate::search::Degraded;

/// Which model a command uses and how its matrices run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelChoice {
    /// The model directory; `None`: the one the collection records ([`model_candidates`]).
    pub dir: Option<PathBuf>,
    /// How the matrices run.
    pub weights: WeightFormat,
}

/// Loads the model directory `dir` on the CPU with `weights`.
///
/// # Errors
///
/// [`Error::InvalidOption`] for a directory of separate query and passage encoders (name one
/// of them), [`Error::Dense`] when the model cannot be loaded.
pub fn load_encoder(dir: &Path, weights: WeightFormat) -> Result<Arc<Encoder>> {
    let _span = tracing::info_span!("load_model", dir = %dir.display()).entered();
    if !dir.join("config.json").exists()
        && dir.join(QUERY_ENCODER_DIR).is_dir()
        && dir.join(PASSAGE_ENCODER_DIR).is_dir()
    {
        let d = dir.display();
        return Err(Error::InvalidOption(format!(
            "{}: a model with separate query and passage encoders (`train-dense --separate`); \
                 a collection holds one model's vectors: index with the passage encoder \
                 {d}/{PASSAGE_ENCODER_DIR} as the model and search with the query encoder \
                 {d}/{QUERY_ENCODER_DIR} as the query model",
            dir.display()
        )));
    }
    Ok(Arc::new(Encoder::load_with(dir, &Device::Cpu, weights)?))
}

/// Where the model of `record` is looked for, in order: the path recorded when the
/// collection was built, then `<root>/<name>` for each model folder (`$HYBRID_SEARCH_MODELS`,
/// the data folder `$HYBRID_SEARCH_HOME/models`, `models/` above the working directory and
/// above the executable).
pub fn model_candidates(record: &ModelRecord) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = record.path.iter().cloned().collect();
    for root in model_roots_with_env() {
        let dir = root.join(&record.name);
        if !out.contains(&dir) {
            out.push(dir);
        }
    }
    out
}

impl Snapshot {
    /// The folder of the dense leg's model: `dir` when given, else the first of
    /// [`model_candidates`] that exists; `None` for a collection without a dense leg (and no
    /// `dir`). Lets a caller that serves several collections load each model once and share it
    /// ([`Collection::attach_encoder`]).
    ///
    /// # Errors
    ///
    /// [`Error::NoDenseLeg`] when a model is named for a collection without a dense leg;
    /// [`Error::NoModel`] when none is found (the message lists where it looked).
    pub fn find_model(&self, dir: Option<&Path>) -> Result<Option<PathBuf>> {
        let Some(dense) = &self.manifest().dense else {
            return match dir {
                Some(dir) => Err(Error::NoDenseLeg(
                    self.dir().to_path_buf(),
                    format!(
                        "this collection has no dense leg, so model {} cannot be used with it; \
                         index the documents into a new collection built with a model",
                        dir.display()
                    ),
                )),
                None => Ok(None),
            };
        };
        if let Some(dir) = dir {
            return Ok(Some(dir.to_path_buf()));
        }
        let candidates = model_candidates(&dense.model);
        if let Some(dir) = candidates.iter().find(|d| d.is_dir()) {
            return Ok(Some(dir.clone()));
        }
        let looked: Vec<String> = candidates
            .iter()
            .take(5)
            .map(|d| d.display().to_string())
            .collect();
        Err(Error::NoModel(
            self.dir().to_path_buf(),
            format!(
                "built with model {}, which is not found (looked in {}{}); name the model's \
                 folder, or set {} to the folder holding models/ (scripts/fetch-models.sh lays \
                 out the standard models)",
                dense.model.name,
                looked.join(", "),
                if candidates.len() > 5 {
                    " and more"
                } else {
                    ""
                },
                hybrid_search_sparse::HOME_VAR
            ),
        ))
    }
}

impl Collection {
    /// Attaches the dense leg's model: `choice.dir`, else the first of [`model_candidates`]
    /// that exists ([`Snapshot::find_model`]). A collection without a dense leg needs none
    /// (`Ok` unless one is named).
    ///
    /// # Errors
    ///
    /// Those of [`Snapshot::find_model`]; [`Error::ModelMismatch`] when the model is not the
    /// one the vectors were made with; [`Error::Dense`] when it cannot load.
    pub fn attach_model(&mut self, choice: &ModelChoice) -> Result<()> {
        let Some(dir) = self.find_model(choice.dir.as_deref())? else {
            return Ok(());
        };
        let encoder = load_encoder(&dir, choice.weights)?;
        self.attach_encoder(encoder)
    }

    /// Attaches the model a search in `mode` needs (none for sparse unless named, none when
    /// the query is encoded by a separate `query_encoder` unless named). A model that was not
    /// named and cannot be attached does not fail a hybrid search: it is remembered, and
    /// hybrid searches fall back to BM25 with [`Degraded::ModelUnavailable`].
    ///
    /// # Errors
    ///
    /// Those of [`Collection::attach_model`], except in that hybrid case.
    pub fn attach_model_for_search(
        &mut self,
        choice: &ModelChoice,
        mode: Mode,
        query_encoder: bool,
    ) -> Result<()> {
        let needed = mode != Mode::Sparse && !query_encoder;
        if !needed && choice.dir.is_none() {
            return Ok(());
        }
        match self.attach_model(choice) {
            Ok(()) => Ok(()),
            Err(err) if mode == Mode::Hybrid && choice.dir.is_none() => {
                self.model_unavailable(&err);
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    /// Records that the dense leg's model could not be attached, and why (`cause`): hybrid
    /// searches then fall back to BM25 with [`Degraded::ModelUnavailable`], as after
    /// [`Collection::attach_model_for_search`] failed to find the model. For callers that find
    /// and load models themselves ([`Snapshot::find_model`]).
    pub fn model_unavailable(&mut self, cause: &Error) {
        self.current_mut().model_problem = Some(Degraded::ModelUnavailable {
            message: cause.to_string(),
        });
    }
}
