//! Dense encoders for hybrid-search on candle: BERT-family models loaded from a Hugging Face /
//! sentence-transformers model directory, with the directory's pooling, normalisation, maximum
//! length and query/passage prefixes.
//!
//! # Example
//!
//! ```no_run
//! use hybrid_search_dense::{Encoder, TextKind};
//!
//! let device = candle_core::Device::Cpu;
//! let encoder = Encoder::load("models/all-MiniLM-L6-v2".as_ref(), &device).unwrap();
//! let vectors = encoder.encode(&["IL-6 in sepsis"], TextKind::Query, 32).unwrap();
//! assert_eq!(vectors[0].len(), 384);
//! ```

mod bert;
mod cross;
mod decoder;
mod encoder;
mod error;
mod fused;
mod int8;
mod ops;
mod packed;
mod rng;
mod splade;
mod tiny;
mod tiny_decoder;
mod vectors;

pub use bert::WeightFormat;
pub use candle_core::Device;
pub use cross::{CrossEncoder, HEAD_NAMES, PairInput, PairTokenizer, pair_budget};
pub use decoder::{Architecture, DecoderConfig, GateActivation};
pub use encoder::{
    Encoder, LongText, ModelDescription, PASSAGE_ENCODER_DIR, Pooling, QUERY_ENCODER_DIR, TextKind,
    WeightsInfo, decoder_model_file, packed_model_file,
};
pub use error::{Error, Result};
pub use fused::f32_kernel_name;
pub use int8::int8_kernel_name;
pub use rng::SplitMix64;
pub use splade::{MLM_HEAD_NAMES, SpladeEncoder, SpladeVector};
pub use tiny::TinyModel;
pub use tiny_decoder::TinyDecoder;
pub use vectors::{ExactIndex, HnswIndex, Metric, Scalar, VectorIndex, VectorSettings, recall_at};

/// A checkpoint's configuration, weights and tokenizer as the inference encoder reads them:
/// the building blocks the training crate (`hybrid-search-train`) shares with inference, so
/// both read a model directory the same way.
pub mod model {
    pub use crate::bert::{
        Activation, BertConfig, HfConfig, Stored, TensorMap, WeightSource, hf_weights_file,
        tensor_names,
    };
    pub use crate::decoder::{Kernels, MAX_POSITIONS, attention, causal_mask, rope_tables};
    pub use crate::encoder::{describe, load_tokenizer};
}
