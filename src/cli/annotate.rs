//! `medlink annotate`: documents in, linked mentions out, streamed in batches of documents.
//!
//! With `--output FILE`, progress is recorded after every batch in `FILE.progress` (documents
//! consumed and bytes written, replaced atomically), so `--resume` after a crash or Ctrl-C
//! truncates `FILE` to the last complete batch and skips the documents already annotated:
//! nothing is lost and nothing is written twice.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;

use super::commands::{
    link_options, open_index, open_index_and_encoder, query_linker, reranker_file,
};
use super::progress::Bars;
use super::QueryArgs;
use crate::encoder::TransformerEncoder;
use crate::error::Error;
use crate::linker::Linker;
use crate::ner::annotate::{AnnotateOptions, Annotator, Linking};
use crate::ner::combine::Combined;
use crate::ner::dictionary::{DictionaryMatcher, MatcherOptions};
use crate::ner::io::{write_document, DocumentReader, InputDocument, InputFormat, OutputFormat};
use crate::ner::tagger::{Tagger, TaggerOptions};
use crate::ner::MentionDetector;
use crate::progress::Progress;

/// HPO's branch of phenotypes: what the default index annotates unless `--type` says otherwise
/// (its other branches are frequencies, onsets, modifiers and modes of inheritance).
pub const DEFAULT_HPO_TYPE: &str = "Phenotypic abnormality";

/// How mentions are found and linked: shared by `annotate` and `eval e2e`.
#[derive(Args, Debug, Clone)]
pub struct DetectorArgs {
    /// Mention detector: `dictionary` matches the index's names (leftmost-longest, whole
    /// words); `tagger` runs the token classifier of --tagger; `both` adds the dictionary's
    /// mentions where the tagger found none [default: tagger with --tagger, else dictionary].
    #[arg(long, value_parser = ["dictionary", "tagger", "both"])]
    pub ner: Option<String>,
    /// A trained tagger: a Hugging Face token-classification model directory (e.g. the
    /// `best/` of `medlink train tagger`).
    #[arg(long, value_name = "DIR")]
    pub tagger: Option<PathBuf>,
    /// How the tagger's token predictions become mentions (transformers' aggregation).
    #[arg(long, default_value = "first", value_parser = ["simple", "first", "average", "max"])]
    pub aggregation: String,
    /// Tokens shared by consecutive tagger windows of a text longer than the model's window.
    #[arg(long, default_value_t = 32)]
    pub tagger_stride: usize,
    /// Link mentions of an entity type against some sources only, e.g.
    /// `--route Chemical=MESH --route Disease=CTD`; repeatable.
    #[arg(long = "route", value_name = "TYPE=SOURCE[+SOURCE]")]
    pub routes: Vec<String>,
    /// Entity type the dictionary matcher reports for a source's names, e.g. `MEDIC=Disease`
    /// [default: the source's name].
    #[arg(long = "label", value_name = "SOURCE=TYPE")]
    pub labels: Vec<String>,
    /// Keep only detected mentions of this entity type (repeatable), e.g. a tagger's
    /// `Disease` mentions when linking against a disease vocabulary.
    #[arg(long = "mention-type", value_name = "TYPE")]
    pub mention_types: Vec<String>,
    /// Do not use abbreviations defined in the document.
    #[arg(long)]
    pub no_abbreviations: bool,
    /// Shortest dictionary name matched (characters of its normal form; acronyms exempt).
    #[arg(long, default_value_t = 3)]
    pub min_chars: usize,
    /// Shortest acronym the dictionary matcher matches on its own ("HT" and "RA" mean too many
    /// things; a short form defined in the document is still found).
    #[arg(long, default_value_t = 3)]
    pub min_acronym_chars: usize,
    /// Also report dictionary names nested inside a match ("colitis" in "ulcerative colitis"),
    /// for corpora annotated that way.
    #[arg(long)]
    pub nested: bool,
    /// What links mentions: `encoder` ranks every mention's candidates with the model and
    /// the lexical index (dictionary matches first); `dictionary` loads no model — a
    /// dictionary match keeps only the concepts whose name it matched, ranked lexically, and
    /// other mentions are linked lexically (the dictionary matcher's speed; --mode is ignored).
    #[arg(long, default_value = "encoder", value_parser = ["encoder", "dictionary"])]
    pub linking: String,
    /// Documents per batch (detection and linking are batched across documents).
    #[arg(long, default_value_t = 32)]
    pub docs_per_batch: usize,
}

