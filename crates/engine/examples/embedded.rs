//! hybrid-search embedded in a program: create a collection with a dense model, add
//! documents, search both legs fused, and explain where each hit's score comes from.
//!
//! ```text
//! scripts/fetch-models.sh        # once: lays out models/all-MiniLM-L6-v2
//! cargo run --release -p hybrid-search --example embedded [-- MODEL_DIR]
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use hybrid_search::dense::{Device, Encoder};
use hybrid_search::{AnalyzerConfig, AnalyzerKind, Collection, DenseOptions, Document};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let model: PathBuf = match std::env::args().nth(1) {
        Some(dir) => dir.into(),
        None => hybrid_search::locate_model("all-MiniLM-L6-v2").ok_or(
            "no models/all-MiniLM-L6-v2 here: run scripts/fetch-models.sh or pass MODEL_DIR",
        )?,
    };
    let encoder = Arc::new(Encoder::load(&model, &Device::Cpu)?);
    let options = DenseOptions::for_encoder(&encoder);

    // A collection is a folder. `AnalyzerKind::Auto` would analyse Hangul with ko-dic
    // (scripts/fetch-ko-dic.sh); these documents are English.
    let dir = tempfile::tempdir()?;
    let mut collection = Collection::create_with(
        &dir.path().join("medical"),
        AnalyzerConfig::for_kind(AnalyzerKind::En),
        Some((encoder, options)),
    )?;
    let doc = |id: &str, title: &str, text: &str| Document {
        id: id.into(),
        title: title.into(),
        text: text.into(),
        vector: None,
        fields: Default::default(),
    };
    collection.add(
        &[
            doc(
                "il6",
                "Interleukin-6 in sepsis",
                "Serum IL-6 rises within hours of sepsis onset and predicts mortality.",
            ),
            doc(
                "crp",
                "C-reactive protein",
                "CRP is an acute-phase protein made by the liver in response to inflammation.",
            ),
            doc(
                "hba1c",
                "Glycated haemoglobin",
                "HbA1c reflects average blood glucose over two to three months.",
            ),
            doc(
                "statin",
                "Statins",
                "Statins lower LDL cholesterol and cardiovascular risk.",
            ),
        ],
        None,
    )?;

    // Hybrid is the default for a collection with a model: BM25 and the encoder, fused.
    let query = "which cytokine predicts death in septic patients";
    let results = collection.search(query, 3)?;
    println!("{query:?} ({:?})", results.mode);
    for hit in &results.hits {
        println!("  {:<7} {:.3}  {}", hit.id, hit.score, hit.title);
        for leg in &hit.legs {
            match (leg.rank, leg.raw_score) {
                (Some(rank), Some(raw)) => println!(
                    "          {:<6} rank {rank}, raw {raw:.3}, normalised {:.3}, adds {:.3}",
                    leg.leg.as_str(),
                    leg.normalized,
                    leg.contribution
                ),
                // A leg that missed the document still scores it (its lowest normalised score).
                _ => println!(
                    "          {:<6} not found, adds {:.3}",
                    leg.leg.as_str(),
                    leg.contribution
                ),
            }
        }
    }

    // One commit covers both legs; verify checks they agree.
    collection.delete(&["statin"])?;
    let report = collection.verify()?;
    println!(
        "{} documents, {:?} with vectors, sound: {}",
        report.documents,
        report.vectors,
        report.is_sound()
    );
    Ok(())
}
