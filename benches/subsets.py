#!/usr/bin/env python3
"""Smaller evaluation sets for models too slow to encode a whole corpus on a 2-core CPU
(decoder LLMs, issue 17). Written under data/ (git-ignored) from ../shared/data, read in place.

- data/scifact-1500: BEIR layout; the SciFact corpus cut to every document judged relevant
  for a test or train query, then the first other documents in corpus order up to 1,500;
  queries and qrels (test and train) unchanged.
- data/scifact-400: the same from the test judgements only (283 documents), up to 400, with
  the test qrels.
- data/korquad-half.json: KorQuAD 1.0 dev (SQuAD format) cut to its first 70 of 140 articles,
  with all their paragraphs and questions.
- data/korquad-train.json: training pairs for Korean (KorQuAD has no train split here): the
  other 70 articles, each paragraph with only its first question (so no two examples of a
  batch share a passage, which would make one example's positive another's false negative).
  No article of korquad-half.json is in it.

All are deterministic. Usage: python3 benches/subsets.py   (from the repository root)
"""
import json
import os
import shutil

SHARED = os.path.join("..", "shared", "data")
OUT = "data"


def scifact(total, splits):
    src = os.path.join(SHARED, "scifact")
    dst = os.path.join(OUT, f"scifact-{total}")
    os.makedirs(os.path.join(dst, "qrels"), exist_ok=True)
    judged = set()
    for split in splits:
        path = os.path.join(src, "qrels", f"{split}.tsv")
        shutil.copyfile(path, os.path.join(dst, "qrels", f"{split}.tsv"))
        with open(path) as f:
            next(f)
            judged.update(line.split("\t")[1] for line in f if line.strip())
    shutil.copyfile(os.path.join(src, "queries.jsonl"), os.path.join(dst, "queries.jsonl"))
    with open(os.path.join(src, "corpus.jsonl")) as f:
        docs = [json.loads(line) for line in f if line.strip()]
    keep = {d["_id"] for d in docs if d["_id"] in judged}
    for d in docs:
        if len(keep) >= total:
            break
        keep.add(d["_id"])
    with open(os.path.join(dst, "corpus.jsonl"), "w") as f:
        for d in docs:
            if d["_id"] in keep:
                f.write(json.dumps(d, ensure_ascii=False) + "\n")
    print(f"{dst}: {len(keep)} documents ({len(judged)} judged)")


def korquad(articles=70, train=False):
    src = os.path.join(SHARED, "korquad-v1-dev", "KorQuAD_v1.0_dev.json")
    with open(src) as f:
        data = json.load(f)
    if train:
        data["data"] = data["data"][articles:]
        for a in data["data"]:
            for p in a["paragraphs"]:
                p["qas"] = p["qas"][:1]
    else:
        data["data"] = data["data"][:articles]
    dst = os.path.join(OUT, "korquad-train.json" if train else "korquad-half.json")
    with open(dst, "w") as f:
        json.dump(data, f, ensure_ascii=False)
    paragraphs = sum(len(a["paragraphs"]) for a in data["data"])
    questions = sum(len(p["qas"]) for a in data["data"] for p in a["paragraphs"])
    print(f"{dst}: {paragraphs} paragraphs, {questions} questions")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    scifact(1500, ("test", "train"))
    scifact(400, ("test",))
    korquad()
    korquad(train=True)