#[derive(Args, Debug)]
pub struct AnnotateArgs {
    #[command(flatten)]
    pub query: QueryArgs,
    #[command(flatten)]
    pub detector: DetectorArgs,
    /// Input file [default: stdin].
    #[arg(long, value_name = "PATH")]
    pub input: Option<PathBuf>,
    /// Output file [default: stdout]; needed for --resume.
    #[arg(long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Continue an interrupted run into the same --output.
    #[arg(long, requires = "output")]
    pub resume: bool,
    /// text: the whole input is one document; jsonl: {"id", "text"} per line; pubtator.
    #[arg(long, default_value = "text", value_parser = ["text", "jsonl", "pubtator"])]
    pub input_format: String,
    /// jsonl: {"id", "mentions": [...]} per document; pubtator: annotation lines.
    #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "pubtator"])]
    pub output_format: String,
}

#[derive(Args, Debug)]
pub struct EvalE2eArgs {
    #[command(flatten)]
    pub query: QueryArgs,
    #[command(flatten)]
    pub detector: DetectorArgs,
    /// Annotated corpus, FORMAT:PATH[#OPTIONS] as for `eval link` (its gold mentions need ids).
    #[arg(long, value_name = "FORMAT:PATH[#OPTIONS]")]
    pub corpus: String,
    /// Score another system's annotations of the corpus instead of running medlink's
    /// (FORMAT:PATH, any corpus format; each mention's first id is its concept).
    #[arg(long, value_name = "FORMAT:PATH")]
    pub predicted: Option<String>,
    /// Print the full JSON report.
    #[arg(long)]
    pub json: bool,
}

/// Link options and annotate options from the flags, with the default index's phenotype
/// filter when no `--index` and no `--type` are given.
fn annotate_options(query: &mut QueryArgs, detector: &DetectorArgs) -> Result<AnnotateOptions> {
    if detector.docs_per_batch == 0 {
        anyhow::bail!(Error::InvalidInput(
            "--docs-per-batch must be at least 1".into()
        ));
    }
    if query.index.is_none() && query.types.is_empty() {
        query.types = vec![DEFAULT_HPO_TYPE.to_string()];
    }
    let mut options = AnnotateOptions {
        link: link_options(query)?,
        linking: detector.linking.parse()?,
        abbreviations: !detector.no_abbreviations,
        routes: BTreeMap::new(),
        mention_types: detector.mention_types.clone(),
    };
    for (entity_type, sources) in pairs("--route", &detector.routes)? {
        options.routes.insert(
            entity_type,
            sources.split('+').map(str::to_string).collect(),
        );
    }
    Ok(options)
}

/// The index, and its model unless dictionary linking needs none.
fn open_for(
    query: &QueryArgs,
    options: &AnnotateOptions,
    cache: &Path,
) -> Result<(crate::index::Index, Option<TransformerEncoder>)> {
    Ok(match options.linking {
        Linking::Encoder => {
            let (index, encoder) = open_index_and_encoder(query, cache)?;
            (index, Some(encoder))
        }
        Linking::Dictionary => (
            open_index(query.index.as_deref(), &query.model, cache)?,
            None,
        ),
    })
}

fn linker<'a>(
    index: &'a crate::index::Index,
    encoder: Option<&'a TransformerEncoder>,
) -> Result<Linker<'a>> {
    Ok(match encoder {
        Some(encoder) => Linker::new(index, encoder)?,
        None => Linker::lexical_only(index),
    }
    .with_threads(0))
}

