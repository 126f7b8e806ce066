//! `medlink annotate` end to end: formats in and out, abbreviations, refused documents in
//! their place, resuming an interrupted run, and the README's first-run example.

use crate::cli::{build_sample_index, medlink, run};

fn jsonl(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// (start, end, text, top concept) of every mention of one JSONL answer.
fn mentions(answer: &serde_json::Value) -> Vec<(u64, u64, String, String)> {
    answer["mentions"]
        .as_array()
        .unwrap_or_else(|| panic!("no mentions: {answer}"))
        .iter()
        .map(|m| {
            (
                m["start"].as_u64().unwrap(),
                m["end"].as_u64().unwrap(),
                m["text"].as_str().unwrap().to_string(),
                m["candidates"][0]["id"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect()
}

#[test]
fn text_in_jsonl_out_with_abbreviations_and_character_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let index = build_sample_index(dir.path());
    let text =
        "Ünïcode: a heart attack. Auricular fibrillation (AUF) recurred; AUF again, not AUFX.";
    let (code, stdout, stderr) = run(
        medlink().args(["annotate", "-k", "2", "--index", index.to_str().unwrap()]),
        text.as_bytes(),
    );
    assert_eq!(code, 0, "{stderr}");
    let answers = jsonl(&stdout);
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0]["id"], 1);
    let m = &answers[0]["mentions"];
    assert_eq!(
        mentions(&answers[0]),
        vec![
            (11, 23, "heart attack".into(), "CARD:0003".into()),
            (25, 47, "Auricular fibrillation".into(), "CARD:0006".into()),
            (49, 52, "AUF".into(), "CARD:0006".into()),
            (64, 67, "AUF".into(), "CARD:0006".into()),
        ]
    );
    assert_eq!(m[2]["linked_text"], "Auricular fibrillation");
    assert_eq!(m[0]["candidates"].as_array().unwrap().len(), 2);
    // Without abbreviations, the undefined short form is not found at all.
    let (code, stdout, _) = run(
        medlink().args([
            "annotate",
            "--no-abbreviations",
            "--index",
            index.to_str().unwrap(),
        ]),
        text.as_bytes(),
    );
    assert_eq!(code, 0);
    assert_eq!(mentions(&jsonl(&stdout)[0]).len(), 2);
}

#[test]
fn jsonl_documents_refused_in_place_and_the_rest_annotated() {
    let dir = tempfile::tempdir().unwrap();
    let index = build_sample_index(dir.path());
    let mut input = Vec::new();
    input.extend_from_slice(b"{\"id\": \"a\", \"text\": \"History of AMI.\"}\n");
    input.extend_from_slice(b"{\"id\": \"b\", \"txt\": \"wrong field\"}\n");
    input.extend_from_slice(b"{\"id\": \"c\", \"text\": \"bad \xff byte\"}\n");
    input.extend_from_slice(b"\n{\"id\": \"d\", \"text\": \"\"}\n");
    input.extend_from_slice(b"{\"text\": \"no id, with bradycardia\"}\n");
    let (code, stdout, stderr) = run(
        medlink().args([
            "annotate",
            "--input-format",
            "jsonl",
            "--index",
            index.to_str().unwrap(),
        ]),
        &input,
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("2 input document(s) refused"), "{stderr}");
    assert!(
        !stderr.contains("wrong field"),
        "input text leaked: {stderr}"
    );
    let answers = jsonl(&stdout);
    assert_eq!(answers.len(), 5);
    assert_eq!(
        mentions(&answers[0]),
        vec![(11, 14, "AMI".into(), "CARD:0003".into())]
    );
    assert_eq!(answers[1]["id"], "b");
    assert!(
        answers[1]["error"].as_str().unwrap().contains(":2:"),
        "{}",
        answers[1]
    );
    assert!(
        answers[2]["error"]
            .as_str()
            .unwrap()
            .contains("invalid UTF-8"),
        "{}",
        answers[2]
    );
    assert!(!answers[1]["error"]
        .as_str()
        .unwrap()
        .contains("wrong field"));
    // An empty text is a document with no mentions, not an error.
    assert_eq!(answers[3]["id"], "d");
    assert_eq!(answers[3]["mentions"], serde_json::json!([]));
    // A document without an id is numbered by its position.
    assert_eq!(answers[4]["id"], 5);
    assert_eq!(mentions(&answers[4])[0].3, "CARD:0008");
}

#[test]
fn pubtator_in_and_out_count_offsets_over_title_and_abstract() {
    let dir = tempfile::tempdir().unwrap();
    let index = build_sample_index(dir.path());
    let input = "11|t|Heart failure in Ölder adults\n11|a|Bradycardia and HTN were seen.\n11\t0\t13\tHeart failure\tDisease\tX\n\n22|t|Nothing here\n22|a|\n\n";
    let (code, stdout, stderr) = run(
        medlink().args([
            "annotate",
            "--input-format",
            "pubtator",
            "--output-format",
            "pubtator",
            "--label",
            "custom=Disease",
            "--index",
            index.to_str().unwrap(),
        ]),
        input.as_bytes(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        "11|t|Heart failure in Ölder adults\n11|a|Bradycardia and HTN were seen.\n\
         11\t0\t13\tHeart failure\tDisease\tCARD:0009\n\
         11\t30\t41\tBradycardia\tDisease\tCARD:0008\n\
         11\t46\t49\tHTN\tDisease\tCARD:0012\n\n\
         22|t|Nothing here\n22|a|\n\n"
    );
    // Empty text input is refused with a message, not answered with nothing.
    let (code, _, stderr) = run(
        medlink().args(["annotate", "--index", index.to_str().unwrap()]),
        b"  \n",
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("the input text is empty"), "{stderr}");
    let (code, _, stderr) = run(
        medlink().args(["annotate", "--index", index.to_str().unwrap()]),
        b"bad \xff",
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("not UTF-8"), "{stderr}");
}

#[test]
fn an_interrupted_run_resumes_without_losing_or_repeating_documents() {
    let dir = tempfile::tempdir().unwrap();
    let index = build_sample_index(dir.path());
    let input_path = dir.path().join("notes.jsonl");
    let input: String = (0..7)
        .map(|i| format!("{{\"id\": {i}, \"text\": \"Note {i}: heart attack and AF.\"}}\n"))
        .collect();
    std::fs::write(&input_path, &input).unwrap();
    let annotate = |output: &std::path::Path, resume: bool| {
        let mut cmd = medlink();
        cmd.args([
            "annotate",
            "--input-format",
            "jsonl",
            "--docs-per-batch",
            "2",
            "--index",
        ])
        .arg(&index)
        .arg("--input")
        .arg(&input_path)
        .arg("--output")
        .arg(output);
        if resume {
            cmd.arg("--resume");
        }
        run(&mut cmd, b"")
    };
    let full = dir.path().join("full.jsonl");
    let (code, _, stderr) = annotate(&full, false);
    assert_eq!(code, 0, "{stderr}");
    let expected = std::fs::read_to_string(&full).unwrap();
    assert_eq!(expected.lines().count(), 7);
    // An existing output is never overwritten by accident.
    let (code, _, stderr) = annotate(&full, false);
    assert_eq!(code, 2);
    assert!(stderr.contains("pass --resume"), "{stderr}");

    // A run killed after its second batch (4 documents recorded) and in the middle of
    // writing the third.
    let partial = dir.path().join("partial.jsonl");
    let first_four: String = expected.lines().take(4).map(|l| format!("{l}\n")).collect();
    std::fs::write(&partial, format!("{first_four}{{\"id\": 4, \"men")).unwrap();
    std::fs::write(
        dir.path().join("partial.jsonl.progress"),
        format!(
            "{{\"documents\": 4, \"bytes\": {}, \"complete\": false}}",
            first_four.len()
        ),
    )
    .unwrap();
    let (code, _, stderr) = annotate(&partial, true);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(std::fs::read_to_string(&partial).unwrap(), expected);
    let (code, _, stderr) = annotate(&partial, true);
    assert_eq!(code, 0);
    assert!(stderr.contains("already complete"), "{stderr}");
}

/// The README's first example: the default HPO index (built on first use) and the dictionary
/// matcher, on a fresh cache.
#[test]
fn readme_example_links_both_phenotypes_on_the_default_index() {
    let (code, stdout, stderr) = run(
        medlink().arg("annotate"),
        b"The patient has a big head and seizures.",
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        mentions(&jsonl(&stdout)[0]),
        vec![
            (18, 26, "big head".into(), "HP:0000256".into()),
            (31, 39, "seizures".into(), "HP:0001250".into()),
        ]
    );
}

/// Word forms fold on both sides ("dysplastic patella" = "Patellar dysplasia", "cutaneous" =
/// "skin"), and a concept the dictionary matched comes first even where the linker alone
/// ranks it below its top k: "cutaneous abnormalities" is "Abnormality of the skin", not the
/// lexically closer "Cutaneous wound".
#[test]
fn folded_word_forms_link_to_the_matched_concept_on_the_default_index() {
    let (code, stdout, stderr) = run(
        medlink().args(["annotate", "-k", "3"]),
        b"She had cutaneous abnormalities and a dysplastic patella.",
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        mentions(&jsonl(&stdout)[0]),
        vec![
            (8, 31, "cutaneous abnormalities".into(), "HP:0000951".into()),
            (38, 56, "dysplastic patella".into(), "HP:0006446".into()),
        ]
    );
}

/// `--ner tagger` runs the token classifier: its mentions are the entities transformers'
/// pipeline gives for the same checkpoint (aggregation `first`), and `--ner both` keeps them
/// all, adding dictionary matches only where the tagger found nothing.
#[test]
fn tagger_and_both_detect_with_the_token_classifier() {
    let dir = tempfile::tempdir().unwrap();
    let index = build_sample_index(dir.path());
    let tagger = crate::common::fixture("tagger-tiny");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tagger.join("expected.json")).unwrap())
            .unwrap();
    let case = &expected["texts"][0];
    let text = case["text"].as_str().unwrap();
    let want: Vec<(u64, u64, String)> = case["entities"]["first"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["start"].as_u64().unwrap(),
                e["end"].as_u64().unwrap(),
                e["entity_group"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(!want.is_empty());
    let spans = |ner: &str| {
        let (code, stdout, stderr) = run(
            medlink()
                .args([
                    "annotate",
                    "--ner",
                    ner,
                    "--no-abbreviations",
                    "--tagger-stride",
                    "6",
                ])
                .arg("--index")
                .arg(&index)
                .arg("--tagger")
                .arg(&tagger),
            text.as_bytes(),
        );
        assert_eq!(code, 0, "{stderr}");
        jsonl(&stdout)[0]["mentions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["start"].as_u64().unwrap(),
                    m["end"].as_u64().unwrap(),
                    m["type"].as_str().unwrap().to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(spans("tagger"), want);
    let both = spans("both");
    assert!(want.iter().all(|w| both.contains(w)), "{both:?}");
    // A tagger flag with the dictionary detector is a mistake worth saying.
    let (code, _, stderr) = run(
        medlink()
            .args(["annotate", "--ner", "dictionary", "--index"])
            .arg(&index)
            .arg("--tagger")
            .arg(&tagger),
        b"text",
    );
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = run(
        medlink()
            .args(["annotate", "--ner", "tagger", "--index"])
            .arg(&index),
        b"text",
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("needs --tagger"), "{stderr}");
}

/// `--linking dictionary` on the default index: no model, the same mentions and top concepts
/// as the encoder, and each dictionary match's candidates are exactly the concepts whose
/// name it matched (one here), where the encoder fills the top k with neighbours.
#[test]
fn dictionary_linking_keeps_the_matched_concepts_only() {
    let text: &[u8] = b"She had cutaneous abnormalities, seizures and a big head.";
    let answer = |linking: &str| {
        let (code, stdout, stderr) = run(
            medlink().args(["annotate", "-k", "3", "--linking", linking]),
            text,
        );
        assert_eq!(code, 0, "{stderr}");
        jsonl(&stdout).remove(0)
    };
    let (by_dictionary, by_encoder) = (answer("dictionary"), answer("encoder"));
    assert_eq!(
        mentions(&by_dictionary),
        vec![
            (8, 31, "cutaneous abnormalities".into(), "HP:0000951".into()),
            (33, 41, "seizures".into(), "HP:0001250".into()),
            (48, 56, "big head".into(), "HP:0000256".into()),
        ]
    );
    assert_eq!(mentions(&by_dictionary), mentions(&by_encoder));
    for (d, e) in by_dictionary["mentions"]
        .as_array()
        .unwrap()
        .iter()
        .zip(by_encoder["mentions"].as_array().unwrap())
    {
        assert_eq!(d["candidates"].as_array().unwrap().len(), 1, "{d}");
        assert_eq!(e["candidates"].as_array().unwrap().len(), 3, "{e}");
        assert!(d["candidates"][0].get("dense").is_none(), "no model: {d}");
    }
    // Refused while parsing flags, before stdin is read: write none (a broken pipe otherwise).
    let (code, _, stderr) = run(medlink().args(["annotate", "--linking", "model"]), b"");
    assert_ne!(code, 0);
    assert!(stderr.contains("--linking"), "{stderr}");
}

/// A short form defined in the document carries its long form's dictionary concepts, so it
/// links without the model too: "AUF" is "Auricular fibrillation".
#[test]
fn dictionary_linking_gives_short_forms_their_long_forms_concepts() {
    let dir = tempfile::tempdir().unwrap();
    let index = build_sample_index(dir.path());
    let text = "Auricular fibrillation (AUF) recurred; AUF again, not AUFX.";
    let (code, stdout, stderr) = run(
        medlink()
            .args(["annotate", "--linking", "dictionary", "--index"])
            .arg(&index),
        text.as_bytes(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        mentions(&jsonl(&stdout)[0]),
        vec![
            (0, 22, "Auricular fibrillation".into(), "CARD:0006".into()),
            (24, 27, "AUF".into(), "CARD:0006".into()),
            (39, 42, "AUF".into(), "CARD:0006".into()),
        ]
    );
}
