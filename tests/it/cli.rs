//! End-to-end tests of the `medlink` binary: exit codes and messages for bad input.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::{cache_dir, shared_data};

fn medlink() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_medlink"));
    cmd.env("MEDLINK_CACHE", cache_dir());
    cmd
}

fn run(cmd: &mut Command, stdin: &[u8]) -> (i32, String, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `medlink index build` over the sample cardiology vocabulary into `parent/cardio`.
fn build_sample_index(parent: &std::path::Path) -> std::path::PathBuf {
    let out = parent.join("cardio");
    let sample = format!(
        "tsv:{}/ontologies/samples/custom.tsv",
        env!("CARGO_MANIFEST_DIR")
    );
    let (code, _, stderr) = run(
        medlink()
            .args(["index", "build", "--ontology", &sample, "--out"])
            .arg(&out),
        b"",
    );
    assert_eq!(code, 0, "{stderr}");
    out
}

#[test]
fn ontology_inspect_prints_the_documented_keys() {
    let spec = format!(
        "medic:{}",
        shared_data("vocab/medic_2012/medic_06Jul2012.txt").display()
    );
    let (code, stdout, stderr) = run(medlink().args(["ontology", "inspect", &spec]), b"");
    assert_eq!(code, 0, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for key in [
        "concepts",
        "active_concepts",
        "names",
        "synonyms_per_concept",
        "types",
        "xref_prefixes",
        "warnings",
    ] {
        assert!(json.get(key).is_some(), "missing {key}: {stdout}");
    }
    assert_eq!(json["concepts"], 11_915);
    assert_eq!(json["names"], 76_237);
}

#[test]
fn bad_ontology_arguments_exit_2_with_a_message() {
    let (code, _, stderr) = run(medlink().args(["ontology", "inspect", "owl:x.owl"]), b"");
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown ontology format `owl`"), "{stderr}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.tsv");
    std::fs::write(&bad, "X:1\tname\nX:2\n").unwrap();
    let (code, _, stderr) = run(
        medlink().args(["ontology", "inspect", &format!("tsv:{}", bad.display())]),
        b"",
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("bad.tsv:2"), "{stderr}");
    let (code, _, stderr) = run(
        medlink().args(["ontology", "inspect", "obo:/no/such/file.obo"]),
        b"",
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("/no/such/file.obo"), "{stderr}");
}

#[test]
fn search_and_link_refuse_missing_index_and_bad_k() {
    let (code, _, stderr) = run(
        medlink().args(["search", "--index", "/no/such/index", "big head"]),
        b"",
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("/no/such/index"), "{stderr}");
    let (code, _, stderr) = run(
        medlink().args(["search", "--index", "/no/such/index", "-k", "0", "big head"]),
        b"",
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("k must be between 1 and 100"), "{stderr}");
    let (code, _, stderr) = run(medlink().args(["search", "-k", "101", "big head"]), b"");
    assert_eq!(code, 2);
    assert!(stderr.contains("k must be between 1 and 100"), "{stderr}");
}

#[test]
fn link_streams_jsonl_and_names_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let out = build_sample_index(dir.path());
    let index = out.to_str().unwrap();
    let input =
        b"{\"id\": 7, \"mention\": \"heart attack\"}\n\n{\"mention\": \"high blood pressure\"}\n";
    let (code, stdout, stderr) = run(medlink().args(["link", "--index", index, "-k", "3"]), input);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["id"], 7);
    assert_eq!(lines[0]["line"], 1);
    assert_eq!(lines[1]["line"], 3);
    assert_eq!(lines[0]["candidates"].as_array().unwrap().len(), 3);

    let (code, _, stderr) = run(
        medlink().args(["link", "--index", index]),
        b"{\"mention\": \"ok\"}\n\xff\xfe\n",
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("<stdin>:2: invalid UTF-8"), "{stderr}");
    let (code, _, stderr) = run(
        medlink().args(["link", "--index", index]),
        b"{\"mention\": 3}\n",
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("<stdin>:1"), "{stderr}");
    let (code, _, stderr) = run(
        medlink().args(["link", "--index", index]),
        b"{\"mention\": \"\"}\n",
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("<stdin>:1: field `mention`"), "{stderr}");
    let huge = format!("{{\"mention\": \"{}\"}}\n", "a".repeat(10 << 20));
    let (code, _, stderr) = run(medlink().args(["link", "--index", index]), huge.as_bytes());
    assert_eq!(code, 2);
    assert!(stderr.contains("the limit is 1000"), "{stderr}");
}

#[test]
fn search_refuses_an_index_built_with_another_model() {
    let dir = tempfile::tempdir().unwrap();
    let out = build_sample_index(dir.path());
    // Same weights, other pooling: a different model as far as vectors go.
    let (code, _, stderr) = run(
        medlink().args([
            "search",
            "--pooling",
            "cls",
            "--index",
            out.to_str().unwrap(),
            "heart attack",
        ]),
        b"",
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("index was built with model"), "{stderr}");
}

#[test]
fn eval_ner_scores_a_corpus_against_itself_and_a_shifted_copy() {
    let gold = shared_data("ncbi_disease/NCBIdevelopset_corpus.txt");
    let spec = format!("pubtator:{}", gold.display());
    let (code, stdout, stderr) = run(
        medlink().args(["eval", "ner", "--gold", &spec, "--predicted", &spec]),
        b"",
    );
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["gold"], 787);
    assert_eq!(report["strict"]["overall"]["f1"], 1.0);

    // Every predicted span one character shorter: no strict match, every lenient match.
    let dir = tempfile::tempdir().unwrap();
    let shifted = dir.path().join("shifted.txt");
    let text = std::fs::read_to_string(&gold).unwrap();
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() == 6 {
                let end: usize = cols[2].parse().unwrap();
                let mention: String = cols[3].chars().take(cols[3].chars().count() - 1).collect();
                format!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    cols[0],
                    cols[1],
                    end - 1,
                    mention,
                    cols[4],
                    cols[5]
                )
            } else {
                line.to_string()
            }
        })
        .collect();
    std::fs::write(&shifted, lines.join("\n") + "\n").unwrap();
    let predicted = format!("pubtator:{}", shifted.display());
    let (code, stdout, stderr) = run(
        medlink().args(["eval", "ner", "--gold", &spec, "--predicted", &predicted]),
        b"",
    );
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["strict"]["overall"]["tp"], 0);
    assert_eq!(report["lenient"]["overall"]["recall"], 1.0);
}
