//! Every file under `fuzz/corpus/<target>/` (the seeds, and each input that ever crashed a
//! fuzz target) through the same function the target runs, so a fixed crash stays fixed
//! without the fuzzer.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    for file in files {
        let data = std::fs::read(&file).expect("corpus file");
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{} panicked", file.display());
    }
}

#[test]
fn otlp_protobuf_corpus() {
    replay("otlp_protobuf", trailhead::fuzzing::otlp_protobuf);
}

#[test]
fn otlp_json_corpus() {
    replay("otlp_json", trailhead::fuzzing::otlp_json);
}

#[test]
fn zipkin_corpus() {
    replay("zipkin", trailhead::fuzzing::zipkin);
}

#[test]
fn config_corpus() {
    replay("config", trailhead::fuzzing::config);
}
