#!/usr/bin/env python3
"""Runs an `hybrid-search qdrant export` file through Qdrant's engine (Qdrant Edge, the PyPI
package qdrant-edge-py): the points go into an Edge shard with the collection settings
`hybrid-search qdrant sync` creates (a named dense multivector compared by MaxSim, a named
sparse vector without IDF modifier), and every exported query runs as `search --qdrant` runs
it: the sparse leg, the dense leg, and Qdrant's own fusions of the two (prefetch + RRF with
k = 61, Qdrant counting ranks from 0, i.e. the engine's k = 60; prefetch + DBSF). A payload
index is created per field of the collection spec, as `sync` creates them.

Usage: qdrant_edge_parity.py EXPORT.jsonl OUT.jsonl --depth N --fused-depth M [--exact]
       [--filters FILTERS.jsonl] [--no-unfiltered]

--depth: results of each leg alone; --fused-depth: each leg's prefetch and the fused results.
--filters: one JSON line per filter, {"name", "filter"}, the filter in Qdrant's JSON form (what
`hybrid_search_qdrant::QdrantFilter::to_json` writes); every query also runs under each filter,
given to each leg and to both prefetches. --no-unfiltered: only the filtered runs.

Writes one JSON line per query and filter: {"id", "filter" (its name, null for none), "sparse",
"dense", "rrf", "dbsf"}, each a list of [doc_id, score] best first (empty where the export has
no such vector), and a last line {"type": "timing", ...} with the load and query seconds.

qdrant-edge-py 0.9.0 hands a Python bool in MatchValue to Qdrant as an integer
(MatchValue(True).value == 1), so a `match` on a bool matches nothing here: filters given to this
script should leave bool fields out.
"""

import argparse
import json
import sys
import tempfile
import time

import qdrant_edge as q

BATCH = 256

INDEX_TYPES = {
    "string": "Keyword", "integer": "Integer", "float": "Float", "bool": "Bool",
    "date": "Datetime",
}


def condition(c):
    """One condition of Qdrant's JSON filter form as qdrant_edge's object."""
    if "key" in c:
        if "match" in c:
            m = c["match"]
            if "any" in m:
                return q.FieldCondition(key=c["key"], match=q.MatchAny(any=m["any"]))
            return q.FieldCondition(key=c["key"], match=q.MatchValue(m["value"]))
        r = c["range"]
        if any(isinstance(v, str) for v in r.values()):
            return q.FieldCondition(key=c["key"], range=q.RangeDateTime(**r))
        return q.FieldCondition(key=c["key"], range=q.RangeFloat(**r))
    if "is_empty" in c:
        return q.IsEmptyCondition(c["is_empty"]["key"])
    if "has_id" in c:
        return q.HasIdCondition(set(c["has_id"]))
    return to_filter(c)


def to_filter(f):
    """Qdrant's JSON filter form ({"must", "should", "must_not"}) as qdrant_edge's Filter."""
    part = lambda name: [condition(c) for c in f[name]] if name in f else None
    return q.Filter(must=part("must"), should=part("should"), must_not=part("must_not"))


def scored(points):
    return [[p.payload["doc_id"], p.score] for p in points]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("export")
    ap.add_argument("out")
    ap.add_argument("--depth", type=int, required=True)
    ap.add_argument("--fused-depth", type=int, required=True)
    ap.add_argument("--exact", action="store_true")
    ap.add_argument("--filters")
    ap.add_argument("--no-unfiltered", action="store_true")
    args = ap.parse_args()
    filters = [] if args.no_unfiltered else [(None, None)]
    if args.filters:
        with open(args.filters, encoding="utf-8") as f:
            for line in f:
                o = json.loads(line)
                filters.append((o["name"], to_filter(o["filter"])))

    started = time.time()
    with open(args.export, encoding="utf-8") as f, tempfile.TemporaryDirectory() as tmp:
        spec = json.loads(next(f))
        if spec.get("type") != "collection":
            sys.exit(f"{args.export}: the first line is not the collection spec")
        dense = spec.get("dense")
        vectors = {}
        if dense:
            vectors["dense"] = q.EdgeVectorParams(
                size=dense["size"],
                distance=getattr(q.Distance, dense["distance"]),
                multivector_config=q.MultiVectorConfig(q.MultiVectorComparator.MaxSim),
            )
        config = q.EdgeConfig(
            vectors=vectors, sparse_vectors={"bm25": q.EdgeSparseVectorParams()}
        )
        shard = q.EdgeShard.create(tmp, config)
        for field in spec.get("fields", []):
            key = 'fields."%s"' % field["name"]
            kind = getattr(q.PayloadSchemaType, INDEX_TYPES[field["type"]])
            shard.update(q.UpdateOperation.create_field_index(key, kind))
        batch, queries, points = [], [], 0
        for line in f:
            o = json.loads(line)
            if o["type"] == "point":
                v = o["vector"]
                vec = {"bm25": q.SparseVector(v["bm25"]["indices"], v["bm25"]["values"])}
                if "dense" in v:
                    vec["dense"] = v["dense"]
                batch.append(q.Point(o["id"], vec, o["payload"]))
                points += 1
                if len(batch) >= BATCH:
                    shard.update(q.UpdateOperation.upsert_points(batch))
                    batch = []
            elif o["type"] == "query":
                queries.append(o)
        if batch:
            shard.update(q.UpdateOperation.upsert_points(batch))
        shard.flush()
        loaded = time.time()

        params = q.SearchParams(exact=args.exact, hnsw_ef=dense["hnsw_ef"] if dense else None)
        with open(args.out, "w", encoding="utf-8") as out:
            for o in queries:
                v = o["vector"]
                sparse_q = None
                if v["bm25"]["indices"]:
                    sparse_q = q.Query.Nearest(
                        q.SparseVector(v["bm25"]["indices"], v["bm25"]["values"]), using="bm25"
                    )
                dense_q = q.Query.Nearest([v["dense"]], using="dense") if "dense" in v else None
                for name, flt in filters:
                    row = {"id": o["id"], "filter": name, "sparse": [], "dense": [], "rrf": [],
                           "dbsf": []}
                    prefetches = []
                    if sparse_q is not None:
                        row["sparse"] = scored(shard.query(q.QueryRequest(
                            limit=args.depth, query=sparse_q, filter=flt,
                            with_payload=["doc_id"])))
                        prefetches.append(
                            q.Prefetch(limit=args.fused_depth, query=sparse_q, filter=flt))
                    if dense_q is not None:
                        row["dense"] = scored(shard.query(q.QueryRequest(
                            limit=args.depth, query=dense_q, params=params, filter=flt,
                            with_payload=["doc_id"])))
                        prefetches.append(q.Prefetch(
                            limit=args.fused_depth, query=dense_q, params=params, filter=flt))
                    if prefetches:
                        for fname, fusion in (("rrf", q.Fusion.Rrf(k=61)),
                                              ("dbsf", q.Fusion.Dbsf())):
                            row[fname] = scored(shard.query(q.QueryRequest(
                                limit=args.fused_depth, prefetches=prefetches, query=fusion,
                                filter=flt, with_payload=["doc_id"])))
                    out.write(json.dumps(row) + "\n")
            out.write(json.dumps({
                "type": "timing", "points": points, "queries": len(queries),
                "load_seconds": loaded - started, "query_seconds": time.time() - loaded,
            }) + "\n")
        shard.close()


if __name__ == "__main__":
    main()
