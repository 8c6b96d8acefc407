//! Decoder LLM encoders: wiring on tiny random GGUF models written by the test, and, when
//! `scripts/fetch-models.sh --llm` has laid them out, the real SmolLM2 and Gemma 3 files.

use std::path::{Path, PathBuf};

use hybrid_search_dense::{
    Architecture, Encoder, LongText, Pooling, TextKind, TinyDecoder, WeightFormat,
};

fn tiny(architecture: Architecture) -> (tempfile::TempDir, Encoder) {
    let dir = tempfile::tempdir().unwrap();
    TinyDecoder::new(architecture).write(dir.path()).unwrap();
    let encoder = Encoder::load(dir.path(), &candle_core::Device::Cpu).unwrap();
    (dir, encoder)
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

const TEXTS: [&str; 4] = [
    "IL-6 levels in sepsis",
    "the heart",
    "Interleukin 6 is a cytokine that rises in the blood of patients with sepsis 1234.",
    "x",
];

#[test]
fn tiny_decoders_load_and_describe_themselves() {
    for arch in [Architecture::Llama, Architecture::Gemma3] {
        let (_dir, encoder) = tiny(arch);
        assert!(encoder.is_decoder());
        let d = encoder.description();
        assert_eq!(d.pooling, Pooling::Last);
        assert!(d.normalize);
        assert_eq!(d.max_seq_length, 48);
        assert_eq!(d.dim, encoder.decoder_config().unwrap().hidden);
        assert_eq!(encoder.weights().file, "model.gguf");
        assert_eq!(encoder.weights().format, "gguf");
    }
}

#[test]
fn decoder_inputs_carry_the_prompt_and_end_with_the_end_of_sequence_token() {
    let (_dir, llama) = tiny(Architecture::Llama);
    let q = llama.token_ids("the heart", TextKind::Query).unwrap();
    let p = llama.token_ids("the heart", TextKind::Passage).unwrap();
    // Llama (like SmolLM2): no begin-of-sequence token; `<|im_end|>` (id 2) closes the text.
    assert_eq!(*p.last().unwrap(), 2);
    assert_ne!(p[0], 1);
    assert!(
        q.len() > p.len() + 5,
        "the query prompt is missing: {q:?} vs {p:?}"
    );
    assert_eq!(q.last(), p.last());
    let prompt = llama.token_ids("", TextKind::Query).unwrap();
    assert!(
        q.starts_with(&prompt[..prompt.len() - 2]),
        "{q:?} vs {prompt:?}"
    );
    // The tokenizer built from the GGUF metadata applies its merges (`Ġt` + `he` = `Ġthe`).
    let merged = llama.token_ids(" the", TextKind::Passage).unwrap();
    assert_eq!(merged.len(), 2, "{merged:?}");
    // Gemma 3 asks for a begin-of-sequence token (`add_bos_token`).
    let (_dir, gemma) = tiny(Architecture::Gemma3);
    let p = gemma.token_ids("the heart", TextKind::Passage).unwrap();
    assert_eq!((p[0], *p.last().unwrap()), (1, 2));
}

#[test]
fn long_texts_are_windowed_with_the_special_tokens_on_every_window() {
    for arch in [Architecture::Llama, Architecture::Gemma3] {
        let (_dir, encoder) = tiny(arch);
        let text = "interleukin six and tumour necrosis factor rise in sepsis ".repeat(6);
        let windows = encoder
            .windows(&text, TextKind::Passage, LongText::Windows { overlap: 8 })
            .unwrap();
        assert!(windows.len() > 2, "{arch:?}: {} windows", windows.len());
        let whole = encoder.token_ids(&text, TextKind::Passage).unwrap();
        for w in &windows {
            assert!(w.len() <= 48);
            assert_eq!(w.last(), whole.last(), "{arch:?}");
            assert_eq!(w[0] == 1, arch == Architecture::Gemma3, "{arch:?}");
        }
    }
}

#[test]
fn a_batch_gives_each_text_the_vector_it_gets_alone() {
    for arch in [Architecture::Llama, Architecture::Gemma3] {
        let (_dir, mut encoder) = tiny(arch);
        // One kernel for every batch size (f32 GEMM), so only the packing can differ.
        encoder.set_quantized_kernel_rows(0);
        let batch = encoder.encode(&TEXTS, TextKind::Passage, 4).unwrap();
        for (text, v) in TEXTS.iter().zip(&batch) {
            let alone = encoder.encode(&[text], TextKind::Passage, 1).unwrap();
            assert!((norm(v) - 1.0).abs() < 1e-5);
            let d = max_diff(v, &alone[0]);
            assert!(d < 1e-5, "{arch:?} {text:?}: {d}");
        }
        // Different texts, different vectors; query and passage prompts differ.
        assert!(max_diff(&batch[0], &batch[1]) > 1e-3);
        let q = encoder.encode(&TEXTS[..1], TextKind::Query, 1).unwrap();
        assert!(max_diff(&q[0], &batch[0]) > 1e-3);
    }
}

#[test]
fn the_f32_and_int8_paths_agree_with_the_quantized_one() {
    for arch in [Architecture::Llama, Architecture::Gemma3] {
        let dir = tempfile::tempdir().unwrap();
        TinyDecoder::new(arch).write(dir.path()).unwrap();
        let cpu = candle_core::Device::Cpu;
        let mut stored = Encoder::load_with(dir.path(), &cpu, WeightFormat::AsStored).unwrap();
        // Every matrix through candle's quantized kernel (activations rounded to Q8 blocks).
        stored.set_quantized_kernel_rows(usize::MAX);
        assert_eq!(stored.weights().format, "gguf");
        let a = stored.encode(&TEXTS, TextKind::Passage, 4).unwrap();
        for format in [WeightFormat::F32, WeightFormat::Int8] {
            let other = Encoder::load_with(dir.path(), &cpu, format).unwrap();
            let b = other.encode(&TEXTS, TextKind::Passage, 4).unwrap();
            for (x, y) in a.iter().zip(&b) {
                let cos: f32 = x.iter().zip(y).map(|(p, q)| p * q).sum();
                assert!(cos > 0.99, "{arch:?} {format:?}: cosine {cos}");
            }
        }
    }
}

#[test]
fn a_directory_without_a_tokenizer_for_a_sentencepiece_gguf_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.gguf"), b"GGUF but not really").unwrap();
    let err = Encoder::load(dir.path(), &candle_core::Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("model.gguf"), "{err}");
}