/// The mention detector the flags ask for, over `index`.
fn detector(
    query: &QueryArgs,
    args: &DetectorArgs,
    index: &crate::index::Index,
) -> Result<Box<dyn MentionDetector>> {
    let ner = args.ner.as_deref().unwrap_or(if args.tagger.is_some() {
        "tagger"
    } else {
        "dictionary"
    });
    let tagger = || -> Result<Box<dyn MentionDetector>> {
        let dir = args.tagger.as_ref().ok_or_else(|| {
            Error::InvalidInput(format!("--ner {ner} needs --tagger DIR (a trained tagger)"))
        })?;
        let options = TaggerOptions {
            strategy: args.aggregation.parse()?,
            stride: args.tagger_stride,
            ..TaggerOptions::default()
        };
        Ok(Box::new(Tagger::load(dir, &options).with_context(
            || format!("loading the tagger {}", dir.display()),
        )?))
    };
    match ner {
        "tagger" => return tagger(),
        "both" => {
            return Ok(Box::new(Combined {
                primary: tagger()?,
                secondary: dictionary_matcher(query, args, index)?,
            }))
        }
        _ => {}
    }
    if args.tagger.is_some() {
        anyhow::bail!(Error::InvalidInput(
            "--tagger is given but --ner dictionary does not use it".into()
        ));
    }
    dictionary_matcher(query, args, index)
}

fn dictionary_matcher(
    query: &QueryArgs,
    args: &DetectorArgs,
    index: &crate::index::Index,
) -> Result<Box<dyn MentionDetector>> {
    let matcher_options = MatcherOptions {
        min_chars: args.min_chars,
        acronym_min_chars: args.min_acronym_chars,
        nested: args.nested,
        sources: query.sources.clone(),
        types: query.types.clone(),
        source_labels: pairs("--label", &args.labels)?.into_iter().collect(),
        ..MatcherOptions::default()
    };
    Ok(Box::new(DictionaryMatcher::new(
        &index.dictionary,
        &matcher_options,
    )?))
}

/// `FILE.progress`: how far an `--output` run got. Serialized (JSON).
#[derive(serde::Serialize, serde::Deserialize, Debug, Default)]
struct RunProgress {
    documents: usize,
    bytes: u64,
    complete: bool,
}

fn progress_path(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(".progress");
    PathBuf::from(name)
}

fn save_progress(output: &Path, progress: &RunProgress) -> Result<()> {
    let json = serde_json::to_vec(progress)?;
    crate::fsutil::write_atomic(&progress_path(output), |w| w.write_all(&json))?;
    Ok(())
}

/// Parses `KEY=VALUE` pairs of a repeated flag.
fn pairs(flag: &str, values: &[String]) -> Result<Vec<(String, String)>> {
    values
        .iter()
        .map(|v| {
            v.split_once('=')
                .filter(|(k, v)| !k.trim().is_empty() && !v.trim().is_empty())
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| {
                    Error::InvalidInput(format!("{flag} `{v}` must be KEY=VALUE")).into()
                })
        })
        .collect()
}

/// Counts bytes read, for the progress bar over an input file.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

