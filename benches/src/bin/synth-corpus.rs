//! A deterministic synthetic collection for the scale benchmark (`benches/scale.sh`).
//!
//! Words are drawn with a Zipf law (exponent 1, as in natural text) over the vocabulary of the
//! real English corpora in `../shared/data` (SciFact and Cranfield, ranked by frequency);
//! passages have 20 to 80 words and titles 3 to 8. Each document carries a 384-dimensional
//! unit vector drawn around one of 1,000 cluster centres (centre plus Gaussian noise, then
//! normalised), so HNSW sees clustered data as real embeddings are. Queries are 2 to 6 words
//! drawn from the same law without its 100 most frequent words.
//!
//! ```text
//! cargo run --release -p hybrid-search-benches --bin synth-corpus -- DOCS OUT [SEED] [--fields]
//! ```
//!
//! With `--fields` every document also carries five fields (`benches/filters.sh`), drawn from
//! a second generator so the text and vectors are those written without the flag: `source`
//! (one of 8 strings), `year` (an integer, 1990 to 2024), `tags` (1 to 3 of 20 strings),
//! `published` (a date in that year) and `bucket` (an integer uniform over 0..10,000, so
//! `{"field": "bucket", "lt": 10000 s}` matches a share `s` of the documents).
//!
//! writes `OUT/corpus.jsonl` (with `"vector"`), `OUT/corpus-text.jsonl` (the same documents
//! without vectors, for a sparse-only collection), `OUT/queries/` (a BEIR folder with 200
//! queries for `hybrid-speed`), and `OUT/add-1.jsonl`, `OUT/add-1000.jsonl` (new documents for
//! the `add` measurements). The same arguments always write the same files.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use hybrid_search::dense::SplitMix64;

const DIM: usize = 384;
const CENTRES: usize = 1000;
const VOCABULARY: usize = 50_000;

/// The corpus's draws from the project's seeded generator.
struct Rng(SplitMix64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0.uniform()
    }
    fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n
    }
    /// A standard normal draw (Box-Muller).
    fn normal(&mut self) -> f32 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }
}

