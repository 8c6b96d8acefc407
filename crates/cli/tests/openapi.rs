//! The HTTP API against its own OpenAPI description: `GET /openapi.json` describes the running
//! server, and schemathesis (PyPI, `scripts/fetch-schemathesis.sh`) fuzzes every route from it
//! (phases examples, coverage, fuzzing and stateful; every check) against a server on the
//! fixture collection with a tiny model, with an API key. Without the venv the fuzz test says
//! so and passes, unless `HYBRID_SEARCH_REQUIRE_SCHEMATHESIS=1` (set by `scripts/test.sh`).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::http::Served;
use common::s;

/// Examples per operation in the fuzzing phase (the coverage phase makes its own set).
const MAX_EXAMPLES: &str = "100";

/// schemathesis's settings: no cache of earlier runs' failures (every run starts from the seed
/// alone), and the fixture's collection and document ids for half the requests that name one,
/// so the routes are exercised past their 404s. The fixture collection is not offered to
/// `DELETE /collections/{name}` (the stateful phase deletes the collections it creates).
const CONFIG: &str = r#"
[cache]
enabled = false

[dictionaries.collections]
values = ["idx"]

[dictionaries.scratch]
values = ["scratch"]

[dictionaries.documents]
values = ["en-01", "en-07", "ko-01", "ko-15"]

[[operations]]
include-name = "GET /collections/{name}"
parameters = { "path.name" = { dictionary = "collections", probability = 0.5 } }

# A filter names the collection's fields, which the description cannot list: a schema-valid
# filter on a field the collection lacks, or with a value of another type, is refused with 400.
[[operations]]
include-name = "POST /collections/{name}/search"
parameters = { "path.name" = { dictionary = "collections", probability = 0.5 } }
checks.positive_data_acceptance.expected-statuses = ["200", "400", "401", "403", "404", "409", "429", "503"]

[[operations]]
include-name = "POST /collections/{name}/search/batch"
parameters = { "path.name" = { dictionary = "collections", probability = 0.5 } }
checks.positive_data_acceptance.expected-statuses = ["200", "400", "401", "403", "404", "409", "429", "503"]

# Dropping a collection and deleting by filter (or everything) run on a copy, so the other
# operations keep the fixture's documents; dropping is left out of the fuzzing phase, whose
# generated names can reach the fixture (the coverage and stateful phases still drop).
[[operations]]
include-name = "DELETE /collections/{name}"
parameters = { "path.name" = { dictionary = "scratch", probability = 0.9 } }
phases.fuzzing.enabled = false

[[operations]]
include-name = "POST /collections/{name}/documents/delete"
parameters = { "path.name" = { dictionary = "scratch", probability = 0.9 } }
checks.positive_data_acceptance.expected-statuses = ["200", "400", "401", "403", "404", "409", "429", "503"]

[[operations]]
include-name = "POST /collections/{name}/documents"
parameters = { "path.name" = { dictionary = "collections", probability = 0.5 } }

[[operations]]
include-name = "GET /collections/{name}/documents/{id}"
parameters = { "path.name" = { dictionary = "collections", probability = 0.5 }, "path.id" = { dictionary = "documents", probability = 0.5 } }

[[operations]]
include-name = "DELETE /collections/{name}/documents/{id}"
parameters = { "path.name" = { dictionary = "collections", probability = 0.5 }, "path.id" = { dictionary = "documents", probability = 0.5 } }
"#;

#[test]
fn served_description_is_the_servers_own() {
    let tmp = tempfile::tempdir().unwrap();
    let (_index, _model) = common::tiny_model_collection(tmp.path());
    let server = Served::start(tmp.path(), &["--max-k", "50", "--api-key", "k3y"]);
    // Open without the key, like /health.
    let a = server.call_as("GET", "/openapi.json", None, None);
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["openapi"], "3.1.0");
    let k = &a.body["components"]["schemas"]["SearchBody"]["properties"]["k"];
    assert_eq!(k["maximum"], 50, "{k}");
    let upsert = &a.body["paths"]["/collections/{name}/documents"]["post"];
    assert_eq!(upsert["security"], serde_json::json!([{"api_key": []}]));
    // A method a route does not take: 405 with the methods it does take.
    let put = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
        .put(format!("{}/collections", server.base))
        .header("Authorization", "Bearer k3y")
        .send("")
        .unwrap();
    assert_eq!(put.status(), 405);
    let allow = put
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(allow.as_deref(), Some("GET,HEAD,POST"), "{allow:?}");
}

#[test]
fn schemathesis_finds_no_fault() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let st = root.join("target/schemathesis-venv/bin/st");
    if !st.exists() {
        assert!(
            !std::env::var("HYBRID_SEARCH_REQUIRE_SCHEMATHESIS").is_ok_and(|v| v == "1"),
            "{} is missing: run scripts/fetch-schemathesis.sh",
            st.display()
        );
        eprintln!("skipped: no schemathesis (scripts/fetch-schemathesis.sh makes it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // The fixture collection, its model beside it (not a collection: not served).
    let (_index, _model) = common::tiny_model_collection(&data);
    // `POST /collections` may name the model `tiny`.
    let models = tmp.path().join("models");
    hybrid_search::dense::TinyModel::default()
        .write(&models.join("tiny"))
        .unwrap();
    let index = data.join("idx");
    let copied = Command::new("cp")
        .args(["-r", s(&index), s(&data.join("scratch"))])
        .status()
        .unwrap();
    assert!(copied.success());
    let server = Served::start(
        &data,
        &["--api-key", "k3y", "--models", s(&models), "--max-k", "100"],
    );
    let work = tmp.path().join("st");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("schemathesis.toml"), CONFIG).unwrap();
    let report = work.join("junit.xml");
    let out = Command::new(&st)
        .current_dir(&work)
        .args([
            "run",
            &format!("{}/openapi.json", server.base),
            "--checks",
            "all",
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            "34",
            "--workers",
            "1",
            "--request-timeout",
            "20",
            "--max-response-time",
            "20",
            "-H",
            "Authorization: Bearer k3y",
            "--no-color",
            "--report",
            "junit",
            "--report-junit-path",
            s(&report),
        ])
        .output()
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The summary goes to the test's output and to a file `scripts/test.sh` prints at its end,
    // for the CI log.
    println!("{stdout}");
    let _ = std::fs::write(
        root.join("target/schemathesis-summary.txt"),
        stdout.as_bytes(),
    );
    assert!(
        out.status.success(),
        "schemathesis found faults (exit {:?}):\n{stdout}\n{stderr}",
        out.status.code()
    );
    assert!(stdout.contains("No issues found"), "{stdout}");
    drop(server);
    // The fixture collection may have been deleted by the stateful phase; either way the data
    // folder holds no half collection.
    assert!(!index.exists() || hybrid_search::Collection::open(&index).is_ok());
}
