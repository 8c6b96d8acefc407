//! Training from the command line on the tiny random model (no download): `train-dense` writes
//! a model directory that `index --model` takes and whose loss went down, separate encoders
//! are searched with `--query-model`, `train-reranker` writes a cross-encoder that
//! `search --rerank` and `eval --rerank` use, and bad flags are refused with what to do.

mod common;

use std::path::{Path, PathBuf};

use common::{beir_fixture, err, fixture, hit_ids, index_with_model, ok, s};
use hybrid_search::dense::{Architecture, TinyDecoder, TinyModel};

/// The tiny model, the fixture corpus indexed with it (both legs) and a BEIR folder over the
/// same corpus with ten labelled English queries in `train` and three in `test`.
struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    model: PathBuf,
    index: PathBuf,
    beir: PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let (model, index) = (root.join("tiny"), root.join("idx"));
    TinyModel::default().write(&model).unwrap();
    index_with_model(&index, &model, &[]);
    // Each query shares a word with other documents, so BM25 finds hard negatives for all.
    let queries = [
        ("q01", "il-6 sepsis mortality", "en-01"),
        ("q02", "il-6 receptor covid-19 tocilizumab", "en-02"),
        ("q03", "hba1c blood glucose diabetes", "en-03"),
        ("q04", "metformin glucose diabetes", "en-04"),
        ("q05", "tnf inhibitors disease antibodies", "en-05"),
        ("q06", "p53 tumour disease", "en-06"),
        ("q07", "serotonin receptor antagonist", "en-07"),
        ("q08", "covid-19 vaccines trials", "en-08"),
        ("q09", "statins lower cholesterol", "en-09"),
        ("q10", "hypertension blood pressure patients", "en-10"),
        ("q11", "il-6 receptor", "en-02"),
        ("q12", "blood glucose", "en-03"),
        ("q13", "lower cholesterol", "en-09"),
    ];
    let pairs = |range: std::ops::Range<usize>| -> Vec<(&str, &str)> {
        queries[range].iter().map(|(q, _, d)| (*q, *d)).collect()
    };
    let texts: Vec<(&str, &str)> = queries.iter().map(|(q, t, _)| (*q, *t)).collect();
    let (train, test) = (pairs(0..10), pairs(10..queries.len()));
    let beir = beir_fixture(&root, &texts, &[("train", &train), ("test", &test)]);
    Setup {
        _tmp: tmp,
        root,
        model,
        index,
        beir,
    }
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn losses(v: &serde_json::Value) -> Vec<f64> {
    v["epoch_losses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_f64().unwrap())
        .collect()
}

fn train_dense(t: &Setup, out: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "train-dense",
        "--base",
        s(&t.model),
        "--dataset",
        s(&t.beir),
        "--out",
        s(out),
        "--batch-size",
        "4",
        "--lr",
        "1e-3",
        "--seed",
        "3",
    ];
    args.extend_from_slice(extra);
    ok(&args)
}

fn train_reranker(t: &Setup, out: &Path) -> serde_json::Value {
    json(&ok(&[
        "train-reranker",
        "--base",
        s(&t.model),
        "--dataset",
        s(&t.beir),
        "--out",
        s(out),
        "--index",
        s(&t.index),
        "--hard-negatives",
        "3",
        "--epochs",
        "12",
        "--batch-size",
        "4",
        "--lr",
        "5e-3",
        "--seed",
        "3",
        "--json",
    ]))
}

/// Indexes the fixture corpus with the trained `model` into `name` (under the test's root) and
/// checks that a dense search with it answers ten hits.
fn index_and_search_dense(t: &Setup, model: &Path, name: &str) {
    let index = t.root.join(name);
    ok(&[
        "index",
        "--index",
        s(&index),
        "--dataset",
        &fixture("medical.jsonl"),
        "--model",
        s(model),
    ]);
    let hits = json(&ok(&[
        "search",
        "--index",
        s(&index),
        "--model",
        s(model),
        "--mode",
        "dense",
        "--json",
        "metformin",
    ]));
    assert_eq!(hits["mode"], "dense");
    assert_eq!(hit_ids(&hits).len(), 10);
}

