//! Load on `hybrid-search serve`: `--clients` HTTP clients sending searches back to back for
//! `--seconds`, optionally with one writer adding `--batch` documents per commit back to back at
//! the same time; prints one JSON line: requests, errors, requests/s and latency percentiles in
//! milliseconds (and the writer's commits). With `--library INDEX` it instead times the same
//! searches one at a time through the library in this process and through HTTP, alternately
//! (the service's overhead); with `--spawn BIN --index DIR` the clients spawn `BIN search` per
//! query instead of calling the server (the CLI's rate).
//! `benches/serve-load.sh` runs every measurement of `docs/benchmarks.md`.
//!
//! ```text
//! serve-load --url http://127.0.0.1:7700 --collection scifact --dataset ../shared/data/scifact \
//!     --clients 8 --seconds 60 [--writer] [--mode hybrid] [--key KEY]
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hybrid_search::eval::load_dataset;
use hybrid_search::{Collection, Mode, ModelChoice, SearchRequest};
use serde_json::json;

struct Args {
    url: String,
    collection: String,
    dataset: PathBuf,
    split: String,
    clients: usize,
    seconds: f64,
    mode: String,
    writer: bool,
    batch: usize,
    key: Option<String>,
    library: Option<PathBuf>,
    spawn: Option<(PathBuf, PathBuf)>,
}

fn args() -> Args {
    let mut a = Args {
        url: "http://127.0.0.1:7700".into(),
        collection: String::new(),
        dataset: PathBuf::new(),
        split: "test".into(),
        clients: 8,
        seconds: 60.0,
        mode: "hybrid".into(),
        writer: false,
        batch: 10,
        key: None,
        library: None,
        spawn: None,
    };
    let mut it = std::env::args().skip(1);
    let mut spawn_bin = None;
    let mut index = None;
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => a.url = value(),
            "--collection" => a.collection = value(),
            "--dataset" => a.dataset = value().into(),
            "--split" => a.split = value(),
            "--clients" => a.clients = value().parse().expect("--clients N"),
            "--seconds" => a.seconds = value().parse().expect("--seconds S"),
            "--mode" => a.mode = value(),
            "--writer" => a.writer = true,
            "--batch" => a.batch = value().parse().expect("--batch N"),
            "--key" => a.key = Some(value()),
            "--library" => a.library = Some(value().into()),
            "--spawn" => spawn_bin = Some(PathBuf::from(value())),
            "--index" => index = Some(PathBuf::from(value())),
            other => panic!("unknown flag {other}"),
        }
    }
    if let Some(bin) = spawn_bin {
        a.spawn = Some((bin, index.expect("--spawn needs --index DIR")));
    }
    assert!(
        !a.dataset.as_os_str().is_empty(),
        "--dataset DIR (its queries are sent)"
    );
    a
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((p * (sorted.len() - 1) as f64).round() as usize).min(sorted.len() - 1)]
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// One search through HTTP: (status, milliseconds).
fn http_search(agent: &ureq::Agent, a: &Args, query: &str) -> (u16, f64) {
    let url = format!("{}/collections/{}/search", a.url, a.collection);
    let body = json!({"query": query, "k": 10, "mode": a.mode});
    let started = Instant::now();
    let mut request = agent.post(&url);
    if let Some(k) = &a.key {
        request = request.header("Authorization", &format!("Bearer {k}"));
    }
    let status = match request.send_json(&body) {
        Ok(mut r) => {
            let status = r.status().as_u16();
            let text = r.body_mut().read_to_string().unwrap_or_default();
            if status != 200 {
                eprintln!("error {status}: {text}");
            }
            status
        }
        Err(e) => {
            eprintln!("error: {e}");
            0
        }
    };
    (status, started.elapsed().as_secs_f64() * 1e3)
}

/// One search by spawning the CLI: (status 200 or 0, milliseconds).
fn spawned_search(bin: &PathBuf, index: &PathBuf, mode: &str, query: &str) -> (u16, f64) {
    let started = Instant::now();
    let out = std::process::Command::new(bin)
        .args(["search", "--index"])
        .arg(index)
        .args(["-k", "10", "--json", "--mode", mode, query])
        .output()
        .expect("the CLI runs");
    let status = if out.status.success() { 200 } else { 0 };
    (status, started.elapsed().as_secs_f64() * 1e3)
}

fn summary(label: &str, mut times: Vec<f64>, errors: usize, seconds: f64) -> serde_json::Value {
    times.sort_by(f64::total_cmp);
    let n = times.len();
    json!({
        "run": label,
        "requests": n,
        "errors": errors,
        "seconds": seconds,
        "requests_per_s": n as f64 / seconds,
        "p50_ms": percentile(&times, 0.5),
        "p95_ms": percentile(&times, 0.95),
        "p99_ms": percentile(&times, 0.99),
        "max_ms": times.last().copied().unwrap_or(f64::NAN),
    })
}

