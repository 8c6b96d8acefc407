//! A real Qdrant cluster, when `QDRANT_BIN` names a Qdrant server binary (it says that it
//! skipped otherwise): three peers on 127.0.0.1, each with its own ports and storage, peers 2
//! and 3 bootstrapping from peer 1; `sync` into a collection of 3 shards with replication
//! factor 2; every peer answers like the embedded engine; peer 3 is killed with SIGKILL and
//! the other two still answer; every peer is stopped by its PID.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hybrid_search::dense::{Device, Encoder, TinyModel};
use hybrid_search::{
    AnalyzerConfig, AnalyzerKind, Collection, DenseOptions, FusionOverrides, HybridOptions, Mode,
    SearchRequest, VectorKind,
};
use hybrid_search_qdrant::{Client, LegsOptions, QdrantLegs, SyncOptions, Target, sync};

/// Peers started by the test, killed (SIGKILL) by PID when dropped.
struct Peers(Vec<Child>);

impl Drop for Peers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct PeerPorts {
    http: u16,
    grpc: u16,
    p2p: u16,
}

fn start_peer(bin: &Path, storage: &Path, ports: &PeerPorts, bootstrap: Option<u16>) -> Child {
    std::fs::create_dir_all(storage).unwrap();
    let mut cmd = Command::new(bin);
    cmd.current_dir(storage)
        .env("QDRANT__SERVICE__HOST", "127.0.0.1")
        .env("QDRANT__SERVICE__HTTP_PORT", ports.http.to_string())
        .env("QDRANT__SERVICE__GRPC_PORT", ports.grpc.to_string())
        .env("QDRANT__CLUSTER__ENABLED", "true")
        .env("QDRANT__CLUSTER__P2P__PORT", ports.p2p.to_string())
        .env("QDRANT__STORAGE__STORAGE_PATH", storage.join("storage"))
        .env("QDRANT__STORAGE__SNAPSHOTS_PATH", storage.join("snapshots"))
        .env("QDRANT__TELEMETRY_DISABLED", "true")
        .args(["--uri", &format!("http://127.0.0.1:{}", ports.p2p)])
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(storage.join("peer.log")).unwrap(),
        ));
    if let Some(p2p) = bootstrap {
        cmd.args(["--bootstrap", &format!("http://127.0.0.1:{p2p}")]);
    }
    cmd.spawn().expect("start the Qdrant server")
}