#[test]
fn train_dense_lowers_the_loss_and_writes_a_model_that_index_takes() {
    let t = setup();
    let out = t.root.join("trained");
    let v = json(&train_dense(
        &t,
        &out,
        &[
            "--index",
            s(&t.index),
            "--hard-negatives",
            "2",
            "--epochs",
            "2",
            "--checkpoints",
            "--json",
        ],
    ));
    assert_eq!(v["examples"], 10, "{v}");
    assert_eq!(v["queries"], 10, "{v}");
    assert_eq!(v["hard_negatives"], 2, "{v}");
    assert_eq!(v["examples_with_negatives"], 10, "{v}");
    assert_eq!(v["layout"], "shared", "{v}");
    assert_eq!(v["steps"], 6, "2 epochs of 3 batches: {v}");
    let epochs = losses(&v);
    assert_eq!(epochs.len(), 2);
    assert!(
        epochs[1] < epochs[0],
        "the loss did not go down: {epochs:?}"
    );
    // The model directory records the run.
    let record = json(&std::fs::read_to_string(out.join("training.json")).unwrap());
    assert_eq!(record["kind"], "dense");
    assert_eq!(record["config"]["hard_negatives_per_query"], 2);
    assert_eq!(record["report"]["epoch_losses"], v["epoch_losses"]);
    // --checkpoints: the model after epoch 1 beside it, recording that epoch alone.
    let epoch1 = t.root.join("trained-epoch1");
    assert_eq!(
        v["checkpoints"],
        serde_json::json!([epoch1.display().to_string()])
    );
    let record = json(&std::fs::read_to_string(epoch1.join("training.json")).unwrap());
    assert_eq!(record["report"]["epoch_losses"][0], v["epoch_losses"][0]);
    assert_eq!(
        record["report"]["epoch_losses"].as_array().unwrap().len(),
        1
    );

    // `index --model` takes it, and dense search answers with it.
    index_and_search_dense(&t, &out, "idx-trained");

    // Text output: one line per epoch, the time, where it went; without --index, in-batch
    // negatives only.
    let text = train_dense(&t, &t.root.join("plain"), &["--epochs", "2"]);
    assert!(text.contains("negatives   in-batch only"), "{text}");
    assert!(
        text.contains("epoch 1     loss ") && text.contains("epoch 2     loss "),
        "{text}"
    );
    assert!(
        text.contains("time        ") && text.contains("saved       "),
        "{text}"
    );
}

#[test]
fn train_dense_takes_a_decoder_llm_and_writes_a_model_that_index_takes() {
    let t = setup();
    let base = t.root.join("tiny-llm");
    TinyDecoder::new(Architecture::Llama).write(&base).unwrap();
    let out = t.root.join("llm-trained");
    let args = [
        "train-dense",
        "--base",
        s(&base),
        "--dataset",
        s(&t.beir),
        "--out",
        s(&out),
        "--index",
        s(&t.index),
        "--batch-size",
        "4",
        "--micro-batch",
        "2",
        "--decoder-layers",
        "1",
        "--epochs",
        "3",
        "--lr",
        "1e-3",
        "--seed",
        "3",
        "--json",
    ];
    let v = json(&ok(&args));
    assert_eq!(v["examples"], 10, "{v}");
    assert_eq!(v["hard_negatives"], 1, "{v}");
    let epochs = losses(&v);
    assert!(
        epochs[2] < epochs[0],
        "the loss did not go down: {epochs:?}"
    );
    let record = json(&std::fs::read_to_string(out.join("training.json")).unwrap());
    assert_eq!(record["config"]["decoder_layers"], 1, "{record}");

    // The trained decoder indexes and answers dense searches like a trained BERT.
    index_and_search_dense(&t, &out, "idx-llm");

    // The cross-encoder trainer takes BERT only, and says so.
    let e = err(&[
        "train-reranker",
        "--base",
        s(&base),
        "--dataset",
        s(&t.beir),
        "--out",
        s(&t.root.join("llm-reranker")),
        "--index",
        s(&t.index),
    ]);
    assert!(e.contains("not a model directory"), "{e}");
}

