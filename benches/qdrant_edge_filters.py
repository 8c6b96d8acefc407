#!/usr/bin/env python3
"""benches/src/bin/filter-speed.rs through Qdrant's engine: the same collection, exported by
`hybrid-search qdrant export --queries`, loaded into a Qdrant Edge shard (qdrant-edge-py, made by
scripts/fetch-qdrant-edge.sh) with the settings `sync` creates (MaxSim multivector `dense`,
sparse `bm25`, a payload index per field, created before the points), HNSW m = 16 and
ef_construct = 128 as the engine builds its graph, hnsw_ef from the export's spec, optimised
until Edge has nothing left to do. Then, per selectivity of `{"field": "bucket", "lt": 10000 s}`
(the filter QdrantFilter sends for it), for each query:

- the filtered dense top-10 with HNSW, and exact (brute force over the matching points), for
  recall@10 and for hits returned against min(k, matches);
- a filtered hybrid search as `search --qdrant --fusion server-rrf` sends it (a prefetch per
  leg, filtered, fused by Qdrant's RRF), timed.

Usage: qdrant_edge_filters.py EXPORT.jsonl [--queries N] [--fused-depth M]

Prints one table in filter-speed's columns. Times are Edge's query() calls alone (the query
vectors come from the export), one at a time on this process's thread.
"""

import argparse
import json
import sys
import tempfile
import time

import qdrant_edge as q

BUCKETS = 10_000
SELECTIVITIES = [1.0, 0.5, 0.1, 0.01, 0.001, 0.0001]
K = 10
BATCH = 256
INDEX_TYPES = {
    "string": "Keyword", "integer": "Integer", "float": "Float", "bool": "Bool",
    "date": "Datetime",
}


def pct(xs, p):
    xs = sorted(xs)
    return xs[round(p * (len(xs) - 1))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("export")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--fused-depth", type=int, default=100)
    args = ap.parse_args()

    started = time.time()
    with open(args.export, encoding="utf-8") as f, tempfile.TemporaryDirectory() as tmp:
        spec = json.loads(next(f))
        dense = spec.get("dense")
        if not dense:
            sys.exit(f"{args.export}: the collection has no dense leg")
        config = q.EdgeConfig(
            vectors={"dense": q.EdgeVectorParams(
                size=dense["size"],
                distance=getattr(q.Distance, dense["distance"]),
                multivector_config=q.MultiVectorConfig(q.MultiVectorComparator.MaxSim),
            )},
            sparse_vectors={"bm25": q.EdgeSparseVectorParams()},
            hnsw_config=q.HnswIndexConfig(m=16, ef_construct=128, full_scan_threshold=10_000),
        )
        shard = q.EdgeShard.create(tmp, config)
        for field in spec.get("fields", []):
            shard.update(q.UpdateOperation.create_field_index(
                'fields."%s"' % field["name"],
                getattr(q.PayloadSchemaType, INDEX_TYPES[field["type"]])))
        batch, queries, points = [], [], 0
        for line in f:
            o = json.loads(line)
            if o["type"] == "point":
                v = o["vector"]
                vec = {"bm25": q.SparseVector(v["bm25"]["indices"], v["bm25"]["values"]),
                       "dense": v["dense"]}
                batch.append(q.Point(o["id"], vec, o["payload"]))
                points += 1
                if len(batch) >= BATCH:
                    shard.update(q.UpdateOperation.upsert_points(batch))
                    batch = []
            elif o["type"] == "query" and len(queries) < args.queries:
                queries.append(o)
        if batch:
            shard.update(q.UpdateOperation.upsert_points(batch))
        shard.flush()
        loaded = time.time()
        while shard.optimize():
            pass
        optimised = time.time()
        print(f"Qdrant Edge (qdrant-edge-py): {points} points loaded in {loaded - started:.1f} s, "
              f"optimised (HNSW) in {optimised - loaded:.1f} s; {len(queries)} queries, k = {K}, "
              f"hnsw_ef {dense['hnsw_ef']}, RRF prefetch depth {args.fused_depth}")
        hnsw = q.SearchParams(hnsw_ef=dense["hnsw_ef"])
        exact = q.SearchParams(exact=True)
        print("selectivity  matches  min(k,m) ok  recall@10  dense p50/p95 ms  hybrid p50/p95 ms")
        for s in SELECTIVITIES:
            flt = None
            if s < 1.0:
                flt = q.Filter(must=[q.FieldCondition(
                    key='fields."bucket"', range=q.RangeFloat(lt=float(round(BUCKETS * s))))])
            matches = shard.count(q.CountRequest(exact=True, filter=flt))
            want = min(K, matches)
            ok, recall, dense_ms, hybrid_ms = 0, 0.0, [], []
            for i, o in enumerate(queries):
                v = o["vector"]
                dense_q = q.Query.Nearest([v["dense"]], using="dense")
                t = time.perf_counter()
                got = shard.query(q.QueryRequest(
                    limit=K, query=dense_q, params=hnsw, filter=flt, with_payload=False))
                if i >= 5:  # the first queries of each selectivity warm up, as in filter-speed
                    dense_ms.append((time.perf_counter() - t) * 1000)
                truth = shard.query(q.QueryRequest(
                    limit=K, query=dense_q, params=exact, filter=flt, with_payload=False))
                ok += len(got) == want
                truth_ids = {str(p.id) for p in truth}
                recall += (len(truth_ids & {str(p.id) for p in got}) / len(truth_ids)
                           if truth_ids else 1.0)
                prefetches = [q.Prefetch(limit=args.fused_depth, query=dense_q, params=hnsw,
                                         filter=flt)]
                if v["bm25"]["indices"]:
                    prefetches.append(q.Prefetch(
                        limit=args.fused_depth,
                        query=q.Query.Nearest(q.SparseVector(
                            v["bm25"]["indices"], v["bm25"]["values"]), using="bm25"),
                        filter=flt))
                t = time.perf_counter()
                shard.query(q.QueryRequest(limit=K, prefetches=prefetches,
                                           query=q.Fusion.Rrf(k=61), filter=flt,
                                           with_payload=["doc_id"]))
                if i >= 5:
                    hybrid_ms.append((time.perf_counter() - t) * 1000)
            n = len(queries)
            print(f"{s * 100:>10g}%  {matches:>7}  {ok:>5}/{n:<5}  {recall / n:>9.4f}  "
                  f"{pct(dense_ms, .5):>6.2f} / {pct(dense_ms, .95):<6.2f}  "
                  f"{pct(hybrid_ms, .5):>6.2f} / {pct(hybrid_ms, .95):.2f}")
        shard.close()


if __name__ == "__main__":
    main()
