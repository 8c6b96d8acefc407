//! Collections written by earlier versions must keep opening. `fixtures/compat/v1-en` is a format
//! version 1 collection (the `en` analyzer over `fixtures/medical.jsonl`), committed as written by
//! hybrid-search 0.1.0; when the format changes, add the new version's fixture beside it.

use std::path::{Path, PathBuf};

use hybrid_search::Collection;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn opens_a_format_1_collection() {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/compat/v1-en");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v1");
    copy_dir(&fixture, &dir); // never write into the fixture itself
    let collection = Collection::open(&dir).unwrap();
    assert_eq!(collection.manifest().format_version, 1);
    assert_eq!(collection.len(), 30);
    let mut ids: Vec<String> = collection
        .search_ids("IL-6", 4)
        .unwrap()
        .into_iter()
        .map(|(id, _)| id.to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["en-01", "en-02", "ko-04", "ko-05"]);
    assert_eq!(
        collection.get("en-07").unwrap().unwrap().title,
        "Serotonin receptors"
    );
}
