//! Command-line interface (clap). Each subcommand is a thin layer over the library; errors are
//! printed once on stderr with their cause chain, and the exit code says whose fault it was:
//! 2 for bad input, 1 for a runtime failure, 70 for a bug.

mod annotate;
mod commands;
mod progress;
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::error::ErrorKind;

#[derive(Parser, Debug)]
#[command(
    name = "medlink",
    version,
    about = "Biomedical entity linking: find the concept a mention names"
)]
pub struct Cli {
    /// Cache for fetched models, ontologies and the default index
    /// [default: $MEDLINK_CACHE, else $XDG_CACHE_HOME/medlink, else ~/.cache/medlink]
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// More logging (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Download the default model (all-MiniLM-L6-v2) and ontology (HPO) into the cache.
    Fetch,
    /// Inspect ontology files.
    #[command(subcommand)]
    Ontology(OntologyCommand),
    /// Build and inspect indexes.
    #[command(subcommand)]
    Index(IndexCommand),
    /// Search concepts for a query string.
    Search(SearchArgs),
    /// Link mentions read as JSON lines on stdin; write JSON lines to stdout.
    Link(LinkArgs),
    /// Find and link the mentions in documents: text, JSONL or PubTator in; JSONL or PubTator out.
    Annotate(Box<annotate::AnnotateArgs>),
    /// Embed lines of text from stdin; write one JSON array of floats per line to stdout.
    Embed(EmbedArgs),
    /// Serve the HTTP API and the web page (default http://127.0.0.1:8080/).
    Serve(Box<ServeArgs>),
    /// Benchmark runs: linking accuracy on annotated corpora.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Train models: the bi-encoder on ontology synonyms and annotated mentions, the NER tagger
    /// on annotated corpora.
    #[command(subcommand)]
    Train(train::TrainCommand),
}

#[derive(Subcommand, Debug)]
pub enum EvalCommand {
    /// Link the gold mentions of a corpus and report acc@k and MRR.
    Link(Box<EvalLinkArgs>),
    /// End-to-end concept recognition: annotate a corpus's texts, then score spans, linked
    /// mentions (span + concept) and document concept sets.
    E2e(Box<annotate::EvalE2eArgs>),
    /// Score predicted mention spans against gold spans: strict and lenient P/R/F1 per type.
    Ner {
        /// Gold corpus, FORMAT:PATH (pubtator, phenobert, phenotagger, medprocner, brat, ade,
        /// conll, e3c).
        #[arg(long, value_name = "FORMAT:PATH")]
        gold: String,
        /// Predicted spans in any corpus format (ids are ignored).
        #[arg(
            long,
            value_name = "FORMAT:PATH",
            required_unless_present = "tagger",
            conflicts_with = "tagger"
        )]
        predicted: Option<String>,
        /// Tag the gold corpus's texts with this trained tagger (a token-classification model
        /// directory) and score its entities.
        #[arg(long, value_name = "DIR")]
        tagger: Option<std::path::PathBuf>,
        /// How the tagger's token predictions become entities.
        #[arg(long, default_value = "first", value_parser = ["simple", "first", "average", "max"])]
        aggregation: String,
        /// Tokens shared by consecutive tagger windows of a text longer than the model's window.
        #[arg(long, default_value_t = 32)]
        tagger_stride: usize,
        /// Tagger worker threads (0: one per CPU).
        #[arg(long, default_value_t = 0)]
        threads: usize,
    },
}

