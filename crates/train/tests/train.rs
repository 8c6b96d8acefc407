//! Training on the tiny random model (no download): the trainable BERT computes what the
//! inference encoder computes, dense and cross-encoder training lower their losses, trained
//! models save as directories that load back to the same numbers, and a seed fixes the run.

use std::path::{Path, PathBuf};

use hybrid_search_dense::{
    Architecture, CrossEncoder, Device, Encoder, TextKind, TinyDecoder, TinyModel, WeightFormat,
    pair_budget,
};
use hybrid_search_train::{
    CrossTrainConfig, DenseTrainConfig, DenseTrainer, LinearSchedule, PASSAGE_ENCODER_DIR,
    QUERY_ENCODER_DIR, StepReport, TrainExample, TrainSettings, TrainableBert,
    TrainableCrossEncoder, TrainableDecoder, checkpoint_dir, trained_encoder_dirs,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A tiny random model directory (hidden 32, 2 layers, 32 tokens at most).
fn tiny(root: &Path) -> PathBuf {
    let dir = root.join("tiny");
    TinyModel::default().write(&dir).unwrap();
    dir
}

fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}

/// 16 query/passage pairs over made-up three-letter words (the tiny tokenizer spells words
/// letter by letter): each query is two words of its passage, the passage has two more, and
/// the hard negative is another pair's passage.
fn dataset() -> Vec<TrainExample> {
    let letters: Vec<char> = ('a'..='z').collect();
    let word = |i: usize| -> String {
        [i * 7 + 1, i * 11 + 5, i * 13 + 9]
            .iter()
            .map(|&k| letters[k % 26])
            .collect()
    };
    let n = 16;
    let passages: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "{} {} {} {}",
                word(4 * i),
                word(4 * i + 1),
                word(4 * i + 2),
                word(4 * i + 3)
            )
        })
        .collect();
    (0..n)
        .map(|i| TrainExample {
            query: format!("{} {}", word(4 * i + 2), word(4 * i)),
            positive: passages[i].clone(),
            negatives: vec![passages[(i + 5) % n].clone(), passages[(i + 9) % n].clone()],
        })
        .collect()
}

fn dense_config() -> DenseTrainConfig {
    DenseTrainConfig {
        train: TrainSettings {
            epochs: 8,
            batch_size: 8,
            learning_rate: 1e-3,
            warmup_ratio: 0.1,
            seed: 7,
            ..DenseTrainConfig::default().train
        },
        hard_negatives_per_query: 1,
        max_query_len: 32,
        max_passage_len: 32,
        ..DenseTrainConfig::default()
    }
}

fn cross_config() -> CrossTrainConfig {
    CrossTrainConfig {
        train: TrainSettings {
            epochs: 12,
            batch_size: 4,
            learning_rate: 5e-3,
            seed: 7,
            ..CrossTrainConfig::default().train
        },
        dropout: Some(0.0),
        hard_negatives_per_query: 2,
        head_lr_scale: 1.0,
    }
}

fn texts(examples: &[TrainExample]) -> (Vec<&str>, Vec<&str>) {
    (
        examples.iter().map(|e| e.query.as_str()).collect(),
        examples.iter().map(|e| e.positive.as_str()).collect(),
    )
}

/// Runs a dense training and returns the per-step losses and the report's epoch means.
fn train_dense(
    base: &Path,
    config: DenseTrainConfig,
    examples: &[TrainExample],
) -> (DenseTrainer, Vec<StepReport>, Vec<f32>) {
    let mut trainer = DenseTrainer::new(base, config, &Device::Cpu).unwrap();
    let mut steps = Vec::new();
    let report = trainer.train(examples, |s| steps.push(s)).unwrap();
    assert_eq!(report.steps, steps.len());
    (trainer, steps, report.epoch_losses)
}

// ---------------------------------------------------------------------------------------------
// (a) The trainable forward is the inference model
// ---------------------------------------------------------------------------------------------