#[test]
fn separate_encoders_index_the_passage_side_and_search_with_the_query_side() {
    let t = setup();
    let out = t.root.join("dpr");
    let v = json(&train_dense(
        &t,
        &out,
        &["--separate", "--index", s(&t.index), "--json"],
    ));
    assert_eq!(v["layout"], "separate", "{v}");
    let (query, passage) = (out.join("query_encoder"), out.join("passage_encoder"));
    assert!(query.join("config.json").is_file() && passage.join("config.json").is_file());

    // The pair as one --model: refused with what to do.
    let index = t.root.join("idx-dpr");
    let corpus = fixture("medical.jsonl");
    let e = err(&[
        "index",
        "--index",
        s(&index),
        "--dataset",
        &corpus,
        "--model",
        s(&out),
    ]);
    assert!(
        e.contains("separate query and passage encoders") && e.contains("as the query model"),
        "{e}"
    );
    ok(&[
        "index",
        "--index",
        s(&index),
        "--dataset",
        &corpus,
        "--model",
        s(&passage),
    ]);
    let search = |extra: &[&str]| {
        let mut args = vec!["search", "--index", s(&index), "--json"];
        args.extend_from_slice(extra);
        args.push("metformin");
        json(&ok(&args))
    };
    let q = search(&["--query-model", s(&query)]);
    assert_eq!(q["mode"], "hybrid");
    assert!(q.get("degraded").is_none(), "{q}");
    let dense = search(&["--query-model", s(&query), "--mode", "dense"]);
    assert_eq!(hit_ids(&dense).len(), 10);
    // Queries encoded by the query encoder rank differently from the passage encoder's.
    let same = search(&["--model", s(&passage), "--mode", "dense"]);
    assert_ne!(dense["hits"], same["hits"]);

    let out = ok(&[
        "eval",
        "--index",
        s(&index),
        "--dataset",
        s(&t.beir),
        "--split",
        "test",
        "--query-model",
        s(&query),
        "--json",
    ]);
    let eval = json(&out);
    assert_eq!(eval["queries"], 3);
    assert_eq!(eval["degraded_queries"], 0, "{eval}");
    assert_eq!(eval["query_model"], s(&query));

    let e = err(&[
        "search",
        "--index",
        s(&index),
        "--mode",
        "sparse",
        "--query-model",
        s(&query),
        "metformin",
    ]);
    assert!(e.contains("--query-model: applies to"), "{e}");
}

#[test]
fn reranker_trains_and_reorders_only_the_top_hits() {
    let t = setup();
    let rr = t.root.join("reranker");
    let v = train_reranker(&t, &rr);
    assert_eq!(v["kind"], "cross-encoder reranker");
    assert_eq!(v["examples_with_negatives"], 10, "{v}");
    let epochs = losses(&v);
    assert_eq!(epochs.len(), 12);
    assert!(
        epochs[11] < epochs[0],
        "the loss did not go down: {epochs:?}"
    );
    let config = json(&std::fs::read_to_string(rr.join("config.json")).unwrap());
    assert_eq!(config["num_labels"], 1);

    let search = |query: &str, extra: &[&str]| {
        let mut args = vec![
            "search",
            "--index",
            s(&t.index),
            "--model",
            s(&t.model),
            "--json",
        ];
        args.extend_from_slice(extra);
        args.push(query);
        json(&ok(&args))
    };
    let mut changed = 0;
    for query in [
        "insulin glucose",
        "receptor antagonist",
        "covid vaccine trial",
    ] {
        let plain = search(query, &[]);
        let reranked = search(
            query,
            &["--rerank", s(&rr), "--rerank-depth", "5", "--explain"],
        );
        assert_eq!(reranked["rerank"]["depth"], 5, "{reranked}");
        let (before, after) = (hit_ids(&plain), hit_ids(&reranked));
        assert_eq!(before.len(), 10);
        assert_eq!(after.len(), 10);
        // The top 5 are the same documents, reordered by the reranked score (the logit blended
        // with the first-stage score at the default weight 0.2); the rest keep their place.
        let (mut a, mut b) = (before[..5].to_vec(), after[..5].to_vec());
        a.sort();
        b.sort();
        assert_eq!(a, b, "{query}: the reranked top 5 are the first stage's");
        assert_eq!(
            before[5..],
            after[5..],
            "{query}: below the depth nothing moves"
        );
        changed += usize::from(before[..5] != after[..5]);
        let hits = reranked["hits"].as_array().unwrap();
        let scores: Vec<f64> = hits[..5]
            .iter()
            .map(|h| h["score"].as_f64().unwrap())
            .collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
        // Explain: each reranked hit says where it stood, with its legs kept.
        for hit in &hits[..5] {
            let rank = hit["first_stage"]["rank"].as_u64().unwrap() as usize;
            assert_eq!(before[rank - 1], hit["id"].as_str().unwrap());
            assert!(!hit["legs"].as_array().unwrap().is_empty());
        }
        assert!(hits[5].get("first_stage").is_none());
    }
    assert!(changed > 0, "the reranker never changed an order");
    // --rerank-weight 0 keeps the first stage's order; out of range is refused.
    let kept = search(
        "insulin glucose",
        &["--rerank", s(&rr), "--rerank-weight", "0"],
    );
    assert_eq!(kept["rerank"]["weight"], 0.0);
    assert_eq!(hit_ids(&kept), hit_ids(&search("insulin glucose", &[])));
    let e = err(&[
        "search",
        "--index",
        s(&t.index),
        "--rerank",
        s(&rr),
        "--rerank-weight",
        "1.5",
        "insulin glucose",
    ]);
    assert!(
        e.contains("--rerank-weight: must be between 0 and 1"),
        "{e}"
    );

    // A shorter list than the depth: the first stage is searched to the depth, then cut.
    let three = search("insulin glucose", &["--rerank", s(&rr), "-k", "3"]);
    assert_eq!(hit_ids(&three).len(), 3);
    let text = ok(&[
        "search",
        "--index",
        s(&t.index),
        "--model",
        s(&t.model),
        "--rerank",
        s(&rr),
        "--rerank-depth",
        "3",
        "--explain",
        "insulin glucose",
    ]);
    assert!(text.contains("rerank: the top 3 by"), "{text}");
    assert!(text.contains("rerank logit"), "{text}");

    // eval --rerank runs, reports it and writes a run that keeps the reranked order.
    let run = t.root.join("run.trec");
    let eval = json(&ok(&[
        "eval",
        "--index",
        s(&t.index),
        "--model",
        s(&t.model),
        "--dataset",
        s(&t.beir),
        "--split",
        "test",
        "--rerank",
        s(&rr),
        "--json",
        "--run",
        s(&run),
    ]));
    assert_eq!(eval["queries"], 3);
    assert_eq!(eval["rerank"]["depth"], 20);
    assert!(eval["ndcg@10"].as_f64().unwrap() >= 0.0);
    let lines = std::fs::read_to_string(&run).unwrap();
    let first: Vec<&str> = lines
        .lines()
        .filter(|l| l.starts_with("q11 "))
        .map(|l| l.split_whitespace().nth(2).unwrap())
        .collect();
    let listed = search("il-6 receptor", &["--rerank", s(&rr), "-k", "20"]);
    assert_eq!(first[..20], hit_ids(&listed)[..]);
}

