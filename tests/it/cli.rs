//! End-to-end tests of the `medlink` binary: exit codes and messages for bad input.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::{cache_dir, shared_data};

pub(crate) fn medlink() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_medlink"));
    cmd.env("MEDLINK_CACHE", cache_dir());
    cmd
}

pub(crate) fn run(cmd: &mut Command, stdin: &[u8]) -> (i32, String, String) {
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
pub(crate) fn build_sample_index(parent: &std::path::Path) -> std::path::PathBuf {
    build_sample_index_with(parent, &[])
}

/// As [`build_sample_index`], with extra `index build` flags.
pub(crate) fn build_sample_index_with(
    parent: &std::path::Path,
    flags: &[&str],
) -> std::path::PathBuf {
    let out = parent.join("cardio");
    let sample = format!(
        "tsv:{}/ontologies/samples/custom.tsv",
        env!("CARGO_MANIFEST_DIR")
    );
    let (code, _, stderr) = run(
        medlink()
            .args(["index", "build"])
            .args(flags)
            .args(["--ontology", &sample, "--out"])
            .arg(&out),
        b"",
    );
    assert_eq!(code, 0, "{stderr}");
    out
}

/// `--int8` reaches the encoder: `embed` prints other (close) vectors, and an index built with
/// it records so in its manifest and is queried by the f32 encoder without complaint.
#[test]
fn int8_flag_changes_vectors_and_is_recorded_in_the_manifest() {
    let vectors = |flags: &[&str]| -> Vec<Vec<f32>> {
        let (code, stdout, stderr) = run(
            medlink().arg("embed").args(flags),
            b"atrial fibrillation\nbig head\n",
        );
        assert_eq!(code, 0, "{stderr}");
        stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let (full, quantised) = (vectors(&[]), vectors(&["--int8"]));
    assert_eq!(full.len(), 2);
    for (f, q) in full.iter().zip(&quantised) {
        let dot: f32 = f.iter().zip(q).map(|(a, b)| a * b).sum();
        assert!(dot > 0.99 && dot < 0.99999, "f32 vs int8 cosine {dot}");
    }

    let dir = tempfile::tempdir().unwrap();
    let out = build_sample_index_with(dir.path(), &["--int8"]);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["model"]["int8"], true, "{manifest}");
    let (code, stdout, stderr) = run(
        medlink()
            .args(["search", "--index"])
            .arg(&out)
            .args(["-k", "1", "heart attack"]),
        b"",
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("nfarction"), "{stdout}");
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
fn search_and_link_refuse_missing_index_bad_k_and_bad_candidates() {
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
    for candidates in ["0", "1001"] {
        let (code, _, stderr) = run(
            medlink().args(["search", "--candidates", candidates, "big head"]),
            b"",
        );
        assert_eq!(code, 2);
        assert!(
            stderr.contains(&format!(
                "candidates must be between 1 and 1000, got {candidates}"
            )),
            "{stderr}"
        );
    }
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

/// `eval ner --tagger` tags the gold corpus's texts itself: gold made of the entities
/// transformers' pipeline gives for the tiny checkpoint scores 1.0, and one gold span removed
/// costs exactly one false positive.
#[test]
fn eval_ner_with_a_tagger_scores_its_entities() {
    let tagger = crate::common::fixture("tagger-tiny");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tagger.join("expected.json")).unwrap())
            .unwrap();
    let case = &expected["texts"][0];
    let text = case["text"].as_str().unwrap();
    let entities = case["entities"]["first"].as_array().unwrap();
    assert!(entities.len() >= 2);
    let dir = tempfile::tempdir().unwrap();
    let corpus = |name: &str, skip: usize| {
        let mut out = format!("1|t|{text}\n1|a|\n");
        for e in entities.iter().skip(skip) {
            let (start, end) = (e["start"].as_u64().unwrap(), e["end"].as_u64().unwrap());
            let mention: String = text
                .chars()
                .skip(start as usize)
                .take((end - start) as usize)
                .collect();
            out += &format!(
                "1\t{start}\t{end}\t{mention}\t{}\t-1\n",
                e["entity_group"].as_str().unwrap()
            );
        }
        let path = dir.path().join(name);
        std::fs::write(&path, out).unwrap();
        format!("pubtator:{}", path.display())
    };
    let stride = expected["stride"].as_u64().unwrap().to_string();
    let score = |gold: &str| {
        let (code, stdout, stderr) = run(
            medlink()
                .args([
                    "eval",
                    "ner",
                    "--gold",
                    gold,
                    "--tagger-stride",
                    &stride,
                    "--tagger",
                ])
                .arg(&tagger),
            b"",
        );
        assert_eq!(code, 0, "{stderr}");
        serde_json::from_str::<serde_json::Value>(&stdout).unwrap()
    };
    let all = score(&corpus("all.txt", 0));
    assert_eq!(all["strict"]["overall"]["f1"], 1.0, "{all}");
    let fewer = score(&corpus("fewer.txt", 1));
    assert_eq!(fewer["strict"]["overall"]["fp"], 1, "{fewer}");
    assert_eq!(fewer["strict"]["overall"]["fn"], 0, "{fewer}");
    // One source of predictions at a time.
    let gold = corpus("again.txt", 0);
    let (code, _, stderr) = run(
        medlink()
            .args([
                "eval",
                "ner",
                "--gold",
                &gold,
                "--predicted",
                &gold,
                "--tagger",
            ])
            .arg(&tagger),
        b"",
    );
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn link_expands_short_forms_defined_in_the_context() {
    let dir = tempfile::tempdir().unwrap();
    let out = build_sample_index(dir.path());
    let input = concat!(
        r#"{"id": "a", "mention": "AUF", "context": "Seen for auricular fibrillation (AUF) twice."}"#,
        "\n",
        r#"{"id": "b", "mention": "AUF"}"#,
        "\n",
        r#"{"id": "c", "mention": "AUF", "context": "No definition here."}"#,
        "\n",
        // Defined in the plural, used in the singular inside a longer mention.
        r#"{"id": "d", "mention": "paroxysmal AUF", "context": "Two auricular fibrillations (AUFs)."}"#,
        "\n",
    );
    let (code, stdout, stderr) = run(
        medlink().args(["link", "--index", out.to_str().unwrap(), "-k", "1"]),
        input.as_bytes(),
    );
    assert_eq!(code, 0, "{stderr}");
    let mut lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    let last = lines.pop().unwrap();
    assert_eq!(last["linked_text"], "paroxysmal auricular fibrillations");
    assert_eq!(last["expanded_from"], "paroxysmal AUF");
    // Defined in its context: the long form is linked, and the answer says so.
    assert_eq!(lines[0]["linked_text"], "auricular fibrillation");
    assert_eq!(lines[0]["expanded_from"], "AUF");
    let top = &lines[0]["candidates"][0];
    assert_eq!(
        (&top["id"], &top["exact"]),
        (&"CARD:0006".into(), &true.into())
    );
    // Without a context, or without a definition in it, the mention is linked as written.
    for answer in &lines[1..] {
        assert!(answer.get("linked_text").is_none(), "{answer}");
        assert!(answer.get("expanded_from").is_none(), "{answer}");
        assert_eq!(answer["candidates"][0]["exact"], false, "{answer}");
    }
}

#[test]
fn link_answers_bad_lines_with_error_objects_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let out = build_sample_index(dir.path());
    let secret = "zebra-secret";
    let too_long = format!(
        r#"{{"id": 4, "mention": "{secret} {}"}}"#,
        "a".repeat(1_000)
    );
    let mut input = Vec::new();
    for line in [
        r#"{"id": 1, "mention": "heart attack"}"#.to_string(),
        format!(r#"{{"id": 2, "mention": "{secret}"#), // truncated JSON
        r#"{"id": 3, "mention": 3}"#.to_string(),
        too_long,
        String::new(), // blank: skipped, no answer
        r#"{"id": 6, "mention": "heart attack", "context": 7}"#.to_string(),
    ] {
        input.extend_from_slice(line.as_bytes());
        input.push(b'\n');
    }
    input.extend_from_slice(b"\xff\xfe\n{\"id\": 8, \"mention\": \"angina\"}\n");
    // Small batches: errors and answers must stay in input order across batch boundaries.
    let (code, stdout, stderr) = run(
        medlink().args([
            "link",
            "--index",
            out.to_str().unwrap(),
            "--lines-per-batch",
            "2",
        ]),
        &input,
    );
    assert_eq!(code, 2, "refused lines make the exit code 2: {stderr}");
    let answers: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let lines: Vec<u64> = answers
        .iter()
        .map(|a| a["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![1, 2, 3, 4, 6, 7, 8]);
    let ok = |a: &serde_json::Value| a.get("candidates").is_some() && a.get("error").is_none();
    assert!(ok(&answers[0]) && ok(&answers[6]), "{stdout}");
    assert_eq!(answers[6]["id"], 8);
    for refused in &answers[1..6] {
        assert!(refused.get("candidates").is_none(), "{refused}");
        let error = refused["error"].as_str().unwrap();
        let line = refused["line"].as_u64().unwrap();
        assert!(error.starts_with(&format!("<stdin>:{line}:")), "{error}");
        assert!(!error.contains(secret), "mention text in {error}");
    }
    // The id survives when the line is JSON, even with a bad field.
    assert_eq!(answers[2]["id"], 3);
    assert_eq!(answers[3]["id"], 4);
    assert!(answers[3]["error"]
        .as_str()
        .unwrap()
        .contains("the limit is 1000"));
    assert!(answers[1]["id"].is_null());
    assert!(answers[5]["error"]
        .as_str()
        .unwrap()
        .contains("invalid UTF-8"));
    // stderr counts the refusals and names the first, never the mention text.
    assert!(stderr.contains("5 input line(s) refused"), "{stderr}");
    assert!(stderr.contains("<stdin>:2:"), "{stderr}");
    assert!(!stderr.contains(secret), "{stderr}");
}

/// A PubTator document: title, empty abstract, and each mention found in the title.
fn pubtator_doc(pmid: &str, title: &str, mentions: &[(&str, &str, &str)]) -> String {
    let mut doc = format!("{pmid}|t|{title}\n{pmid}|a|\n");
    for (text, entity_type, ids) in mentions {
        let start = title[..title.find(text).unwrap()].chars().count();
        let end = start + text.chars().count();
        doc.push_str(&format!(
            "{pmid}\t{start}\t{end}\t{text}\t{entity_type}\t{ids}\n"
        ));
    }
    doc + "\n"
}

#[test]
fn add_mentions_and_the_biosyn_protocol_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let train = dir.path().join("train.txt");
    std::fs::write(
        &train,
        pubtator_doc(
            "1",
            "A cardiac event and a heart flutter.",
            &[
                ("cardiac event", "Disease", "CARD:0003"),
                ("heart flutter", "Symptom", "CARD:0099"),
            ],
        ),
    )
    .unwrap();
    let test = dir.path().join("test.txt");
    std::fs::write(
        &test,
        pubtator_doc(
            "2",
            "After a cardiac event, auricular fibrillation (AUF), with coronary artery and heart disease.",
            &[
                ("cardiac event", "Disease", "CARD:0003"),
                ("AUF", "Disease", "CARD:0006"),
                ("coronary artery and heart disease", "Disease", "CARD:0002|CARD:0001"),
            ],
        ),
    )
    .unwrap();
    let sample = format!(
        "tsv:{}/ontologies/samples/custom.tsv",
        env!("CARGO_MANIFEST_DIR")
    );
    let index = dir.path().join("cardio-mentions");
    let train_spec = format!("pubtator:{}#types=Disease", train.display());
    let (code, _, stderr) = run(
        medlink()
            .args([
                "index",
                "build",
                "--ontology",
                &sample,
                "--add-mentions",
                &train_spec,
                "--out",
            ])
            .arg(&index),
        b"",
    );
    assert_eq!(code, 0, "{stderr}");
    let (_, info, _) = run(
        medlink().args(["index", "info", "--index"]).arg(&index),
        b"",
    );
    let manifest: serde_json::Value = serde_json::from_str(&info).unwrap();
    let sources = manifest["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 2);
    assert_eq!(sources[1]["format"], "corpus");
    assert_eq!(sources[1]["path"], train_spec.as_str());
    assert_eq!(
        sources[1]["concepts"], 0,
        "the Symptom mention was filtered out"
    );

    let eval_with = |protocol: &str, extra: &[&str]| -> serde_json::Value {
        let corpus = format!("pubtator:{}", test.display());
        let (code, stdout, stderr) = run(
            medlink()
                .args(["eval", "link", "--corpus", &corpus, "--ks", "1,5", "--json"])
                .args(extra)
                .args(["--protocol", protocol, "--index"])
                .arg(&index),
            b"",
        );
        assert_eq!(code, 0, "{stderr}");
        serde_json::from_str(&stdout).unwrap()
    };
    let eval = |protocol: &str| eval_with(protocol, &[]);
    // BioSyn: "cardiac event" is now an exact name of CARD:0003, "AUF" expands to the exact
    // name "auricular fibrillation", and the composite splits into two exact names ("coronary
    // artery disease", "heart disease"): every mention is first.
    let biosyn = eval("biosyn");
    assert_eq!(biosyn["protocol"], "biosyn");
    assert_eq!(biosyn["mentions"], 3);
    assert_eq!(biosyn["composites_split"], 1);
    assert_eq!(biosyn["abbreviations_expanded"], 1);
    assert_eq!(biosyn["breakdown"]["type=Disease"]["evaluated"], 3);
    assert_eq!(biosyn["acc@1"], 1.0, "{biosyn}");
    assert_eq!(biosyn["worst_misses"].as_array().unwrap().len(), 0);
    // medlink's protocol links the composite whole: its two concepts cannot both be first.
    let raw = eval("medlink");
    assert_eq!(raw["protocol"], "medlink");
    assert_eq!(raw["composites_split"], 0);
    assert!(raw["acc@1"].as_f64().unwrap() <= 2.0 / 3.0 + 1e-9, "{raw}");
    let misses = raw["worst_misses"].as_array().unwrap().len();
    assert!(misses >= 1, "{raw}");
    // `--misses N` bounds the list (20 by default), down to none.
    let none = eval_with("medlink", &["--misses", "0"]);
    assert_eq!(none["worst_misses"].as_array().unwrap().len(), 0);
    assert_eq!(none["acc@1"], raw["acc@1"]);

    // A dictionary from mentions alone (MedProcNER's case): one concept per distinct id.
    let only = dir.path().join("mentions-only");
    let all_train = format!("pubtator:{}", train.display());
    let (code, _, stderr) = run(
        medlink()
            .args(["index", "build", "--add-mentions", &all_train, "--out"])
            .arg(&only),
        b"",
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = run(
        medlink()
            .args(["search", "--json", "-k", "2", "--index"])
            .arg(&only)
            .arg("heart flutter"),
        b"",
    );
    assert_eq!(code, 0, "{stderr}");
    let found: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(found["candidates"][0]["id"], "CARD:0099");
    assert_eq!(found["candidates"][0]["types"][0], "Symptom");
    assert_eq!(found["candidates"].as_array().unwrap().len(), 2);
}

/// `train encoder` with no ontology takes its concepts from the training corpus: the pairs are
/// the distinct mention strings of one code (MedProcNER has no gazetteer). A code named one way
/// gives no pair; a corpus without ids gives none at all.
#[test]
fn train_encoder_without_an_ontology_pairs_mentions_of_one_code() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("c.txt");
    std::fs::write(
        &corpus,
        "1|t|Heart attack and myocardial infarction; MI twice: MI. Gout.\n1|a|\n\
         1\t0\t12\tHeart attack\tDisease\tD1\n\
         1\t17\t38\tmyocardial infarction\tDisease\tD1\n\
         1\t40\t42\tMI\tDisease\tD1\n\
         1\t50\t52\tMI\tDisease\tD1\n\
         1\t54\t58\tGout\tDisease\tD2\n",
    )
    .unwrap();
    let pairs = dir.path().join("pairs.tsv");
    let (code, _, stderr) = run(
        medlink()
            .args(["train", "encoder", "--steps", "1", "--out"])
            .arg(dir.path().join("run"))
            .arg("--train-corpus")
            .arg(format!("pubtator:{}", corpus.display()))
            .arg("--write-pairs")
            .arg(&pairs),
        b"",
    );
    assert_eq!(code, 0, "{stderr}");
    let written = std::fs::read_to_string(&pairs).unwrap();
    let mut texts: Vec<Vec<&str>> = written
        .lines()
        .map(|l| {
            let mut t: Vec<&str> = l.split('\t').skip(1).collect();
            t.sort();
            t
        })
        .collect();
    texts.sort();
    assert_eq!(
        texts,
        vec![
            vec!["Heart attack", "MI"],
            vec!["Heart attack", "myocardial infarction"],
            vec!["MI", "myocardial infarction"],
        ],
        "{written}"
    );
    // Neither an ontology nor a corpus: nothing to train on.
    let (code, _, stderr) = run(
        medlink()
            .args(["train", "encoder", "--steps", "1", "--out"])
            .arg(dir.path().join("run2")),
        b"",
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--ontology"), "{stderr}");
}

/// `--dev-ontology` scores the dev corpus against its own dictionary, not the training
/// vocabularies: a dev mention whose concept only the dev dictionary has is evaluated.
#[test]
fn train_encoder_scores_dev_against_the_dev_ontology() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let train = write(
        "train.tsv",
        "id\tname\tsynonyms\nD1\tmyocardial infarction\theart attack|MI\n",
    );
    let dev_vocab = write(
        "dev.tsv",
        "id\tname\tsynonyms\nD1\tmyocardial infarction\theart attack\nD2\tgout\tpodagra\n",
    );
    let corpus = write(
        "dev.txt",
        "1|t|Heart attack and podagra.\n1|a|\n\
         1\t0\t12\tHeart attack\tDisease\tD1\n\
         1\t17\t24\tpodagra\tDisease\tD2\n",
    );
    let evaluated = |run_name: &str, extra: &[std::path::PathBuf]| {
        let out = dir.path().join(run_name);
        let mut command = medlink();
        command
            .args(["train", "encoder", "--steps", "1", "--batch-pairs", "2"])
            .arg("--base")
            .arg(crate::common::default_model())
            .arg("--ontology")
            .arg(format!("tsv:{}", train.display()))
            .arg("--dev-corpus")
            .arg(format!("pubtator:{}", corpus.display()))
            .arg("--out")
            .arg(&out);
        for path in extra {
            command
                .arg("--dev-ontology")
                .arg(format!("tsv:{}", path.display()));
        }
        let (code, _, stderr) = run(&mut command, b"");
        assert_eq!(code, 0, "{stderr}");
        let eval: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("best/eval.json")).unwrap())
                .unwrap();
        eval["mentions"].as_u64().unwrap()
    };
    assert_eq!(evaluated("own", &[]), 1, "gout is not a training concept");
    assert_eq!(evaluated("dev", std::slice::from_ref(&dev_vocab)), 2);
}

/// `train reranker` learns from annotations what similarity alone cannot know (this corpus
/// calls heart failure "cardiac trouble"), records the re-ranker in the index, and every hybrid
/// link then uses it; `--no-rerank` restores the linker's order.
#[test]
fn train_reranker_learns_a_corpus_convention_and_is_used_by_link() {
    let dir = tempfile::tempdir().unwrap();
    let index = build_sample_index(dir.path());
    let mut corpus = String::new();
    for doc in 1..=8 {
        let text = "cardiac trouble and heart attack, then angina.";
        corpus.push_str(&format!("{doc}|t|{text}\n{doc}|a|\n"));
        for (mention, id) in [
            ("cardiac trouble", "CARD:0009"),
            ("heart attack", "CARD:0003"),
            ("angina", "CARD:0004"),
        ] {
            let start = text.find(mention).unwrap();
            let end = start + mention.len();
            corpus.push_str(&format!(
                "{doc}\t{start}\t{end}\t{mention}\tDisease\t{id}\n"
            ));
        }
        corpus.push('\n');
    }
    let corpus_path = dir.path().join("notes.txt");
    std::fs::write(&corpus_path, corpus).unwrap();
    let spec = format!("pubtator:{}", corpus_path.display());

    let top = |extra: &[&str], mention: &str| -> serde_json::Value {
        let (code, stdout, stderr) = run(
            medlink()
                .args(["link", "-k", "3"])
                .args(extra)
                .arg("--index")
                .arg(&index),
            format!("{{\"mention\": \"{mention}\"}}\n").as_bytes(),
        );
        assert_eq!(code, 0, "{stderr}");
        serde_json::from_str::<serde_json::Value>(stdout.lines().next().unwrap()).unwrap()
            ["candidates"][0]
            .clone()
    };
    let before = top(&[], "cardiac trouble");
    assert_ne!(
        before["id"], "CARD:0009",
        "similarity alone must not already find it"
    );
    assert!(before.get("rerank").is_none());

    let (code, _, stderr) = run(
        medlink()
            .args(["train", "reranker", "--index"])
            .arg(&index)
            .args(["--corpus", &spec, "--dev-corpus", &spec]),
        b"",
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("re-ranked"), "{stderr}");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(index.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["files"]["reranker"], "reranker.json");

    let after = top(&[], "cardiac trouble");
    assert_eq!(after["id"], "CARD:0009", "{after}");
    let p = after["rerank"].as_f64().unwrap();
    assert!(p > 0.0 && p <= 1.0, "{after}");
    // Exact names stay first, and --no-rerank is the linker's order again.
    assert_eq!(top(&[], "heart attack")["id"], "CARD:0003");
    assert_eq!(top(&["--no-rerank"], "cardiac trouble")["id"], before["id"]);

    let (code, stdout, stderr) = run(
        medlink()
            .args(["eval", "link", "--json", "--corpus", &spec, "--index"])
            .arg(&index),
        b"",
    );
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["reranked"], true);
    assert_eq!(report["acc@1"], 1.0);

    // A fixed L2 strength (refitting once a dev corpus chose it) is recorded as given; a
    // negative one is refused.
    let refit = dir.path().join("refit.json");
    let (code, _, stderr) = run(
        medlink()
            .args([
                "train", "reranker", "--l2", "0.01", "--corpus", &spec, "--index",
            ])
            .arg(&index)
            .arg("--out")
            .arg(&refit),
        b"",
    );
    assert_eq!(code, 0, "{stderr}");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&refit).unwrap()).unwrap();
    assert!((saved["l2"].as_f64().unwrap() - 0.01).abs() < 1e-6);
    assert!(saved.get("dev").is_none());
    let (code, _, stderr) = run(
        medlink()
            .args(["train", "reranker", "--l2=-1", "--corpus", &spec, "--index"])
            .arg(&index),
        b"",
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--l2"), "{stderr}");

    // A k beyond the re-ranker's depth continues in the linker's order: the first answers do
    // not depend on k.
    let shallow = dir.path().join("shallow.json");
    let (code, _, stderr) = run(
        medlink()
            .args([
                "train", "reranker", "--depth", "2", "--corpus", &spec, "--index",
            ])
            .arg(&index)
            .arg("--out")
            .arg(&shallow),
        b"",
    );
    assert_eq!(code, 0, "{stderr}");
    let ids = |k: &str| -> Vec<String> {
        let (code, stdout, stderr) = run(
            medlink()
                .args(["link", "-k", k, "--reranker"])
                .arg(&shallow)
                .arg("--index")
                .arg(&index),
            b"{\"mention\": \"cardiac trouble\"}\n",
        );
        assert_eq!(code, 0, "{stderr}");
        let line: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
        line["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (two, six) = (ids("2"), ids("6"));
    assert_eq!(two, six[..2], "{six:?}");
    assert_eq!(six.len(), 6);

    // A re-ranker records the model and hybrid weight its lists came from. An explicit file
    // made for another model is refused by name; an `--alpha` other than its weight links in
    // the linker's order; after the index's weight changes its own re-ranker is set aside.
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&shallow).unwrap()).unwrap();
    assert_eq!(
        saved["trained_for"]["model_weights_sha256"],
        manifest["model"]["weights_sha256"]
    );
    let trained_alpha = saved["trained_for"]["alpha"].as_f64().unwrap();
    let mut foreign_model = saved.clone();
    foreign_model["trained_for"]["model_weights_sha256"] = "0".repeat(64).into();
    let foreign_file = dir.path().join("foreign-model.json");
    std::fs::write(&foreign_file, foreign_model.to_string()).unwrap();
    let (code, _, stderr) = run(
        medlink()
            .args(["link", "--reranker"])
            .arg(&foreign_file)
            .arg("--index")
            .arg(&index),
        b"{\"mention\": \"cardiac trouble\"}\n",
    );
    assert_ne!(code, 0);
    assert!(
        stderr.contains("foreign-model.json") && stderr.contains("does not fit this index"),
        "{stderr}"
    );
    let other_alpha = format!("{:.2}", (trained_alpha + 0.3) % 1.0);
    let unranked = top(&["--alpha", &other_alpha], "cardiac trouble");
    assert!(unranked.get("rerank").is_none(), "{unranked}");
    let mut retuned = manifest.clone();
    retuned["fusion"] = serde_json::json!({
        "alpha": (trained_alpha + 0.3) % 1.0, "tuned_on": "test", "mentions": 1,
        "acc_at_1": 1.0, "default_acc_at_1": 1.0
    });
    std::fs::write(index.join("manifest.json"), retuned.to_string()).unwrap();
    let set_aside = top(&[], "cardiac trouble");
    assert!(set_aside.get("rerank").is_none(), "{set_aside}");
    std::fs::write(index.join("manifest.json"), manifest.to_string()).unwrap();
    assert!(top(&[], "cardiac trouble").get("rerank").is_some());

    // A damaged re-ranker does not lock the index: it links without one.
    std::fs::write(index.join("reranker.json"), "{not json").unwrap();
    let damaged = top(&[], "cardiac trouble");
    assert_eq!(damaged["id"], before["id"]);
    assert!(damaged.get("rerank").is_none());

    // A corpus with nothing this index can learn from is refused by name.
    let foreign = dir.path().join("foreign.txt");
    std::fs::write(&foreign, "1|t|gout\n1|a|\n1\t0\t4\tgout\tDisease\tX:1\n\n").unwrap();
    let (code, _, stderr) = run(
        medlink()
            .args(["train", "reranker", "--index"])
            .arg(&index)
            .arg("--corpus")
            .arg(format!("pubtator:{}", foreign.display())),
        b"",
    );
    assert_ne!(code, 0);
    assert!(
        stderr.contains("no mention with one gold concept"),
        "{stderr}"
    );
}