pub fn run(mut args: AnnotateArgs, cache: &Path) -> Result<()> {
    let input_format: InputFormat = args.input_format.parse()?;
    let output_format: OutputFormat = args.output_format.parse()?;
    let options = annotate_options(&mut args.query, &args.detector)?;

    // Open the output (and the resume point) before the slow model loading.
    let mut resume_from = RunProgress::default();
    let (mut out, output_path): (Box<dyn Write>, Option<PathBuf>) = match &args.output {
        Some(path) => {
            let progress_file = progress_path(path);
            if args.resume && progress_file.is_file() {
                let bytes = std::fs::read(&progress_file)
                    .with_context(|| format!("reading {}", progress_file.display()))?;
                resume_from =
                    serde_json::from_slice(&bytes).map_err(|e| Error::DataCorruption {
                        path: progress_file.clone(),
                        comment: format!("not a medlink progress file: {e}"),
                    })?;
                if resume_from.complete {
                    eprintln!(
                        "{} is already complete ({} documents)",
                        path.display(),
                        resume_from.documents
                    );
                    return Ok(());
                }
            } else if path.exists() && !args.resume {
                anyhow::bail!(Error::InvalidInput(format!(
                    "{} exists: pass --resume to continue it, or remove it",
                    path.display()
                )));
            }
            let file = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(false)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            // Drop whatever a killed run wrote after its last recorded batch.
            file.set_len(resume_from.bytes)
                .with_context(|| format!("truncating {}", path.display()))?;
            let mut file = file;
            std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0))?;
            (Box::new(std::io::BufWriter::new(file)), Some(path.clone()))
        }
        None => (
            Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            None,
        ),
    };

    let read_bytes = Arc::new(AtomicU64::new(0));
    let (reader, name, total): (Box<dyn BufRead>, PathBuf, u64) = match &args.input {
        Some(path) => {
            let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let total = file.metadata().map(|m| m.len()).unwrap_or(0);
            let counting = Counting {
                inner: file,
                read: read_bytes.clone(),
            };
            (
                Box::new(BufReader::with_capacity(1 << 16, counting)),
                path.clone(),
                total,
            )
        }
        None => (
            Box::new(BufReader::new(std::io::stdin().lock())),
            PathBuf::from("<stdin>"),
            0,
        ),
    };
    let mut documents = DocumentReader::new(reader, &name, input_format);

    let (index, encoder) = open_for(&args.query, &options, cache)?;
    let reranker = reranker_file(&args.query)?;
    let linker = query_linker(
        &args.query,
        linker(&index, encoder.as_ref())?,
        reranker.as_ref(),
    )?;
    let detector = detector(&args.query, &args.detector, &index)?;
    let annotator = Annotator::new(detector.as_ref(), &linker);

    // Skip what a resumed run already wrote.
    for _ in 0..resume_from.documents {
        if documents.next_document()?.is_none() {
            anyhow::bail!(Error::InvalidInput(format!(
                "--resume: the progress file says {} documents were annotated, but the input has only {}",
                resume_from.documents,
                documents.count()
            )));
        }
    }

    let bars = Bars::default();
    if total > 0 && args.input.is_some() {
        bars.stage("annotating (bytes)", total);
        bars.advance(read_bytes.load(Ordering::Relaxed));
    }
    let mut shown = read_bytes.load(Ordering::Relaxed);
    let started = std::time::Instant::now();
    let mut written = resume_from.bytes;
    let (mut annotated, mut mentions, mut refused) = (0usize, 0usize, 0usize);
    let mut first_refusal: Option<String> = None;
    loop {
        let mut batch = Vec::with_capacity(args.detector.docs_per_batch);
        while batch.len() < args.detector.docs_per_batch {
            match documents.next_document()? {
                Some(doc) => batch.push(doc),
                None => break,
            }
        }
        if batch.is_empty() {
            break;
        }
        let texts: Vec<&str> = batch
            .iter()
            .filter_map(|d| match d {
                InputDocument::Document { text, .. } => Some(text.as_str()),
                InputDocument::Refused { .. } => None,
            })
            .collect();
        let mut results = annotator.annotate_batch(&texts, &options)?.into_iter();
        let mut buffer = Vec::new();
        for doc in &batch {
            let found = match doc {
                InputDocument::Document { .. } => {
                    annotated += 1;
                    results.next().unwrap_or_default()
                }
                InputDocument::Refused { error, .. } => {
                    refused += 1;
                    if output_format == OutputFormat::Pubtator {
                        eprintln!("refused: {error}");
                    }
                    first_refusal.get_or_insert_with(|| error.clone());
                    Vec::new()
                }
            };
            mentions += found.len();
            write_document(&mut buffer, output_format, doc, &found)?;
        }
        out.write_all(&buffer)?;
        out.flush()?;
        written += buffer.len() as u64;
        if let Some(path) = &output_path {
            save_progress(
                path,
                &RunProgress {
                    documents: documents.count(),
                    bytes: written,
                    complete: false,
                },
            )?;
        }
        let now = read_bytes.load(Ordering::Relaxed);
        bars.advance(now - shown);
        shown = now;
    }
    bars.finish_stage();
    if let Some(path) = &output_path {
        save_progress(
            path,
            &RunProgress {
                documents: documents.count(),
                bytes: written,
                complete: true,
            },
        )?;
    }
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "annotated {annotated} documents, {mentions} mentions in {seconds:.2}s ({:.1} documents/s)",
        annotated as f64 / seconds.max(1e-9)
    );
    if let Some(first) = first_refusal {
        anyhow::bail!(Error::InvalidInput(format!(
            "{refused} input document(s) refused (answered by error objects in JSONL output); the first: {first}"
        )));
    }
    Ok(())
}