fn main() {
    let a = Arc::new(args());
    let dataset = load_dataset(&a.dataset, &a.split).expect("the dataset loads");
    let queries: Arc<Vec<String>> =
        Arc::new(dataset.queries.iter().map(|q| q.text.clone()).collect());
    assert!(!queries.is_empty(), "the dataset has no queries");

    if let Some(index) = &a.library {
        // The same searches one at a time, in this process and through HTTP.
        let mut collection = Collection::open(index).expect("the collection opens");
        let mode = match a.mode.as_str() {
            "sparse" => Mode::Sparse,
            "dense" => Mode::Dense,
            _ => Mode::Hybrid,
        };
        collection
            .attach_model_for_search(&ModelChoice::default(), mode, false)
            .expect("the model loads");
        let n = queries.len().min(300);
        let agent = agent();
        for q in queries.iter().take(10) {
            collection
                .run(&SearchRequest::new(q, 10).with_mode(mode))
                .unwrap();
            http_search(&agent, &a, q);
        }
        let (mut library, mut http) = (Vec::new(), Vec::new());
        for q in queries.iter().take(n) {
            let started = Instant::now();
            collection
                .run(&SearchRequest::new(q, 10).with_mode(mode))
                .unwrap();
            library.push(started.elapsed().as_secs_f64() * 1e3);
            let (status, ms) = http_search(&agent, &a, q);
            assert_eq!(status, 200);
            http.push(ms);
        }
        let total = |t: &[f64]| t.iter().sum::<f64>() / 1e3;
        let (lt, ht) = (total(&library), total(&http));
        for (label, times, secs) in [
            ("library, 1 client", library, lt),
            ("http, 1 client", http, ht),
        ] {
            let s = summary(label, times, 0, secs);
            println!("{s}");
        }
        return;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let results: Arc<Mutex<(Vec<f64>, usize)>> = Arc::default();
    let started = Instant::now();
    let clients: Vec<_> = (0..a.clients)
        .map(|c| {
            let (a, queries, stop, results) =
                (a.clone(), queries.clone(), stop.clone(), results.clone());
            std::thread::spawn(move || {
                let agent = agent();
                let (mut times, mut errors) = (Vec::new(), 0);
                let mut i = c * 37;
                while !stop.load(Ordering::Relaxed) {
                    let q = &queries[i % queries.len()];
                    let (status, ms) = match &a.spawn {
                        Some((bin, index)) => spawned_search(bin, index, &a.mode, q),
                        None => http_search(&agent, &a, q),
                    };
                    if status == 200 {
                        times.push(ms);
                    } else {
                        errors += 1;
                    }
                    i += 1;
                }
                let mut r = results.lock().unwrap();
                r.0.extend(times);
                r.1 += errors;
            })
        })
        .collect();
    let writer = a.writer.then(|| {
        let (a, stop) = (a.clone(), stop.clone());
        let corpus = dataset.corpus.clone();
        std::thread::spawn(move || {
            let agent = agent();
            let url = format!("{}/collections/{}/documents", a.url, a.collection);
            let (mut times, mut errors, mut added) = (Vec::new(), 0usize, 0usize);
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let docs: Vec<serde_json::Value> = (0..a.batch)
                    .map(|j| {
                        let d = &corpus[(n + j) % corpus.len()];
                        json!({"id": format!("load-{}", n + j), "title": d.title, "text": d.text})
                    })
                    .collect();
                n += a.batch;
                let begun = Instant::now();
                let mut request = agent.post(&url);
                if let Some(k) = &a.key {
                    request = request.header("Authorization", &format!("Bearer {k}"));
                }
                match request.send_json(&docs) {
                    Ok(r) if r.status() == 200 => {
                        times.push(begun.elapsed().as_secs_f64() * 1e3);
                        added += a.batch;
                    }
                    Ok(mut r) => {
                        errors += 1;
                        eprintln!(
                            "write error {}: {}",
                            r.status(),
                            r.body_mut().read_to_string().unwrap_or_default()
                        );
                    }
                    Err(e) => {
                        errors += 1;
                        eprintln!("write error: {e}");
                    }
                }
            }
            (times, errors, added)
        })
    });
    std::thread::sleep(Duration::from_secs_f64(a.seconds));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (times, errors) = std::mem::take(&mut *results.lock().unwrap());
    let label = match (&a.spawn, a.writer) {
        (Some(_), _) => format!("spawned CLI, {} clients", a.clients),
        (None, false) => format!("http, {} clients", a.clients),
        (None, true) => format!("http, {} clients + 1 writer", a.clients),
    };
    let mut s = summary(&label, times, errors, elapsed);
    if let Some(w) = writer {
        let (times, errors, added) = w.join().unwrap();
        let writes = summary("writes", times, errors, elapsed);
        s["writer"] = json!({
            "commits": writes["requests"], "errors": errors, "documents_added": added,
            "batch": a.batch, "p50_ms": writes["p50_ms"], "p95_ms": writes["p95_ms"],
        });
    }
    println!("{s}");
}