#[derive(Args, Debug)]
pub struct EvalLinkArgs {
    #[command(flatten)]
    pub query: QueryArgs,
    /// FORMAT:PATH[#OPTIONS], FORMAT one of pubtator, phenobert, phenotagger, medprocner,
    /// brat, ade, conll, e3c; OPTIONS types=T1+T2, split=train|dev, dev-fraction=F, seed=N,
    /// part=train|test (e3c's published split), comma-separated.
    #[arg(long, value_name = "FORMAT:PATH[#OPTIONS]")]
    pub corpus: String,
    /// Training corpus for the seen / unseen breakdown (same syntax as --corpus).
    #[arg(long, value_name = "FORMAT:PATH[#OPTIONS]")]
    pub train_corpus: Option<String>,
    /// medlink: raw mentions, concept-level top-k. biosyn: the BioSyn / SapBERT protocol
    /// (abbreviations expanded, composites split, lowercase, no punctuation, name-level top-k);
    /// pair it with an index built with --add-mentions for the published setting.
    #[arg(long, default_value = "medlink", value_parser = ["medlink", "biosyn"])]
    pub protocol: String,
    /// Entity types of gold mentions to evaluate (e.g. Disease,Chemical); default all.
    #[arg(long, value_delimiter = ',', value_name = "TYPE")]
    pub entity_types: Vec<String>,
    /// Cut-offs for acc@k.
    #[arg(long = "ks", value_delimiter = ',', default_values_t = vec![1usize, 5, 10, 25])]
    pub ks: Vec<usize>,
    /// Expand abbreviations defined in the document (Schwartz-Hearst) before linking
    /// (medlink protocol; the biosyn protocol always expands them).
    #[arg(long)]
    pub abbreviations: bool,
    /// Misses listed in the JSON report (`worst_misses`), most confident wrong answers first;
    /// raise it to read every miss of a run.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub misses: usize,
    /// Print the full JSON report.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct TuneArgs {
    #[arg(long, value_name = "DIR")]
    pub index: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// A training or development corpus (same syntax as `eval link --corpus`); never the split
    /// you report.
    #[arg(long, value_name = "FORMAT:PATH[#OPTIONS]")]
    pub corpus: String,
    /// Entity types of gold mentions to tune on (e.g. Disease); default all.
    #[arg(long, value_delimiter = ',', value_name = "TYPE")]
    pub entity_types: Vec<String>,
    /// Expand abbreviations defined in the document before linking, as `eval link` does.
    #[arg(long)]
    pub abbreviations: bool,
    /// Print the grid without recording the winner.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct EmbedArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Report throughput only; do not print vectors.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Subcommand, Debug)]
pub enum OntologyCommand {
    /// Load ontologies and print one JSON object of statistics.
    Inspect {
        /// FORMAT:PATH, FORMAT one of obo, medic, ctd, umls, snomed, icd10cm, mesh, tsv, jsonl.
        #[arg(required = true, value_name = "FORMAT:PATH")]
        ontologies: Vec<String>,
        #[command(flatten)]
        load: LoadArgs,
    },
}

#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// Languages to keep (UMLS LAT, SNOMED languageCode); `all` keeps every language.
    #[arg(long = "lang", value_name = "CODE", default_value = "ENG")]
    pub languages: Vec<String>,
    /// UMLS source vocabularies (SAB) to keep; default all.
    #[arg(long = "sab", value_name = "SAB")]
    pub umls_sources: Vec<String>,
    /// Keep suppressed UMLS rows.
    #[arg(long)]
    pub include_suppressed: bool,
}

