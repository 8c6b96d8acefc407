//! `docs/openapi.json` is the description the server generates (for a server with an API key
//! and the default limits): this test fails when the committed file is stale. Regenerate it
//! with `UPDATE_OPENAPI=1 cargo test --release -p hybrid-search-server --test openapi`.

use std::path::PathBuf;

#[test]
fn committed_description_is_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let generated =
        serde_json::to_string_pretty(&hybrid_search_server::documented_openapi()).unwrap() + "\n";
    if std::env::var("UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is stale: regenerate it with \
         `UPDATE_OPENAPI=1 cargo test --release -p hybrid-search-server --test openapi`"
    );
}

#[test]
fn description_follows_the_servers_settings() {
    let mut options = hybrid_search_server::Options::new(PathBuf::from("data"));
    options.limits.max_k = 50;
    let open = hybrid_search_server::openapi_description(&options);
    assert_eq!(open["openapi"], "3.1.0");
    let k = &open["components"]["schemas"]["SearchBody"]["properties"]["k"];
    assert_eq!(k["maximum"], 50, "{k}");
    // No key: no route needs one, and none answers 401.
    let upsert = &open["paths"]["/collections/{name}/documents"]["post"];
    assert!(upsert.get("security").is_none(), "{upsert}");
    assert!(upsert["responses"].get("401").is_none());

    options.api_key = Some("k".into());
    let keyed = hybrid_search_server::openapi_description(&options);
    // Reads stay open (no security, no 401) unless --protect-search.
    let search = &keyed["paths"]["/collections/{name}/search"]["post"];
    assert!(search.get("security").is_none(), "{search}");
    assert!(search["responses"].get("401").is_none());
    let upsert = &keyed["paths"]["/collections/{name}/documents"]["post"];
    assert_eq!(upsert["security"], serde_json::json!([{"api_key": []}]));

    options.protect_search = true;
    let protected = hybrid_search_server::openapi_description(&options);
    let search = &protected["paths"]["/collections/{name}/search"]["post"];
    assert_eq!(search["security"], serde_json::json!([{"api_key": []}]));
    assert!(search["responses"].get("401").is_some());
    assert!(
        protected["paths"]["/health"]["get"]
            .get("security")
            .is_none()
    );
}