fn real(name: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models")
        .join(name);
    if dir.join("model.gguf").is_file() {
        Some(dir)
    } else {
        eprintln!("skipped: {name} missing; run scripts/fetch-models.sh --llm");
        None
    }
}

/// The real models: with the tokenizer the encoder builds (from the GGUF metadata for
/// SmolLM2, tokenizer.json for Gemma 3) and the forward pass, the language model predicts the
/// obvious next token. (Whether their vectors retrieve is measured by `eval` in
/// docs/benchmarks.md, not asserted here.)
fn check_real(dir: &Path, prompt: &str, next: &str) {
    let encoder = Encoder::load(dir, &candle_core::Device::Cpu).unwrap();
    let ids = encoder.token_ids(prompt, TextKind::Passage).unwrap();
    // Without the closing end-of-sequence token the encoder adds.
    let logits = encoder.last_token_logits(&[&ids[..ids.len() - 1]]).unwrap();
    let best = logits[0]
        .iter()
        .enumerate()
        .fold((0, f32::MIN), |b, (i, &x)| if x > b.1 { (i, x) } else { b })
        .0;
    let predicted = encoder.tokenizer().decode(&[best as u32], false).unwrap();
    assert_eq!(
        predicted.trim(),
        next,
        "{}: after {prompt:?}",
        dir.display()
    );
    let v = encoder.encode(&[prompt], TextKind::Query, 1).unwrap();
    assert_eq!(v[0].len(), encoder.description().dim);
    assert!((norm(&v[0]) - 1.0).abs() < 1e-4);
}

#[test]
fn smollm2_reads_its_gguf_tokenizer_and_predicts_text() {
    let Some(dir) = real("SmolLM2-135M-Instruct") else {
        return;
    };
    check_real(&dir, "The capital of France is", "Paris");
    // llama.cpp's `smollm` pre-tokenizer: digits one by one (`in`, `Ġ`, 2, 0, 2, 4, end).
    let encoder = Encoder::load(&dir, &candle_core::Device::Cpu).unwrap();
    let ids = encoder.token_ids("in 2024", TextKind::Passage).unwrap();
    assert_eq!(ids.len(), 7, "{ids:?}");
}

#[test]
fn gemma3_predicts_text() {
    let Some(dir) = real("gemma-3-270m") else {
        return;
    };
    check_real(&dir, "Monday, Tuesday, Wednesday,", "Thursday");
}