#[derive(Subcommand, Debug)]
pub enum IndexCommand {
    /// Build an index directory from ontologies.
    Build(Box<BuildArgs>),
    /// Print an index's manifest.
    Info {
        #[arg(long, value_name = "DIR")]
        index: PathBuf,
    },
    /// Rewrite an index with another vector type (e.g. f32 -> i8 to quarter its vectors'
    /// memory) without re-embedding its names; the graph is rebuilt over the new vectors.
    Convert {
        #[arg(long, value_name = "DIR")]
        index: PathBuf,
        /// Vector type of the new index.
        #[arg(long, value_enum)]
        vectors: crate::index::dense::VectorType,
        /// Directory of the new index (replaced atomically if it exists; not the source).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Choose the index's hybrid weight (alpha) on a development corpus and record it in the
    /// manifest, where link, search, eval, annotate and serve find it.
    Tune(Box<TuneArgs>),
    /// Write an index's vectors and payloads (id = name row) as bulk-load files for an
    /// external vector engine, with the requests that load them (LOAD.txt).
    Export {
        #[arg(long, value_name = "DIR")]
        index: PathBuf,
        #[arg(long, value_enum)]
        format: crate::index::export::ExportFormat,
        /// Output directory (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Points per file.
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
    },
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// FORMAT:PATH; repeat for several ontologies.
    #[arg(
        long = "ontology",
        required_unless_present = "add_mentions",
        value_name = "FORMAT:PATH"
    )]
    pub ontologies: Vec<String>,
    /// Add the gold mention strings of an annotated corpus as names of their concepts
    /// (creating concepts the ontologies lack); repeat for several corpora. Same syntax as
    /// `eval link --corpus`, e.g. 'pubtator:train.txt#types=Disease'.
    #[arg(long = "add-mentions", value_name = "FORMAT:PATH[#OPTIONS]")]
    pub add_mentions: Vec<String>,
    /// Index directory to create (replaced atomically if it exists).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    /// HNSW links per node (2..=256; layer 0 keeps up to twice as many).
    #[arg(long, default_value_t = 16)]
    pub hnsw_m: usize,
    #[arg(long, default_value_t = 200)]
    pub ef_construction: usize,
    /// HNSW search breadth recorded in the index (queries use at least their candidate pool)
    /// [default: 64, 128 past 1.5 million names]
    #[arg(long)]
    pub ef_search: Option<usize>,
    /// Stored vector components: f16 (half of f32's memory), i8 (a quarter) or f32; the
    /// accuracy of each is in BENCHMARKS.md ("Vector types").
    #[arg(long, value_enum, default_value_t = crate::index::dense::VectorType::F16)]
    pub vectors: crate::index::dense::VectorType,
}

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A local Hugging Face model directory (config.json, model.safetensors, tokenizer.json)
    /// [default: the index's model, else all-MiniLM-L6-v2 fetched into the cache].
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Pooling, overriding 1_Pooling/config.json [default: the index's, else the model's].
    #[arg(long, value_parser = ["cls", "mean"])]
    pub pooling: Option<String>,
    /// Maximum tokens per string [default: the index's, else 25].
    #[arg(long)]
    pub max_length: Option<usize>,
    /// Strings per forward pass.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Run the encoder's linear layers in int8 (CPU): faster, vectors move slightly
    /// (BENCHMARKS.md, "int8 encoder"). Works with indexes built either way.
    #[arg(long)]
    pub int8: bool,
}