#[test]
fn index_convert_rewrites_vectors_and_keeps_results() {
    let dir = tempfile::tempdir().unwrap();
    let f16 = build_sample_index(dir.path());
    let i8 = dir.path().join("cardio-i8");
    let (code, _, stderr) = run(
        medlink()
            .args(["index", "convert", "--vectors", "i8", "--index"])
            .arg(&f16)
            .arg("--out")
            .arg(&i8),
        b"",
    );
    assert_eq!(code, 0, "{stderr}");
    let info = |index: &std::path::Path| -> serde_json::Value {
        let (_, stdout, _) = run(medlink().args(["index", "info", "--index"]).arg(index), b"");
        serde_json::from_str(&stdout).unwrap()
    };
    assert_eq!(info(&f16)["hnsw"]["vector_type"], "f16");
    assert_eq!(info(&i8)["hnsw"]["vector_type"], "i8");
    assert_eq!(info(&i8)["counts"], info(&f16)["counts"]);
    // A quarter of f32's bytes (plus a scale per row): smaller than the f16 file.
    let size =
        |index: &std::path::Path| std::fs::metadata(index.join("vectors.bin")).unwrap().len();
    assert!(
        size(&i8) * 10 < size(&f16) * 6,
        "{} vs {}",
        size(&i8),
        size(&f16)
    );
    // The same top concept for a mention, from either index.
    let top = |index: &std::path::Path| -> String {
        let (code, stdout, stderr) = run(
            medlink().args(["link", "-k", "1", "--index"]).arg(index),
            b"{\"mention\": \"heart attack\"}\n",
        );
        assert_eq!(code, 0, "{stderr}");
        let line: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
        line["candidates"][0]["id"].as_str().unwrap().to_string()
    };
    assert_eq!(top(&i8), top(&f16));
    // Converting onto itself is refused before anything is written.
    let (code, _, stderr) = run(
        medlink()
            .args(["index", "convert", "--vectors", "f32", "--index"])
            .arg(&f16)
            .arg("--out")
            .arg(&f16),
        b"",
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is the index being converted"), "{stderr}");
    assert_eq!(info(&f16)["hnsw"]["vector_type"], "f16");
}

#[test]
fn index_tune_records_alpha_and_linking_uses_it_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let index = build_sample_index(dir.path());
    let corpus = dir.path().join("dev.txt");
    std::fs::write(
        &corpus,
        pubtator_doc(
            "1",
            "A cardiac event, then heart disease and an irregular heartbeat.",
            &[
                ("cardiac event", "Disease", "CARD:0003"),
                ("heart disease", "Disease", "CARD:0001"),
                ("irregular heartbeat", "Disease", "CARD:0006"),
            ],
        ),
    )
    .unwrap();
    let spec = format!("pubtator:{}", corpus.display());
    let manifest = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(index.join("manifest.json")).unwrap())
            .unwrap()
    };
    // --dry-run prints the grid and writes nothing.
    let (code, stdout, stderr) = run(
        medlink()
            .args(["index", "tune", "--dry-run", "--corpus", &spec, "--index"])
            .arg(&index),
        b"",
    );
    assert_eq!(code, 0, "{stderr}");
    let tuning: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(tuning["grid"].as_array().unwrap().len(), 21);
    assert_eq!(tuning["mentions"], 3);
    assert!(manifest().get("fusion").is_none());
    let (code, _, stderr) = run(
        medlink()
            .args(["index", "tune", "--corpus", &spec, "--index"])
            .arg(&index),
        b"",
    );
    assert_eq!(code, 0, "{stderr}");
    let fusion = manifest()["fusion"].clone();
    assert_eq!(fusion["tuned_on"], spec.as_str());
    assert_eq!(fusion["alpha"], tuning["best"]["alpha"]);
    assert_eq!(fusion["mentions"], 3);

    // With no --alpha, scores fuse with the manifest's weight; --alpha still overrides it.
    let mut m = manifest();
    m["fusion"]["alpha"] = serde_json::json!(0.25);
    std::fs::write(index.join("manifest.json"), m.to_string()).unwrap();
    let top = |extra: &[&str]| -> (f64, f64, f64) {
        let (code, stdout, stderr) = run(
            medlink()
                .args(["link", "-k", "1"])
                .args(extra)
                .arg("--index")
                .arg(&index),
            b"{\"mention\": \"cardiac rhythm trouble\"}\n",
        );
        assert_eq!(code, 0, "{stderr}");
        let line: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
        let c = &line["candidates"][0];
        (
            c["score"].as_f64().unwrap(),
            c["dense"].as_f64().unwrap(),
            c["lexical"].as_f64().unwrap(),
        )
    };
    let (score, dense, lexical) = top(&[]);
    assert!(
        (score - (0.25 * dense + 0.75 * lexical)).abs() < 1e-4,
        "{score} {dense} {lexical}"
    );
    let (score, dense, lexical) = top(&["--alpha", "0.9"]);
    assert!(
        (score - (0.9 * dense + 0.1 * lexical)).abs() < 1e-4,
        "{score} {dense} {lexical}"
    );

    let (code, _, stderr) = run(
        medlink()
            .args([
                "index",
                "tune",
                "--corpus",
                "pubtator:/no/such/file",
                "--index",
            ])
            .arg(&index),
        b"",
    );
    // A missing file is exit 1, as everywhere (2 is for arguments that are wrong as written).
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("/no/such/file"), "{stderr}");
}