#[test]
fn bad_training_flags_say_what_to_do() {
    let t = setup();
    let out = t.root.join("x");
    let base = ["--base", s(&t.model), "--dataset", s(&t.beir), "--out"];
    let with = |cmd: &str, extra: &[&str]| {
        let mut args = vec![cmd];
        args.extend_from_slice(&base);
        args.push(s(&out));
        args.extend_from_slice(extra);
        err(&args)
    };
    let e = with("train-reranker", &[]);
    assert!(e.contains("pass --index DIR"), "{e}");
    let e = with("train-dense", &["--hard-negatives", "2"]);
    assert!(e.contains("--index"), "{e}");
    let e = with("train-dense", &["--epochs", "0"]);
    assert!(e.contains("--epochs must be at least 1"), "{e}");
    let e = with("train-reranker", &["--device", "gpu"]);
    assert!(e.contains("--device must be cpu, cuda or cuda:N"), "{e}");
    // This build has no CUDA: asking for it says how to get it (a CUDA build trains there).
    if !cfg!(feature = "cuda") {
        let e = with("train-dense", &["--device", "cuda"]);
        assert!(e.contains("--features cuda"), "{e}");
    }
    let e = with("train-dense", &["--split", "dev"]);
    assert!(e.contains("dev"), "{e}");

    // An existing output is never overwritten, and it is checked before training.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    let e = with("train-dense", &[]);
    assert!(e.contains("choose a new --out"), "{e}");
    assert_eq!(
        std::fs::read_to_string(out.join("keep.txt")).unwrap(),
        "mine"
    );

    let e = err(&[
        "train-dense",
        "--base",
        s(&t.root),
        "--dataset",
        s(&t.beir),
        "--out",
        s(&t.root.join("y")),
    ]);
    assert!(e.contains("not a model directory"), "{e}");
    // A packed quantised checkpoint (what fetch-models.sh lays out for multilingual-e5-small)
    // runs in `index --model` but cannot be trained: the error says which file and what to pass.
    let packed = t.root.join("packed");
    std::fs::create_dir_all(&packed).unwrap();
    std::fs::write(packed.join("e5-small-q4.bin"), b"E5S1").unwrap();
    let e = err(&[
        "train-dense",
        "--base",
        s(&packed),
        "--dataset",
        s(&t.beir),
        "--out",
        s(&t.root.join("y")),
    ]);
    assert!(
        e.contains("e5-small-q4.bin") && e.contains("f32 checkpoint"),
        "{e}"
    );

    // --rerank needs a cross-encoder; --rerank-depth needs --rerank.
    let e = err(&[
        "search",
        "--index",
        s(&t.index),
        "--rerank",
        s(&t.model),
        "metformin",
    ]);
    assert!(e.contains("train-reranker"), "{e}");
    let e = err(&[
        "search",
        "--index",
        s(&t.index),
        "--rerank-depth",
        "5",
        "metformin",
    ]);
    assert!(e.contains("--rerank"), "{e}");
    let e = err(&[
        "search",
        "--index",
        s(&t.index),
        "--rerank",
        s(&t.model),
        "--rerank-depth",
        "0",
        "metformin",
    ]);
    assert!(e.contains("--rerank-depth: must be at least 1"), "{e}");
}