/// `medlink eval e2e`: annotate a corpus's texts and score spans, linked mentions and
/// document concept sets against its gold (see [`crate::eval::e2e`]).
pub fn eval_e2e(mut args: EvalE2eArgs, cache: &Path) -> Result<()> {
    let options = annotate_options(&mut args.query, &args.detector)?;
    let corpus = args.corpus.parse::<crate::eval::CorpusSpec>()?.load()?;
    let (index, encoder) = open_for(&args.query, &options, cache)?;
    // Annotation speed: from here, or from when the detector is ready (the dictionary
    // matcher's automaton is built once per index, not per document).
    let mut started = std::time::Instant::now();
    let mut detector_seconds = None;
    let predicted = match &args.predicted {
        Some(spec) => {
            let other = spec.parse::<crate::eval::CorpusSpec>()?.load()?;
            crate::eval::e2e::predictions_from_corpus(&corpus, &other, &index)?
        }
        None => {
            let reranker = reranker_file(&args.query)?;
            let linker = query_linker(
                &args.query,
                linker(&index, encoder.as_ref())?,
                reranker.as_ref(),
            )?;
            let detector = detector(&args.query, &args.detector, &index)?;
            let annotator = Annotator::new(detector.as_ref(), &linker);
            detector_seconds = Some(started.elapsed().as_secs_f64());
            started = std::time::Instant::now();
            let mut predicted = Vec::with_capacity(corpus.documents.len());
            let bars = Bars::default();
            bars.stage("annotating", corpus.documents.len() as u64);
            for chunk in corpus.documents.chunks(args.detector.docs_per_batch) {
                let texts: Vec<&str> = chunk.iter().map(|d| d.text.as_str()).collect();
                for doc in annotator.annotate_batch(&texts, &options)? {
                    predicted.push(doc.iter().map(Into::into).collect());
                }
                bars.advance(chunk.len() as u64);
            }
            bars.finish_stage();
            predicted
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let report = crate::eval::e2e::evaluate(&corpus, &predicted, &index);
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut json = serde_json::to_value(&report)?;
        json["corpus"] = serde_json::json!(args.corpus);
        if args.predicted.is_none() {
            json["seconds"] = serde_json::json!(seconds);
            json["detector_seconds"] = serde_json::json!(detector_seconds);
            json["documents_per_second"] =
                serde_json::json!(corpus.documents.len() as f64 / seconds.max(1e-9));
        }
        serde_json::to_writer_pretty(&mut out, &json)?;
        writeln!(out)?;
        return Ok(());
    }
    let speed = match args.predicted {
        Some(_) => String::new(),
        None => format!(
            "  {:.1} documents/s",
            report.documents as f64 / seconds.max(1e-9)
        ),
    };
    writeln!(
        out,
        "corpus {}  documents {}  gold mentions {} ({} without id)  predicted {}{speed}",
        args.corpus,
        report.documents,
        report.gold_mentions,
        report.gold_without_id,
        report.predicted_mentions,
    )?;
    let row = |name: &str, p: &crate::eval::metrics::Prf| {
        format!(
            "{name:<28} P {:.4}  R {:.4}  F1 {:.4}  (tp {} fp {} fn {})",
            p.precision, p.recall, p.f1, p.tp, p.fp, p.fn_
        )
    };
    writeln!(out, "{}", row("spans strict", &report.spans.strict.overall))?;
    writeln!(
        out,
        "{}",
        row("spans lenient", &report.spans.lenient.overall)
    )?;
    writeln!(
        out,
        "{}",
        row("mentions + id strict", &report.mentions_strict)
    )?;
    writeln!(
        out,
        "{}",
        row("mentions + id lenient", &report.mentions_lenient)
    )?;
    writeln!(
        out,
        "{}",
        row("document concepts", &report.document_concepts)
    )?;
    Ok(())
}
