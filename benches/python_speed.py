#!/usr/bin/env python3
"""The Python package's costs, run by benches/python-speed.sh right after the Rust library's
own `hybrid-speed` on the same collection and queries:

- latency of `Collection.search` per mode, one query at a time after 10 warm-up queries
  (p50, p95, mean in ms), to set beside hybrid-speed's Rust numbers;
- `search_batch` of all the test queries against as many single calls;
- BM25 queries/s, k = 10 and k = 1000, against bm25s (its own tokenizer, English stop words,
  an index of the same corpus) one query at a time;
- searches from 2 Python threads against 1 (the GIL released: the speed-up);
- `Encoder.encode` passages/s (batch 32) on the corpus's first passages.

Usage: python_speed.py COLLECTION DATASET [--passages N]
"""

import argparse
import json
import statistics
import threading
import time
from pathlib import Path

import hybrid_search as hs


def load(dataset: Path):
    queries = {}
    with open(dataset / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            o = json.loads(line)
            queries[o["_id"]] = o["text"]
    judged = []
    with open(dataset / "qrels" / "test.tsv", encoding="utf-8") as f:
        next(f)
        for line in f:
            qid = line.split("\t")[0]
            if qid in queries and qid not in judged:
                judged.append(qid)
    corpus = []
    with open(dataset / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            o = json.loads(line)
            corpus.append((o["_id"], (o.get("title", "") + " " + o["text"]).strip()))
    return [queries[q] for q in judged], corpus


def timed(queries, search):
    for q in queries[:10]:
        search(q)
    times = []
    for q in queries:
        t = time.perf_counter()
        search(q)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return (times[len(times) // 2], times[round(0.95 * (len(times) - 1))],
            statistics.fmean(times))


def qps(queries, search, rounds=3):
    best = 0.0
    for _ in range(rounds):
        t = time.perf_counter()
        for q in queries:
            search(q)
        best = max(best, len(queries) / (time.perf_counter() - t))
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("collection")
    ap.add_argument("dataset")
    ap.add_argument("--passages", type=int, default=500)
    args = ap.parse_args()
    queries, corpus = load(Path(args.dataset))
    c = hs.Collection.open(args.collection)
    print(f"hybrid_search {hs.__version__}: {len(c)} documents, {len(queries)} queries")

    print("mode     p50 / p95 / mean ms (Collection.search from Python, k = 10)")
    for mode in ("sparse", "dense", "hybrid"):
        p50, p95, mean = timed(queries, lambda q: c.search(q, 10, mode=mode))
        print(f"{mode:<8} {p50:.3f} / {p95:.3f} / {mean:.3f}")

    t = time.perf_counter()
    for q in queries:
        c.search(q, 10, mode="hybrid")
    single = time.perf_counter() - t
    t = time.perf_counter()
    c.search_batch([{"query": q, "k": 10, "mode": "hybrid"} for q in queries])
    batch = time.perf_counter() - t
    print(f"hybrid, {len(queries)} queries: single calls {single:.2f} s, search_batch "
          f"{batch:.2f} s ({single / batch:.2f}x)")

    import bm25s

    ids = [i for i, _ in corpus]
    t = time.perf_counter()
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize([text for _, text in corpus], stopwords="en",
                                   show_progress=False), show_progress=False)
    built = time.perf_counter() - t
    print(f"bm25s {bm25s.__version__}: indexed in {built:.2f} s")
    print("BM25 queries/s, one query at a time (best of 3)")
    for k in (10, 1000):
        ours = qps(queries, lambda q: c.search(q, k, mode="sparse"))
        ranked = qps(queries, lambda q: c.rank(q, k, mode="sparse"))
        kk = min(k, len(ids))

        def theirs(q):
            tokens = bm25s.tokenize([q], stopwords="en", show_progress=False)
            retriever.retrieve(tokens, k=kk, show_progress=False)

        peer = qps(queries, theirs)
        print(f"k = {k:<5} hybrid_search search {ours:.0f}/s, rank (ids and scores) "
              f"{ranked:.0f}/s, bm25s {peer:.0f}/s")

    def spread(n_threads, mode):
        chunks = [queries[i::n_threads] for i in range(n_threads)]
        threads = [threading.Thread(target=lambda ch=ch: [c.search(q, 10, mode=mode)
                                                           for q in ch]) for ch in chunks]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        return len(queries) / (time.perf_counter() - t)

    for mode in ("sparse", "hybrid"):
        spread(1, mode)
        one = max(spread(1, mode) for _ in range(2))
        two = max(spread(2, mode) for _ in range(2))
        print(f"{mode}: 1 thread {one:.0f} queries/s, 2 threads {two:.0f} queries/s "
              f"({two / one:.2f}x)")

    model = c.manifest.get("dense", {}).get("model", {}).get("path")
    if model:
        enc = hs.Encoder.load(model)
        texts = [text for _, text in corpus[: args.passages]]
        enc.encode(texts[:32])
        t = time.perf_counter()
        enc.encode(texts, batch_size=32)
        print(f"Encoder.encode: {len(texts) / (time.perf_counter() - t):.1f} passages/s "
              f"({len(texts)} passages, batch 32)")


if __name__ == "__main__":
    main()