#[derive(Args, Debug, Clone)]
pub struct QueryArgs {
    /// Index directory [default: the HPO index in the cache, built on first use].
    #[arg(long, value_name = "DIR")]
    pub index: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Concepts to return (1..=100).
    #[arg(short, long, default_value_t = 10)]
    pub k: usize,
    /// Candidate signals: hybrid, dense or lexical.
    #[arg(long, default_value = "hybrid")]
    pub mode: String,
    /// Weight of the dense score in hybrid mode (0..=1) [default: the index's tuned weight
    /// (`medlink index tune`), else 0.6].
    #[arg(long)]
    pub alpha: Option<f32>,
    /// Candidate names taken from each of the dense (HNSW) and lexical (tantivy) retrievals
    /// before scoring and grouping (1..=1000; raised to twice k, and four times that with
    /// --source or --type filters): fewer is faster, more can find more (BENCHMARKS.md,
    /// "Candidate pool").
    #[arg(long, value_name = "N", default_value_t = crate::linker::DEFAULT_CANDIDATES)]
    pub candidates: usize,
    /// Keep only concepts of these sources (e.g. HPO, MEDIC).
    #[arg(long = "source", value_name = "NAME")]
    pub sources: Vec<String>,
    /// Keep only concepts of these types (e.g. "Phenotypic abnormality").
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// Keep the linker's own order even if the index has a re-ranker (`medlink train
    /// reranker`).
    #[arg(long, conflicts_with = "reranker")]
    pub no_rerank: bool,
    /// Re-rank with this file (`medlink train reranker --out`) instead of the index's own.
    #[arg(long, value_name = "FILE")]
    pub reranker: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    #[command(flatten)]
    pub query: QueryArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The text to look up, e.g. "big head".
    #[arg(required = true, num_args = 1.., value_name = "QUERY")]
    pub text: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LinkArgs {
    #[command(flatten)]
    pub query: QueryArgs,
    /// Mentions per batch.
    #[arg(long, default_value_t = 256)]
    pub lines_per_batch: usize,
    /// Mark a mention `"nil": true` (no concept) when its top score is below this; the
    /// candidates are still listed. `eval link --json` reports the trade-off per threshold
    /// (`nil_curve`); BENCHMARKS.md ("NIL") has thresholds chosen on training splits.
    #[arg(long, value_name = "SCORE")]
    pub nil_threshold: Option<f32>,
    /// Recently linked mentions remembered and answered without encoding (same results);
    /// 0 turns the cache off.
    #[arg(long, default_value_t = 10_000)]
    pub mention_cache: usize,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Index to serve, DIR or NAME=DIR (name: the directory's name); repeat for several, the
    /// first is the default [default: the HPO index in the cache, built on first use].
    #[arg(long = "index", value_name = "[NAME=]DIR")]
    pub indexes: Vec<String>,
    /// Address to listen on. Loopback by default: expose it deliberately.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: std::net::SocketAddr,
    /// Require `Authorization: Bearer KEY` on every /v1 route [default: $MEDLINK_API_KEY].
    #[arg(
        long,
        value_name = "KEY",
        env = "MEDLINK_API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,
    /// Allow cross-origin requests from this origin (`*` for any); repeat for several.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 2 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Mentions per /v1/link request.
    #[arg(long, default_value_t = 1000)]
    pub max_mentions: usize,
    /// Characters per mention.
    #[arg(long, default_value_t = 1000)]
    pub max_mention_chars: usize,
    /// Characters per context or text.
    #[arg(long, default_value_t = 100_000)]
    pub max_text_chars: usize,
    /// Requests answered at once; more get 429.
    #[arg(long, default_value_t = 512)]
    pub max_concurrent: usize,
    /// Mentions waiting for the encoder; more get 503 with Retry-After.
    #[arg(long, default_value_t = 8192)]
    pub max_queued_mentions: usize,
    /// Most mentions an encoder worker merges into one batch.
    #[arg(long, default_value_t = 128)]
    pub max_batch: usize,
    /// Encoder worker threads per model, each encoding on its share of the CPUs (0: one per
    /// CPU).
    #[arg(long, default_value_t = 0)]
    pub encoder_workers: usize,
    /// Requests doing CPU work (encoding, searching, scoring) at once; later ones wait their
    /// turn in arrival order (0: one more than the CPUs with --int8, else --max-concurrent,
    /// so that f32 batches can gather every waiting request). More lets every request share
    /// the cores and slow down together (BENCHMARKS.md, "Serving").
    #[arg(long, default_value_t = 0)]
    pub max_active: usize,
    /// Seconds a /v1 request may take before a 503 `timeout`.
    #[arg(long, default_value_t = 30.0)]
    pub request_timeout: f64,
    /// Recently linked mentions remembered per index and answered without encoding (same
    /// results); 0 turns the cache off.
    #[arg(long, default_value_t = 10_000)]
    pub mention_cache: usize,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            let kind = err
                .chain()
                .find_map(|e| e.downcast_ref::<crate::Error>())
                .map(crate::Error::kind);
            ExitCode::from(match kind {
                Some(ErrorKind::User) => 2,
                Some(ErrorKind::Internal) => 70,
                Some(ErrorKind::Runtime) | None => 1,
            })
        }
    }
}

/// `medlink link | head` closes stdout early: that is the reader's choice, not an error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "warn,medlink=info",
        _ => "info,medlink=debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: `medlink serve` logs usually go to a file or journal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_consistent() {
        // clap checks duplicate ids and conflicting flags only in debug assertions.
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