/// Words of the real corpora, most frequent first.
fn vocabulary(data: &Path) -> Vec<String> {
    let mut counts: HashMap<String, u64> = HashMap::new();
    for corpus in ["scifact/corpus.jsonl", "cranfield/corpus.jsonl"] {
        let path = data.join(corpus);
        let docs = hybrid_search::eval::read_corpus(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for d in docs {
            for word in d.title.split_whitespace().chain(d.text.split_whitespace()) {
                let w: String = word
                    .trim_matches(|c: char| !c.is_alphanumeric())
                    .to_lowercase();
                if !w.is_empty() {
                    *counts.entry(w).or_insert(0) += 1;
                }
            }
        }
    }
    let mut words: Vec<(String, u64)> = counts.into_iter().collect();
    words.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    words.truncate(VOCABULARY);
    words.into_iter().map(|(w, _)| w).collect()
}

/// Cumulative Zipf weights 1/rank over `n` ranks.
fn zipf_cdf(n: usize) -> Vec<f64> {
    let mut cdf = Vec::with_capacity(n);
    let mut total = 0.0;
    for rank in 1..=n {
        total += 1.0 / rank as f64;
        cdf.push(total);
    }
    cdf.iter_mut().for_each(|x| *x /= total);
    cdf
}

fn draw(cdf: &[f64], rng: &mut Rng) -> usize {
    let u = rng.uniform();
    cdf.partition_point(|&x| x < u).min(cdf.len() - 1)
}

fn words(vocab: &[String], cdf: &[f64], rng: &mut Rng, n: usize, skip: usize) -> String {
    let mut out = String::new();
    for i in 0..n {
        if i > 0 {
            out.push(' ');
        }
        let mut w = draw(cdf, rng);
        while w < skip {
            w = draw(cdf, rng);
        }
        out.push_str(&vocab[w]);
    }
    out
}

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

struct Generator {
    vocab: Vec<String>,
    cdf: Vec<f64>,
    centres: Vec<Vec<f32>>,
}

impl Generator {
    fn document(&self, id: &str, rng: &mut Rng) -> (serde_json::Value, Vec<f32>) {
        let n = 3 + rng.below(6);
        let title = words(&self.vocab, &self.cdf, rng, n, 0);
        let n = 20 + rng.below(61);
        let text = words(&self.vocab, &self.cdf, rng, n, 0);
        let centre = &self.centres[rng.below(CENTRES)];
        let vector = unit(centre.iter().map(|c| c + 0.05 * rng.normal()).collect());
        (
            serde_json::json!({"_id": id, "title": title, "text": text}),
            vector,
        )
    }
}

const SOURCES: [&str; 8] = [
    "pubmed", "pmc", "arxiv", "trials", "wiki", "news", "patents", "books",
];

/// The five fields of one document.
fn fields(rng: &mut Rng) -> serde_json::Value {
    let year = 1990 + rng.below(35);
    let tags: Vec<String> = (0..1 + rng.below(3))
        .map(|_| format!("t{}", rng.below(20)))
        .collect();
    serde_json::json!({
        "source": SOURCES[rng.below(SOURCES.len())],
        "year": year,
        "tags": tags,
        "published": format!("{year}-{:02}-{:02}", 1 + rng.below(12), 1 + rng.below(28)),
        "bucket": rng.below(10_000),
    })
}

fn line(doc: &serde_json::Value, vector: Option<&[f32]>) -> String {
    let mut doc = doc.clone();
    if let Some(v) = vector {
        // Five decimals keep the file small; the engine normalises what it stores anyway.
        let rounded: Vec<f64> = v.iter().map(|x| (*x as f64 * 1e5).round() / 1e5).collect();
        doc["vector"] = serde_json::json!(rounded);
    }
    format!("{doc}\n")
}

fn main() {
    let mut args: Vec<String> = std::env::args().collect();
    let with_fields = args.iter().any(|a| a == "--fields");
    args.retain(|a| a != "--fields");
    if args.len() < 3 {
        eprintln!("usage: synth-corpus DOCS OUT [SEED] [--fields]");
        std::process::exit(2);
    }
    let docs: usize = args[1].parse().expect("DOCS is a number");
    let out = PathBuf::from(&args[2]);
    let seed: u64 = args
        .get(3)
        .map_or(42, |s| s.parse().expect("SEED is a number"));
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    let vocab = vocabulary(&data);
    let cdf = zipf_cdf(vocab.len());
    let mut rng = Rng(SplitMix64::new(seed));
    let centres = (0..CENTRES)
        .map(|_| unit((0..DIM).map(|_| rng.normal()).collect()))
        .collect();
    let generator = Generator {
        vocab,
        cdf,
        centres,
    };
    std::fs::create_dir_all(out.join("queries/qrels")).unwrap();
    let create = |name: &str| BufWriter::new(std::fs::File::create(out.join(name)).unwrap());
    let (mut with, mut text_only) = (create("corpus.jsonl"), create("corpus-text.jsonl"));
    let mut field_rng = Rng(SplitMix64::new(seed ^ 0xF1E1_D5F1_E1D5));
    for i in 0..docs {
        let (mut doc, vector) = generator.document(&format!("d{i}"), &mut rng);
        if with_fields {
            for (key, value) in fields(&mut field_rng).as_object().unwrap() {
                doc[key] = value.clone();
            }
        }
        with.write_all(line(&doc, Some(&vector)).as_bytes())
            .unwrap();
        text_only.write_all(line(&doc, None).as_bytes()).unwrap();
    }
    with.flush().unwrap();
    text_only.flush().unwrap();
    for (name, n) in [("add-1.jsonl", 1), ("add-1000.jsonl", 1000)] {
        let mut file = create(name);
        for i in 0..n {
            let (doc, vector) = generator.document(&format!("{name}-{i}"), &mut rng);
            file.write_all(line(&doc, Some(&vector)).as_bytes())
                .unwrap();
        }
    }
    let mut queries = create("queries/queries.jsonl");
    let mut qrels = create("queries/qrels/test.tsv");
    writeln!(qrels, "query-id\tcorpus-id\tscore").unwrap();
    for q in 0..200 {
        let n = 2 + rng.below(5);
        let text = words(&generator.vocab, &generator.cdf, &mut rng, n, 100);
        writeln!(
            queries,
            "{}",
            serde_json::json!({"_id": format!("q{q}"), "text": text})
        )
        .unwrap();
        writeln!(qrels, "q{q}\td0\t1").unwrap();
    }
    // hybrid-speed reads the folder as a BEIR dataset: a one-document corpus is enough.
    std::fs::write(
        out.join("queries/corpus.jsonl"),
        "{\"_id\": \"d0\", \"title\": \"\", \"text\": \"placeholder\"}\n",
    )
    .unwrap();
    eprintln!("wrote {docs} documents to {}", out.display());
}