#[test]
fn nil_curve_and_nil_threshold_mark_mentions_with_no_concept() {
    let dir = tempfile::tempdir().unwrap();
    let index = build_sample_index(dir.path());
    let corpus = dir.path().join("nil.txt");
    // "blue widget" has no concept: PubTator's -1.
    std::fs::write(
        &corpus,
        pubtator_doc(
            "1",
            "A cardiac disease and a blue widget.",
            &[
                ("cardiac disease", "Disease", "CARD:0001"),
                ("blue widget", "Disease", "-1"),
            ],
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = run(
        medlink()
            .args(["eval", "link", "--json", "--ks", "1", "--corpus"])
            .arg(format!("pubtator:{}", corpus.display()))
            .arg("--index")
            .arg(&index),
        b"",
    );
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["unlinkable"], 1);
    let curve = report["nil_curve"].as_array().unwrap();
    let at = |t: f64| {
        curve
            .iter()
            .find(|p| (p["threshold"].as_f64().unwrap() - t).abs() < 1e-6)
            .unwrap()
            .clone()
    };
    // Always answering: the linkable mention right, the unlinkable one wrong.
    assert_eq!(at(0.0)["answered"], 2);
    assert_eq!(at(0.0)["precision"], 0.5);
    assert_eq!(at(0.0)["nil_recall"], 0.0);
    assert_eq!(at(0.0)["accuracy"], 0.5);
    // At 1.0 only the exact name (score 1 + cosine) is answered: both mentions are right.
    assert_eq!(at(1.0)["answered"], 1);
    assert_eq!(at(1.0)["recall"], 1.0);
    assert_eq!(at(1.0)["nil_recall"], 1.0);
    assert_eq!(at(1.0)["nil_precision"], 1.0);
    assert_eq!(at(1.0)["accuracy"], 1.0);
    let answered: Vec<u64> = curve
        .iter()
        .map(|p| p["answered"].as_u64().unwrap())
        .collect();
    assert!(answered.windows(2).all(|w| w[0] >= w[1]), "{answered:?}");

    let link = |extra: &[&str]| {
        run(
            medlink()
                .args(["link", "-k", "1"])
                .args(extra)
                .arg("--index")
                .arg(&index),
            b"{\"mention\": \"cardiac disease\"}\n{\"mention\": \"blue widget\"}\n",
        )
    };
    let (code, stdout, stderr) = link(&["--nil-threshold", "1.0"]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["nil"], false);
    assert_eq!(lines[1]["nil"], true);
    assert_eq!(lines[1]["candidates"].as_array().unwrap().len(), 1);
    let (_, stdout, _) = link(&[]);
    assert!(!stdout.contains("\"nil\""), "{stdout}");
    let (code, _, stderr) = link(&["--nil-threshold", "NaN"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--nil-threshold"), "{stderr}");
}