#[test]
fn trainable_bert_matches_the_encoder() {
    let root = tempfile::tempdir().unwrap();
    let dir = tiny(root.path());
    let texts = [
        "il-6 in sepsis",
        "a",
        "covid-19 and the lungs, a much longer sentence that the tiny model must truncate",
        "p53",
    ];
    let encoder = Encoder::load(&dir, &Device::Cpu).unwrap();
    let bert = TrainableBert::load(&dir, &Device::Cpu).unwrap();
    assert_eq!(bert.description(), encoder.description());
    for kind in [TextKind::Query, TextKind::Passage] {
        for t in texts {
            let max = encoder.description().max_seq_length;
            assert_eq!(
                bert.token_ids(t, kind, max).unwrap(),
                encoder.token_ids(t, kind).unwrap()
            );
        }
        // Batches of 3 pad the shorter texts: the mask must hide the padding.
        let expected = encoder.encode(&texts, kind, 3).unwrap();
        let got = bert.encode(&texts, kind, 3).unwrap();
        let diff = max_abs_diff(&expected, &got);
        assert!(diff < 1e-4, "max |diff| {diff}");
    }

    // The same with CLS pooling.
    std::fs::write(
        dir.join("1_Pooling/config.json"),
        r#"{"word_embedding_dimension": 32, "pooling_mode_cls_token": true,
            "pooling_mode_mean_tokens": false}"#,
    )
    .unwrap();
    let encoder = Encoder::load(&dir, &Device::Cpu).unwrap();
    let bert = TrainableBert::load(&dir, &Device::Cpu).unwrap();
    let diff = max_abs_diff(
        &encoder.encode(&texts, TextKind::Passage, 4).unwrap(),
        &bert.encode(&texts, TextKind::Passage, 4).unwrap(),
    );
    assert!(diff < 1e-4, "CLS pooling: max |diff| {diff}");
}

// ---------------------------------------------------------------------------------------------
// (b, c) Dense training lowers the loss and saves a loadable model
// ---------------------------------------------------------------------------------------------

