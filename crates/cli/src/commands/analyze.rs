//! `hybrid-search analyze` and `build-ko-dic`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

use hybrid_search::sparse::Analyzer;

use crate::args::AnalyzerArgs;
use crate::render;

/// Show how text is analysed: one token per line (term, start byte, end byte, tag); with
/// `--splade DIR`, the text's learned-sparse (SPLADE) terms and weights instead.
#[derive(clap::Args)]
pub struct AnalyzeArgs {
    #[command(flatten)]
    analyzer: AnalyzerArgs,
    /// A SPLADE model folder (`models/splade-tiny`, laid out by scripts/fetch-models.sh):
    /// print the text's vocabulary terms with their weights, heaviest first.
    #[arg(long, value_name = "DIR")]
    splade: Option<PathBuf>,
    /// How the SPLADE model's matrices run.
    #[arg(long, value_enum, default_value = "int8", requires = "splade")]
    weights: hybrid_search::dense::WeightFormat,
    /// The text.
    text: String,
}

/// Build the ko-dic dictionary from MeCab-compiled mecab-ko-dic files (used by
/// scripts/fetch-ko-dic.sh).
#[derive(clap::Args)]
pub struct BuildKoDicArgs {
    /// Folder with sys.dic, unk.dic, matrix.bin and char.bin.
    #[arg(long)]
    mecab: PathBuf,
    /// Output folder; the dictionary goes to OUT/lindera.
    #[arg(long)]
    out: PathBuf,
}

/// Runs `analyze`.
pub fn analyze(args: &AnalyzeArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.splade {
        use std::io::Write;
        let encoder = hybrid_search::dense::SpladeEncoder::load(
            dir,
            &hybrid_search::dense::Device::Cpu,
            args.weights,
        )
        .with_context(|| format!("loading SPLADE model {}", dir.display()))?;
        let mut vector = encoder.encode(&[args.text.as_str()])?.remove(0);
        vector.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut out = std::io::stdout().lock();
        for (id, weight) in vector {
            let term = encoder.term(id).unwrap_or_default();
            writeln!(out, "{term}\t{weight:.4}")?;
        }
        return Ok(());
    }
    let analyzer = Analyzer::new(&args.analyzer.config()?)?;
    render::tokens(&analyzer.analyze(&args.text)?)
}

/// Runs `build-ko-dic`.
pub fn build_ko_dic(args: &BuildKoDicArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let stats = hybrid_search_kodic::build_ko_dic(&args.mecab, &args.out)
        .with_context(|| format!("building ko-dic from {}", args.mecab.display()))?;
    eprintln!(
        "ko-dic: {} entries, {} unknown-word entries, {} character categories -> {} ({:.1} s)",
        stats.lexicon_entries,
        stats.unknown_entries,
        stats.categories,
        args.out.join("lindera").display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