/// Peers the cluster of the peer on `http` knows, from its REST API.
fn cluster_peers(http: u16) -> usize {
    ureq::get(&format!("http://127.0.0.1:{http}/cluster"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_json::<serde_json::Value>().ok())
        .and_then(|v| v["result"]["peers"].as_object().map(|p| p.len()))
        .unwrap_or(0)
}

fn target(grpc: u16) -> Target {
    Target {
        url: format!("http://127.0.0.1:{grpc}"),
        collection: "medical".into(),
    }
}

/// Every query ranks the same through `grpc`'s peer as in the engine (BM25 scores to 1e-4,
/// dense and hybrid top-10 ids).
fn answers_like_the_engine(collection: &Collection, grpc: u16, queries: &[String]) {
    let client = Client::connect(target(grpc)).unwrap();
    let (legs, warnings) = QdrantLegs::new(
        client,
        collection,
        LegsOptions {
            exact: true,
            server_fusion: None,
        },
    )
    .unwrap();
    let legs = Arc::new(legs);
    assert!(warnings.is_empty(), "{warnings:?}");
    let options: HybridOptions = collection.hybrid_options();
    for q in queries {
        for mode in [Mode::Sparse, Mode::Dense, Mode::Hybrid] {
            let local = collection
                .rank(
                    &SearchRequest::new(q, 10)
                        .with_mode(mode)
                        .with_fusion(FusionOverrides::exactly(options)),
                )
                .unwrap();
            let through = collection
                .rank(
                    &SearchRequest::new(q, 10)
                        .with_mode(mode)
                        .with_fusion(FusionOverrides::exactly(options))
                        .with_legs(legs.clone()),
                )
                .unwrap();
            assert_eq!(local.hits.len(), through.hits.len(), "{q:?} {mode:?}");
            for (a, b) in local.hits.iter().zip(&through.hits) {
                assert!(
                    (a.score - b.score).abs() <= 1e-4,
                    "{q:?} {mode:?}: {} {} vs {} {} (peer {grpc})",
                    a.id,
                    a.score,
                    b.id,
                    b.score
                );
            }
        }
    }
}

#[test]
fn three_peers_answer_like_the_engine_and_survive_one_killed() {
    let Some(bin) = std::env::var_os("QDRANT_BIN").map(PathBuf::from) else {
        eprintln!("skipping: set QDRANT_BIN to a Qdrant server binary to run the cluster test");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let ports: Vec<PeerPorts> = (0..3)
        .map(|_| PeerPorts {
            http: free_port(),
            grpc: free_port(),
            p2p: free_port(),
        })
        .collect();
    let mut peers = Peers(Vec::new());
    peers
        .0
        .push(start_peer(&bin, &tmp.path().join("peer1"), &ports[0], None));
    std::thread::sleep(Duration::from_secs(2));
    for (i, p) in ports.iter().enumerate().skip(1) {
        let dir = tmp.path().join(format!("peer{}", i + 1));
        peers.0.push(start_peer(&bin, &dir, p, Some(ports[0].p2p)));
    }
    let started = Instant::now();
    while cluster_peers(ports[0].http) < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the three peers did not form a cluster in 60 s (logs in {})",
            tmp.path().display()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let model = tmp.path().join("model");
    TinyModel::default().write(&model).unwrap();
    let encoder = Arc::new(Encoder::load(&model, &Device::Cpu).unwrap());
    let options = DenseOptions {
        kind: VectorKind::Exact,
        ..DenseOptions::for_encoder(&encoder)
    };
    let mut collection = Collection::create_with(
        &tmp.path().join("collection"),
        AnalyzerConfig::for_kind(AnalyzerKind::Auto),
        Some((encoder, options)),
    )
    .unwrap();
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/medical.jsonl");
    let docs = hybrid_search::eval::read_corpus(&fixture).unwrap();
    collection.add(&docs, None).unwrap();
    let client = Client::connect(target(ports[0].grpc)).unwrap();
    let report = sync(
        &collection,
        &client,
        SyncOptions {
            shards: Some(3),
            replicas: Some(2),
            batch: 8,
        },
        &|_, _| {},
    )
    .unwrap();
    assert!(report.created);
    assert_eq!(report.upserted, docs.len() as u64);
    let remote = client.remote_collection().unwrap().unwrap();
    assert_eq!((remote.shards, remote.replicas), (3, 2));

    let queries: Vec<String> = docs.iter().map(|d| d.title.clone()).collect();
    for p in &ports {
        answers_like_the_engine(&collection, p.grpc, &queries);
    }
    // SIGKILL peer 3: every shard has a replica on peer 1 or 2.
    peers.0[2].kill().unwrap();
    peers.0[2].wait().unwrap();
    for p in &ports[..2] {
        answers_like_the_engine(&collection, p.grpc, &queries);
    }
    // A second sync sends nothing.
    let again = sync(&collection, &client, SyncOptions::default(), &|_, _| {}).unwrap();
    assert_eq!((again.upserted, again.unchanged), (0, docs.len() as u64));
    drop(peers);
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    let port = free_port();
    let err = Client::connect(target(port))
        .err()
        .expect("nothing listens there");
    let message = err.to_string();
    assert!(
        message.contains(&format!("http://127.0.0.1:{port}")) && message.contains("\"medical\""),
        "{message}"
    );
    assert!(message.contains("gRPC port (6334"), "{message}");
}
