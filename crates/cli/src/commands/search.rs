//! `hybrid-search search`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use hybrid_search::defaults::RESULTS;
use hybrid_search::dense::{CrossEncoder, Device};
use hybrid_search::{Collection, FieldSelection, Rerank, SearchRequest, load_encoder};
use hybrid_search_qdrant::{Client, QdrantLegs};

use crate::args::{SearchArgs, SearchPlan};
use crate::render;

/// Search a collection.
#[derive(clap::Args)]
pub struct Args {
    /// The collection folder.
    #[arg(long)]
    index: PathBuf,
    #[command(flatten)]
    search: SearchArgs,
    /// Number of results.
    #[arg(short, default_value_t = RESULTS)]
    k: usize,
    /// Skip this many results first (page p of k results: --offset p*k).
    #[arg(long, default_value_t = 0)]
    offset: usize,
    /// Show these with each hit, comma-separated: text (the full text), a field's name, or *
    /// (every field and the text).
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    fields: Vec<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Show each leg's raw score, rank, normalised score and share of every hit's score.
    #[arg(long)]
    explain: bool,
    /// The query's vector as a JSON array (the collection's model dimensions), used by
    /// the dense leg instead of encoding the query text.
    #[arg(long, value_name = "JSON_ARRAY")]
    vector: Option<String>,
    /// The query (may be left out with --vector in dense mode).
    #[arg(required_unless_present = "vector")]
    query: Option<String>,
}

/// A query vector given on the command line as a JSON array of numbers.
fn parse_vector(text: &str) -> anyhow::Result<Vec<f32>> {
    let values: Vec<f64> = serde_json::from_str(text).with_context(|| {
        "--vector: expected a JSON array of numbers, such as [0.1, -0.2, 0.3]".to_string()
    })?;
    let vector =
        hybrid_search::vector_from_f64(&values).map_err(|e| anyhow::anyhow!("--vector: {e}"))?;
    if vector.is_empty() {
        anyhow::bail!("--vector: the array is empty");
    }
    Ok(vector)
}

/// Opens the collection in `index` for the searches `plan` describes: the models it needs
/// loaded (a model that was not named and cannot be found leaves hybrid searches to BM25,
/// which they report), and the request every search starts from.
pub fn open(index: &Path, plan: &SearchPlan) -> anyhow::Result<(Collection, SearchRequest)> {
    let mut collection = Collection::open(index)?;
    render::warnings(collection.take_warnings());
    let mut request = SearchRequest::new("", RESULTS)
        .with_mode_or_default(plan.mode)
        .with_fusion(plan.fusion)
        .with_filter(plan.filter.clone());
    if let Some(prf) = plan.prf {
        request = request.with_prf(prf);
    }
    // What can be refused without the models is refused before any loads: fusion flags that do
    // not fit the collection's settings, a query model the collection cannot use.
    let mode = collection.resolve(&request)?.mode;
    if let Some(dir) = &plan.query_model {
        collection.check_query_model(mode, dir, None)?;
        let encoder = load_encoder(dir, plan.model.weights)
            .with_context(|| format!("loading query model {}", dir.display()))?;
        collection.check_query_model(mode, dir, Some(encoder.description().dim))?;
        request = request.with_query_encoder(encoder);
    }
    if let Some((dir, options)) = &plan.rerank {
        let model =
            CrossEncoder::load_with(dir, &Device::Cpu, plan.model.weights).with_context(|| {
                format!(
                    "loading reranker {} (a cross-encoder directory written by \
                 `hybrid-search train-reranker`)",
                    dir.display()
                )
            })?;
        request = request.with_rerank(Rerank {
            model: Arc::new(model),
            options: *options,
        });
    }
    collection.attach_model_for_search(&plan.model, mode, request.query_encoder().is_some())?;
    if let Some(q) = &plan.qdrant {
        let client = Client::connect(q.target.clone())?;
        let (legs, warnings) = QdrantLegs::new(client, &collection, q.options)?;
        for w in warnings {
            eprintln!("warning: {w}");
        }
        request = request.with_legs(Arc::new(legs));
    }
    Ok((collection, request))
}

/// Runs `search`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let plan = args.search.plan()?;
    let vector = args.vector.as_deref().map(parse_vector).transpose()?;
    let query = args.query.as_deref().unwrap_or("");
    let (collection, template) = open(&args.index, &plan)?;
    let mut request = template
        .with_query(query)
        .with_k(args.k)
        .with_offset(args.offset)
        .with_fields(FieldSelection::new(args.fields.iter().map(|f| f.trim())))
        .with_explain(args.explain);
    if let Some(vector) = vector {
        request = request.with_vector(vector);
    }
    let results = collection.run(&request)?;
    render::search(
        query,
        &results,
        args.offset + args.k,
        (args.json, args.explain, args.offset),
    )
}
