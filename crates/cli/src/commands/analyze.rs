//! `hybrid-search analyze` and `build-ko-dic`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

use hybrid_search::sparse::Analyzer;

use crate::args::AnalyzerArgs;
use crate::render;

/// Show how text is analysed: one token per line (term, start byte, end byte, tag).
#[derive(clap::Args)]
pub struct AnalyzeArgs {
    #[command(flatten)]
    analyzer: AnalyzerArgs,
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