#[test]
fn dense_training_lowers_the_loss_and_saves_a_loadable_model() {
    let root = tempfile::tempdir().unwrap();
    let base = tiny(root.path());
    let examples = dataset();
    let (trainer, steps, epochs) = train_dense(&base, dense_config(), &examples);
    assert_eq!(epochs.len(), 8);
    assert_eq!(steps.len(), 8 * 2);
    assert_eq!(steps.last().unwrap().step, steps.last().unwrap().steps);
    let (first, last) = (epochs[0], epochs[epochs.len() - 1]);
    assert!(
        last < 0.7 * first,
        "mean loss per epoch did not fall enough: {epochs:?}"
    );
    // Warm-up from 0, then decay towards 0.
    assert_eq!(steps[0].lr, 0.0);
    assert!(steps[2].lr > steps[15].lr && steps[15].lr > 0.0);

    let out = root.path().join("trained");
    trainer.save(&out).unwrap();
    assert!(out.join("training.json").is_file());
    assert!(out.join("1_Pooling/config.json").is_file());
    let loaded = Encoder::load(&out, &Device::Cpu).unwrap();
    let (queries, passages) = texts(&examples);
    for (kind, batch) in [(TextKind::Query, &queries), (TextKind::Passage, &passages)] {
        let diff = max_abs_diff(
            &loaded.encode(batch, kind, 8).unwrap(),
            &trainer.encode(batch, kind, 8).unwrap(),
        );
        assert!(diff < 1e-4, "{kind:?}: max |diff| {diff}");
    }
    // Training changed the model.
    let before = Encoder::load(&base, &Device::Cpu)
        .unwrap()
        .encode(&queries, TextKind::Query, 8)
        .unwrap();
    let after = loaded.encode(&queries, TextKind::Query, 8).unwrap();
    assert!(max_abs_diff(&before, &after) > 1e-2);
    assert_ne!(loaded.weights().checksum, {
        Encoder::load(&base, &Device::Cpu)
            .unwrap()
            .weights()
            .checksum
            .clone()
    });

    // The trained model ranks each query's own passage first more often than the base does.
    let hits = |vectors_q: &[Vec<f32>], vectors_p: &[Vec<f32>]| -> usize {
        vectors_q
            .iter()
            .enumerate()
            .filter(|(i, q)| {
                let score = |p: &Vec<f32>| q.iter().zip(p).map(|(a, b)| a * b).sum::<f32>();
                let best = (0..vectors_p.len())
                    .max_by(|&a, &b| score(&vectors_p[a]).total_cmp(&score(&vectors_p[b])))
                    .unwrap();
                best == *i
            })
            .count()
    };
    let base_encoder = Encoder::load(&base, &Device::Cpu).unwrap();
    let base_hits = hits(
        &base_encoder.encode(&queries, TextKind::Query, 8).unwrap(),
        &base_encoder
            .encode(&passages, TextKind::Passage, 8)
            .unwrap(),
    );
    let trained_hits = hits(
        &loaded.encode(&queries, TextKind::Query, 8).unwrap(),
        &loaded.encode(&passages, TextKind::Passage, 8).unwrap(),
    );
    assert!(
        trained_hits > base_hits,
        "top-1 hits: base {base_hits}, trained {trained_hits}"
    );

    // A model is never written over an existing one.
    let err = trainer.save(&out).unwrap_err().to_string();
    assert!(err.contains("not empty"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// (d) Separate query and passage encoders
// ---------------------------------------------------------------------------------------------

#[test]
fn separate_encoders_save_two_loadable_directories() {
    let root = tempfile::tempdir().unwrap();
    let base = tiny(root.path());
    let examples = dataset();
    let mut config = DenseTrainConfig {
        shared: false,
        ..dense_config()
    };
    config.train.epochs = 2;
    let (trainer, _, _) = train_dense(&base, config, &examples);
    let out = root.path().join("dpr");
    trainer.save(&out).unwrap();
    let (query_dir, passage_dir) = trained_encoder_dirs(&out);
    assert_eq!(query_dir, out.join(QUERY_ENCODER_DIR));
    assert_eq!(passage_dir, out.join(PASSAGE_ENCODER_DIR));
    assert!(out.join("training.json").is_file());

    let query_encoder = Encoder::load(&query_dir, &Device::Cpu).unwrap();
    let passage_encoder = Encoder::load(&passage_dir, &Device::Cpu).unwrap();
    let (queries, passages) = texts(&examples);
    let q = query_encoder.encode(&queries, TextKind::Query, 8).unwrap();
    let p = passage_encoder
        .encode(&passages, TextKind::Passage, 8)
        .unwrap();
    assert!(max_abs_diff(&q, &trainer.encode(&queries, TextKind::Query, 8).unwrap()) < 1e-4);
    assert!(
        max_abs_diff(
            &p,
            &trainer.encode(&passages, TextKind::Passage, 8).unwrap()
        ) < 1e-4
    );
    // Two encoders trained on different inputs are different models.
    let q_of_passages = query_encoder
        .encode(&passages, TextKind::Passage, 8)
        .unwrap();
    assert!(max_abs_diff(&q_of_passages, &p) > 1e-3);
    // A shared model's directory is both.
    assert_eq!(trained_encoder_dirs(&base), (base.clone(), base.clone()));
}

#[test]
fn checkpoints_save_each_epochs_model() {
    let root = tempfile::tempdir().unwrap();
    let base = tiny(root.path());
    let examples = dataset();
    let out = root.path().join("dpr");
    let mut config = dense_config();
    config.train.epochs = 3;
    let mut trainer = DenseTrainer::new(&base, config, &Device::Cpu).unwrap();
    let report = trainer
        .train_checkpointed(&examples, Some(&out), |_| {})
        .unwrap();
    trainer.save(&out).unwrap();
    // Epochs 1 and 2 are checkpoints next to the final model; the last epoch is the model.
    let dirs: Vec<PathBuf> = (1..=2).map(|e| checkpoint_dir(&out, e)).collect();
    assert_eq!(dirs[0], root.path().join("dpr-epoch1"));
    assert!(!checkpoint_dir(&out, 3).exists());
    let (queries, _) = texts(&examples);
    let mut vectors = Vec::new();
    for (epoch, dir) in dirs.iter().chain([&out]).enumerate() {
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("training.json")).unwrap()).unwrap();
        let losses: Vec<f32> =
            serde_json::from_value(record["report"]["epoch_losses"].clone()).unwrap();
        assert_eq!(losses, report.epoch_losses[..=epoch], "{}", dir.display());
        let encoder = Encoder::load(dir, &Device::Cpu).unwrap();
        vectors.push(encoder.encode(&queries, TextKind::Query, 8).unwrap());
    }
    // Each epoch changed the model.
    assert!(max_abs_diff(&vectors[0], &vectors[1]) > 1e-4);
    assert!(max_abs_diff(&vectors[1], &vectors[2]) > 1e-4);
    assert!(
        max_abs_diff(
            &vectors[2],
            &trainer.encode(&queries, TextKind::Query, 8).unwrap()
        ) < 1e-4
    );

    // The reranker saves the same way, and a checkpoint that exists already stops the run.
    let mut reranker = TrainableCrossEncoder::from_base(&base, 1, &Device::Cpu).unwrap();
    let mut config = cross_config();
    config.train.epochs = 2;
    let cross_out = root.path().join("rr");
    reranker
        .train_checkpointed(&examples, &config, Some(&cross_out), |_| {})
        .unwrap();
    let first = TrainableCrossEncoder::load(&checkpoint_dir(&cross_out, 1), &Device::Cpu).unwrap();
    assert!(
        first
            .score(&examples[0].query, &[&examples[0].positive])
            .unwrap()[0]
            .is_finite()
    );
    let err = reranker
        .train_checkpointed(&examples, &config, Some(&cross_out), |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("rr-epoch1"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// (e) Cross-encoder
// ---------------------------------------------------------------------------------------------

#[test]
fn pair_budget_cuts_the_passage_first() {
    // Fits: nothing cut.
    assert_eq!(pair_budget(3, 4, 30), (3, 4));
    // Long passage: the query stays whole.
    assert_eq!(pair_budget(5, 1000, 30), (5, 25));
    // A query longer than half the room with a long passage: cut to half.
    assert_eq!(pair_budget(40, 1000, 30), (15, 15));
    // A long query with a short passage keeps what the passage leaves.
    assert_eq!(pair_budget(40, 3, 30), (27, 3));
    assert_eq!(pair_budget(0, 0, 0), (0, 0));
}

#[test]
fn cross_encoder_input_truncates_the_passage_not_the_query() {
    let root = tempfile::tempdir().unwrap();
    let base = tiny(root.path());
    let cross = TrainableCrossEncoder::from_base(&base, 1, &Device::Cpu).unwrap();
    assert_eq!(cross.max_len(), 32);
    // The tiny tokenizer spells words letter by letter: "abc de" is [a ##b ##c d ##e].
    let query = "abc de";
    let passage = "the passage goes on and on far beyond thirty two tokens";
    let pair = cross.pair_input(query, passage).unwrap();
    assert_eq!(pair.ids.len(), 32);
    assert_eq!(pair.query_tokens, 5);
    assert_eq!(pair.passage_tokens, 32 - 3 - 5);
    let (cls, sep) = (2, 3);
    assert_eq!(pair.ids[0], cls);
    assert_eq!(pair.ids[6], sep);
    assert_eq!(pair.ids[31], sep);
    let bert = cross.encoder();
    let query_ids = bert.token_ids(query, TextKind::Passage, 32).unwrap();
    assert_eq!(&pair.ids[..7], query_ids.as_slice(), "[CLS] query [SEP]");
    let passage_ids = bert.token_ids(passage, TextKind::Passage, 32).unwrap();
    assert_eq!(
        &pair.ids[7..31],
        &passage_ids[1..25],
        "the passage's first tokens"
    );
    assert_eq!(pair.type_ids[..7], [0; 7]);
    assert_eq!(pair.type_ids[7..], [1; 25]);

    // A short pair is not padded or cut.
    let pair = cross.pair_input("ab", "cd").unwrap();
    assert_eq!(pair.ids.len(), 2 + 2 + 3);
    assert_eq!(pair.type_ids, [0, 0, 0, 0, 1, 1, 1]);
}

#[test]
fn cross_encoder_trains_saves_and_loads() {
    let root = tempfile::tempdir().unwrap();
    let base = tiny(root.path());
    let examples = dataset();
    let mut cross = TrainableCrossEncoder::from_base(&base, 3, &Device::Cpu).unwrap();
    let mut losses = Vec::new();
    let report = cross
        .train(&examples, &cross_config(), |s| losses.push(s.loss))
        .unwrap();
    assert_eq!(losses.len(), 12 * 4);
    let epochs = &report.epoch_losses;
    assert!(
        epochs[epochs.len() - 1] < 0.5 * epochs[0],
        "mean loss per epoch did not fall enough: {epochs:?}"
    );
    // The trained reranker puts positives above their negatives more often than the fresh one.
    let wins = |cross: &TrainableCrossEncoder| -> usize {
        examples
            .iter()
            .map(|e| {
                let mut passages = vec![e.positive.as_str()];
                passages.extend(e.negatives.iter().map(String::as_str));
                let scores = cross.score(&e.query, &passages).unwrap();
                scores[1..].iter().filter(|&&s| s < scores[0]).count()
            })
            .sum()
    };
    let fresh = TrainableCrossEncoder::from_base(&base, 3, &Device::Cpu).unwrap();
    let (before, after) = (wins(&fresh), wins(&cross));
    assert!(
        after > before && after >= 24,
        "positive above a negative: {before} of 32 before training, {after} after"
    );

    let out = root.path().join("reranker");
    cross.save(&out).unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["num_labels"], 1);
    assert!(!out.join("modules.json").exists());
    let loaded = TrainableCrossEncoder::load(&out, &Device::Cpu).unwrap();
    assert_eq!(loaded.max_len(), cross.max_len());
    let passages: Vec<&str> = examples.iter().map(|e| e.positive.as_str()).collect();
    for e in &examples[..4] {
        let a = cross.score(&e.query, &passages).unwrap();
        let b = loaded.score(&e.query, &passages).unwrap();
        assert_eq!(a.len(), passages.len());
        let diff = max_abs_diff(&[a], &[b]);
        assert!(diff < 1e-5, "max |diff| {diff}");
    }
    // Scores do not depend on the batch a passage is scored in.
    let alone = loaded.score(&examples[0].query, &passages[..1]).unwrap();
    let together = loaded.score(&examples[0].query, &passages).unwrap();
    assert!((alone[0] - together[0]).abs() < 1e-4);

    // The inference cross-encoder (the packed forward the engine reranks with) reads the same
    // directory to the same logits as the padded training forward.
    let inference = CrossEncoder::load(&out, &Device::Cpu).unwrap();
    assert_eq!(inference.pairs().max_len(), cross.max_len());
    for e in &examples[..4] {
        let a = cross.score(&e.query, &passages).unwrap();
        let b = inference.score(&e.query, &passages).unwrap();
        let diff = max_abs_diff(&[a], &[b]);
        assert!(
            diff < 1e-4,
            "training vs inference forward: max |diff| {diff}"
        );
        assert_eq!(
            inference.pairs().pair(&e.query, &e.positive).unwrap(),
            cross.pair_input(&e.query, &e.positive).unwrap()
        );
    }
    let alone = inference.score(&examples[0].query, &passages[..1]).unwrap();
    let together = inference.score(&examples[0].query, &passages).unwrap();
    assert!((alone[0] - together[0]).abs() < 1e-4);
    let err = CrossEncoder::load(&base, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("pooler") || err.contains("classifier"),
        "{err}"
    );

    // A base model has no head to load.
    let err = TrainableCrossEncoder::load(&base, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("classifier") || err.contains("pooler"),
        "{err}"
    );
}

#[test]
fn a_faster_head_lowers_the_cross_encoder_loss_sooner() {
    let root = tempfile::tempdir().unwrap();
    let base = tiny(root.path());
    let examples = dataset();
    let final_loss = |head_lr_scale: f64| {
        let mut cross = TrainableCrossEncoder::from_base(&base, 3, &Device::Cpu).unwrap();
        let mut config = CrossTrainConfig {
            head_lr_scale,
            ..cross_config()
        };
        config.train.epochs = 3;
        config.train.learning_rate = 2e-4;
        let report = cross.train(&examples, &config, |_| {}).unwrap();
        *report.epoch_losses.last().unwrap()
    };
    let (same, faster) = (final_loss(1.0), final_loss(20.0));
    assert!(
        faster < same,
        "head at 20x the rate: loss {faster}, at 1x: {same}"
    );
    let mut cross = TrainableCrossEncoder::from_base(&base, 3, &Device::Cpu).unwrap();
    let bad = CrossTrainConfig {
        head_lr_scale: 0.0,
        ..cross_config()
    };
    let err = cross.train(&examples, &bad, |_| {}).unwrap_err();
    assert!(err.to_string().contains("head_lr_scale"), "{err}");
}

#[test]
fn cross_encoder_needs_negatives() {
    let root = tempfile::tempdir().unwrap();
    let base = tiny(root.path());
    let mut examples = dataset();
    examples.iter_mut().for_each(|e| e.negatives.clear());
    let mut cross = TrainableCrossEncoder::from_base(&base, 3, &Device::Cpu).unwrap();
    let err = cross
        .train(&examples, &cross_config(), |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("negative"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// (f) Reproducibility, schedule, settings
// ---------------------------------------------------------------------------------------------

#[test]
fn same_seed_same_loss_curve() {
    let root = tempfile::tempdir().unwrap();
    let base = tiny(root.path());
    let examples = dataset();
    let mut config = dense_config();
    config.train.epochs = 2;
    let losses = |seed: u64| -> Vec<f32> {
        let mut config = config.clone();
        config.train.seed = seed;
        let (_, steps, _) = train_dense(&base, config, &examples);
        steps.iter().map(|s| s.loss).collect()
    };
    let a = losses(11);
    assert_eq!(a, losses(11));
    assert_ne!(a, losses(12));

    let cross = |seed: u64| -> Vec<f32> {
        let mut cross = TrainableCrossEncoder::from_base(&base, seed, &Device::Cpu).unwrap();
        let mut config = cross_config();
        config.train.epochs = 1;
        config.train.seed = seed;
        let mut losses = Vec::new();
        cross
            .train(&examples, &config, |s| losses.push(s.loss))
            .unwrap();
        losses
    };
    assert_eq!(cross(5), cross(5));
}

#[test]
fn linear_schedule_warms_up_then_decays() {
    let s = LinearSchedule::new(1.0, 0.1, 20);
    assert_eq!(s.warmup_steps, 2);
    let lrs: Vec<f64> = [0, 1, 2, 11, 19, 20].iter().map(|&i| s.lr(i)).collect();
    assert_eq!(lrs[..3], [0.0, 0.5, 1.0]);
    assert!((lrs[3] - 0.5).abs() < 1e-12);
    assert!((lrs[4] - 1.0 / 18.0).abs() < 1e-12);
    assert_eq!(lrs[5], 0.0);
    // No warm-up: full rate at once.
    assert_eq!(LinearSchedule::new(2.0, 0.0, 10).lr(0), 2.0);
}

#[test]
fn bad_settings_are_refused_by_name() {
    let root = tempfile::tempdir().unwrap();
    let base = tiny(root.path());
    let mut config = DenseTrainConfig::default();
    config.train.batch_size = 0;
    let err = DenseTrainer::new(&base, config, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("batch_size"), "{err}");
    let config = DenseTrainConfig {
        dropout: Some(1.0),
        ..DenseTrainConfig::default()
    };
    let err = DenseTrainer::new(&base, config, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("dropout"), "{err}");
    let mut trainer = DenseTrainer::new(&base, dense_config(), &Device::Cpu).unwrap();
    let err = trainer.train(&[], |_| {}).unwrap_err().to_string();
    assert!(err.contains("no training examples"), "{err}");
}

/// The shared settings serialize as top-level keys, as before they were one struct: a
/// `training.json` config of either kind reads back, and keys it lacks take that kind's
/// defaults (the reranker's batch size is not the dense one's).
#[test]
fn settings_serialize_flat_with_each_kinds_defaults() {
    use serde_json::json;

    let dense = json!({
        "epochs": 1, "batch_size": 32, "learning_rate": 2e-5, "warmup_ratio": 0.1,
        "weight_decay": 0.01, "max_grad_norm": 1.0, "scale": 20.0, "similarity": "cosine",
        "seed": 42, "hard_negatives_per_query": 1, "shared": true, "max_query_len": 64,
        "max_passage_len": 256, "dropout": null, "micro_batch": 16, "decoder_layers": 4,
    });
    let cross = json!({
        "epochs": 1, "batch_size": 16, "learning_rate": 1e-4, "warmup_ratio": 0.1,
        "weight_decay": 0.01, "max_grad_norm": 1.0, "seed": 42,
        "hard_negatives_per_query": 3, "dropout": null, "head_lr_scale": 20.0,
    });
    assert_eq!(
        serde_json::to_value(DenseTrainConfig::default()).unwrap(),
        dense
    );
    assert_eq!(
        serde_json::to_value(CrossTrainConfig::default()).unwrap(),
        cross
    );
    let read_dense = |v| serde_json::from_value::<DenseTrainConfig>(v).unwrap();
    let read_cross = |v| serde_json::from_value::<CrossTrainConfig>(v).unwrap();
    assert_eq!(read_dense(dense), DenseTrainConfig::default());
    assert_eq!(read_cross(cross), CrossTrainConfig::default());
    assert_eq!(read_dense(json!({})), DenseTrainConfig::default());
    assert_eq!(read_cross(json!({})), CrossTrainConfig::default());

    let config = read_cross(json!({"epochs": 3, "max_grad_norm": null, "head_lr_scale": 2.0}));
    let expected = CrossTrainConfig {
        train: TrainSettings {
            epochs: 3,
            max_grad_norm: None,
            ..CrossTrainConfig::default().train
        },
        head_lr_scale: 2.0,
        ..CrossTrainConfig::default()
    };
    assert_eq!(config, expected);
    assert_eq!(config.train.batch_size, 16);
    let config = read_dense(json!({"seed": 5, "shared": false, "unknown": 1}));
    assert_eq!((config.train.seed, config.train.batch_size), (5, 32));
    assert!(!config.shared);
    assert!(serde_json::from_value::<CrossTrainConfig>(json!({"epochs": "two"})).is_err());

    // The library's check names the field at fault.
    let bad = TrainSettings {
        warmup_ratio: 1.5,
        ..TrainSettings::default()
    };
    assert!(bad.check().unwrap().starts_with("warmup_ratio"), "{bad:?}");
    assert_eq!(CrossTrainConfig::default().train.check(), None);
}

// ---------------------------------------------------------------------------------------------
// Gradients
// ---------------------------------------------------------------------------------------------

/// Every weight gets a gradient, and the gradient matches central finite differences: no
/// operation of the trainable model silently drops out of back-propagation.
#[test]
fn gradients_reach_every_weight_and_match_finite_differences() {
    use candle_core::{Tensor, Var};

    let root = tempfile::tempdir().unwrap();
    let base = tiny(root.path());
    let bert = TrainableBert::load(&base, &Device::Cpu).unwrap();
    // Two sequences of different lengths, so padding and the mask are involved.
    let seqs = [
        bert.token_ids("abc de fg", TextKind::Query, 32).unwrap(),
        bert.token_ids("xyz", TextKind::Query, 32).unwrap(),
    ];
    let len = seqs[0].len();
    let mut ids = vec![0u32; 2 * len];
    let mut mask = vec![0f32; 2 * len];
    for (i, s) in seqs.iter().enumerate() {
        ids[i * len..i * len + s.len()].copy_from_slice(s);
        mask[i * len..i * len + s.len()].fill(1.0);
    }
    let ids = Tensor::from_vec(ids, (2, len), &candle_core::Device::Cpu).unwrap();
    let mask = Tensor::from_vec(mask, (2, len), &candle_core::Device::Cpu).unwrap();
    let direction: Vec<f32> = (0..64)
        .map(|i| ((i * 37 % 17) as f32 - 8.0) / 8.0)
        .collect();
    let direction = Tensor::from_vec(direction, (2, 32), &candle_core::Device::Cpu).unwrap();
    // Evaluation mode (pooled, normalised vectors) plus training mode (hidden states with
    // dropout, the same masks on every call for a fixed seed).
    let types = ids.zeros_like().unwrap();
    let hidden_direction = Tensor::arange(0f32, (len * 32) as f32, &candle_core::Device::Cpu)
        .unwrap()
        .affine(1.0 / (len * 32) as f64, -0.5)
        .unwrap()
        .reshape((len, 32))
        .unwrap();
    let loss = || -> Tensor {
        let pooled = (bert.embed(&ids, &mask).unwrap() * &direction)
            .unwrap()
            .sum_all()
            .unwrap();
        let hidden = bert
            .forward_train(&ids, &mask, &types, 5)
            .unwrap()
            .broadcast_mul(&hidden_direction)
            .unwrap()
            .sum_all()
            .unwrap();
        (pooled + hidden).unwrap()
    };
    let value = |t: &Tensor| f64::from(t.to_scalar::<f32>().unwrap());

    let grads = loss().backward().unwrap();
    let vars: Vec<(String, Var)> = {
        let data = bert.varmap().data().lock().unwrap();
        let mut vars: Vec<_> = data.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars
    };
    assert_eq!(vars.len(), 5 + 2 * 16);
    for (name, var) in &vars {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let norm = value(&g.sqr().unwrap().sum_all().unwrap());
        assert!(norm > 0.0, "zero gradient for {name}");
    }

    let checks = [
        ("embeddings.word_embeddings.weight", 5 * 32 + 7),
        ("embeddings.LayerNorm.weight", 3),
        ("encoder.layer.0.attention.self.query.weight", 40),
        ("encoder.layer.1.attention.self.key.weight", 77),
        ("encoder.layer.0.attention.output.LayerNorm.bias", 9),
        ("encoder.layer.1.intermediate.dense.bias", 11),
        ("encoder.layer.1.output.dense.weight", 500),
    ];
    for (name, index) in checks {
        let var = &vars.iter().find(|(n, _)| n == name).unwrap().1;
        let analytic = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap();
        let analytic = f64::from(analytic.to_vec1::<f32>().unwrap()[index]);
        let original = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let shape = var.as_tensor().shape().clone();
        let eps = 1e-2f32;
        let at = |delta: f32| -> f64 {
            let mut values = original.clone();
            values[index] += delta;
            var.set(&Tensor::from_vec(values, &shape, &candle_core::Device::Cpu).unwrap())
                .unwrap();
            value(&loss())
        };
        let numeric = (at(eps) - at(-eps)) / (2.0 * f64::from(eps));
        at(0.0);
        let tolerance = 2e-4 + 0.01 * analytic.abs().max(numeric.abs());
        assert!(
            (analytic - numeric).abs() < tolerance,
            "{name}[{index}]: analytic {analytic}, numeric {numeric}"
        );
    }
}

/// GradCache (micro-batches of 3 sequences, two passes) computes the whole batch's loss and
/// gradients: without dropout, the same losses and the same trained model as one pass.
#[test]
fn grad_cache_micro_batches_train_the_same_model_as_one_pass() {
    let root = tempfile::tempdir().unwrap();
    let base = tiny(root.path());
    let examples = dataset();
    let mut config = dense_config();
    config.train.epochs = 2;
    config.dropout = Some(0.0);
    let run = |micro: Option<usize>| {
        let config = DenseTrainConfig {
            micro_batch: micro,
            ..config.clone()
        };
        let (trainer, steps, _) = train_dense(&base, config, &examples);
        let (queries, _) = texts(&examples);
        let vectors = trainer.encode(&queries, TextKind::Query, 16).unwrap();
        (steps.iter().map(|s| s.loss).collect::<Vec<f32>>(), vectors)
    };
    let (one_pass, v1) = run(None);
    let (cached, v2) = run(Some(3));
    assert_eq!(one_pass.len(), cached.len());
    for (a, b) in one_pass.iter().zip(&cached) {
        assert!((a - b).abs() < 1e-4, "losses {one_pass:?} vs {cached:?}");
    }
    let d = max_abs_diff(&v1, &v2);
    assert!(d < 1e-3, "trained vectors differ by {d}");
    // And the model did train (the first and last losses differ).
    assert!(one_pass[0] > *one_pass.last().unwrap());
}

// ---------------------------------------------------------------------------------------------
// Decoder LLMs: the top blocks train, the rest stays frozen
// ---------------------------------------------------------------------------------------------

fn tiny_decoder(root: &Path, architecture: Architecture) -> PathBuf {
    let dir = root.join(format!("tiny-{architecture:?}"));
    TinyDecoder::new(architecture).write(&dir).unwrap();
    dir
}

#[test]
fn trainable_decoder_matches_the_encoder() {
    let root = tempfile::tempdir().unwrap();
    for arch in [Architecture::Llama, Architecture::Gemma3] {
        let base = tiny_decoder(root.path(), arch);
        let encoder = Encoder::load_with(&base, &Device::Cpu, WeightFormat::F32).unwrap();
        let examples = dataset();
        let (queries, passages) = texts(&examples);
        for trained in [1, 2] {
            let decoder = TrainableDecoder::load(&base, trained, &Device::Cpu).unwrap();
            for (kind, batch) in [(TextKind::Query, &queries), (TextKind::Passage, &passages)] {
                let diff = max_abs_diff(
                    &decoder.encode(batch, kind, 8).unwrap(),
                    &encoder.encode(batch, kind, 8).unwrap(),
                );
                assert!(diff < 1e-4, "{arch:?}, {trained} trained, {kind:?}: {diff}");
            }
        }
    }
}

#[test]
fn decoder_training_lowers_the_loss_saves_a_loadable_gguf_and_keeps_the_frozen_blocks() {
    let root = tempfile::tempdir().unwrap();
    let base = tiny_decoder(root.path(), Architecture::Llama);
    let examples = dataset();
    let mut config = dense_config();
    config.decoder_layers = 1;
    config.micro_batch = Some(5);
    config.train.learning_rate = 5e-3;
    let (trainer, _, epochs) = train_dense(&base, config, &examples);
    assert!(
        epochs[epochs.len() - 1] < 0.8 * epochs[0],
        "loss did not fall: {epochs:?}"
    );
    let out = root.path().join("trained-decoder");
    trainer.save(&out).unwrap();
    assert!(out.join("model.gguf").is_file() && out.join("decoder.json").is_file());
    let loaded = Encoder::load_with(&out, &Device::Cpu, WeightFormat::F32).unwrap();
    assert!(loaded.is_decoder());
    let (queries, passages) = texts(&examples);
    for (kind, batch) in [(TextKind::Query, &queries), (TextKind::Passage, &passages)] {
        let diff = max_abs_diff(
            &loaded.encode(batch, kind, 8).unwrap(),
            &trainer.encode(batch, kind, 8).unwrap(),
        );
        assert!(diff < 1e-4, "{kind:?}: {diff}");
    }
    // The frozen block's output is the base's; the trained model's vectors are not.
    let base_encoder = Encoder::load_with(&base, &Device::Cpu, WeightFormat::F32).unwrap();
    let ids = loaded.token_ids(queries[0], TextKind::Query).unwrap();
    let frozen = |e: &Encoder| -> Vec<f32> {
        e.decoder_hidden_states(&[&ids], 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    assert_eq!(frozen(&loaded), frozen(&base_encoder));
    let before = base_encoder.encode(&queries, TextKind::Query, 8).unwrap();
    let after = loaded.encode(&queries, TextKind::Query, 8).unwrap();
    assert!(max_abs_diff(&before, &after) > 1e-2);
}
