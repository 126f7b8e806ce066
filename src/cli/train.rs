//! `medlink train encoder`, `medlink train tagger` and `medlink train reranker`: arguments and
//! the progress display of a training run.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::assets::{self, DEFAULT_MODEL};
use crate::eval::CorpusSpec;
use crate::ontology::{self, LoadOptions, OntologySpec};
use crate::train::dev::DevSet;
use crate::train::pairs::PairSet;
use crate::train::tagger::TaggerTrainOptions;
use crate::train::{Start, StepReport, StopRule, TrainObserver, TrainOptions, Trainer};

#[derive(Subcommand, Debug)]
pub enum TrainCommand {
    /// Contrastive (SapBERT-style) training of the bi-encoder on ontology synonyms and,
    /// optionally, training-corpus mentions.
    Encoder(Box<TrainEncoderArgs>),
    /// Fine-tune a token classifier (the NER tagger, IOB2 labels) on annotated corpora; the
    /// checkpoints are Hugging Face token-classification directories of the base's
    /// architecture (BERT, RoBERTa, XLM-R or DeBERTa-v2/v3).
    Tagger(Box<TrainTaggerArgs>),
    /// Learn to re-order an index's top hybrid candidates from annotated mentions (features:
    /// both similarities, exact and preferred-name matches, how often training mentions chose
    /// each concept); recorded in the index and used whenever it links in hybrid mode.
    Reranker(Box<TrainRerankerArgs>),
}

#[derive(Args, Debug)]
pub struct TrainRerankerArgs {
    /// Index directory the re-ranker is trained for (and recorded in, unless --out).
    #[arg(long, value_name = "DIR")]
    pub index: PathBuf,
    #[command(flatten)]
    pub model: super::ModelArgs,
    /// Annotated training corpus (FORMAT:PATH, as `eval link --corpus`); repeat for several.
    #[arg(long = "corpus", value_name = "FORMAT:PATH", required = true)]
    pub corpora: Vec<String>,
    /// Dev corpus choosing the regularisation (never a test split).
    #[arg(long, value_name = "FORMAT:PATH")]
    pub dev_corpus: Option<String>,
    /// Entity types of the corpora's mentions to use (e.g. Disease); default all.
    #[arg(long, value_delimiter = ',', value_name = "TYPE,...")]
    pub entity_types: Vec<String>,
    /// Link short forms defined in their document by their long forms (as `eval link
    /// --abbreviations`); use it if you link that way.
    #[arg(long)]
    pub abbreviations: bool,
    /// Concepts re-ranked per mention.
    #[arg(long, default_value_t = crate::rerank::DEFAULT_DEPTH)]
    pub depth: usize,
    /// Use this L2 strength instead of choosing one on --dev-corpus: to refit on training and
    /// dev mentions together once the dev corpus has chosen it.
    #[arg(long, conflicts_with = "dev_corpus")]
    pub l2: Option<f32>,
    /// Write the re-ranker to this file instead of recording it in the index.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Worker threads for linking (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

// Defaults are `TaggerTrainOptions::default()`'s: README's recipe ("Training a tagger").
#[derive(Args, Debug)]
pub struct TrainTaggerArgs {
    /// Training corpus (FORMAT:PATH[#types=..,split=..]); repeat to combine. Its entity types
    /// make the IOB2 labels.
    #[arg(long = "train-corpus", value_name = "FORMAT:PATH", required = true)]
    pub train_corpora: Vec<String>,
    /// Dev corpus scored by entity-level strict F1 during training; repeat to combine.
    #[arg(long = "dev-corpus", value_name = "FORMAT:PATH")]
    pub dev_corpora: Vec<String>,
    /// Base model directory, with or without a classification head [default: all-MiniLM-L6-v2].
    #[arg(long, value_name = "DIR")]
    pub base: Option<PathBuf>,
    /// Output directory: `last/` (newest checkpoint) and `best/` (best dev F1).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Continue the run in `--out` from `last/` (same options and data required).
    #[arg(long)]
    pub resume: bool,
    /// Loss: ce, weighted-ce (class weights from label frequencies) or focal.
    #[arg(long, default_value = "ce")]
    pub loss: String,
    #[arg(long, default_value_t = TaggerTrainOptions::default().focal_gamma)]
    pub focal_gamma: f32,
    /// Windows per optimizer step.
    #[arg(long, default_value_t = TaggerTrainOptions::default().batch_size)]
    pub batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = TaggerTrainOptions::default().learning_rate)]
    pub learning_rate: f64,
    /// Optimizer steps of the schedule (warm-up, then linear decay to zero here).
    #[arg(long, default_value_t = TaggerTrainOptions::default().steps)]
    pub steps: usize,
    #[arg(long, default_value_t = TaggerTrainOptions::default().warmup_steps)]
    pub warmup_steps: usize,
    /// Tokens per window, special tokens included.
    #[arg(long, default_value_t = TaggerTrainOptions::default().max_length)]
    pub max_length: usize,
    /// Tokens shared by consecutive windows of a document.
    #[arg(long, default_value_t = TaggerTrainOptions::default().stride)]
    pub stride: usize,
    /// Stop this invocation after this many minutes (resume later with --resume).
    #[arg(long)]
    pub max_minutes: Option<f64>,
    /// Stop this invocation after this many steps (resume later with --resume).
    #[arg(long)]
    pub run_steps: Option<usize>,
    #[arg(long, default_value_t = TaggerTrainOptions::default().checkpoint_every)]
    pub checkpoint_every: usize,
    /// Steps between dev evaluations (0: only at the end).
    #[arg(long, default_value_t = TaggerTrainOptions::default().eval_every)]
    pub eval_every: usize,
    /// Dev evaluations without improvement before stopping (0: never).
    #[arg(long, default_value_t = TaggerTrainOptions::default().patience)]
    pub patience: usize,
    #[arg(long, default_value_t = TaggerTrainOptions::default().seed)]
    pub seed: u64,
    /// Worker threads [default 0: one per CPU]. Results do not depend on it.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    #[arg(long, default_value_t = TaggerTrainOptions::default().weight_decay)]
    pub weight_decay: f32,
    /// Global gradient-norm clip (0 disables).
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f32,
}

#[derive(Args, Debug)]
pub struct TrainEncoderArgs {
    /// FORMAT:PATH of an ontology whose synonyms make positive pairs; repeat to combine.
    /// Without one, the concepts are the codes of the --train-corpus mentions, named by those
    /// mentions (a corpus with no gazetteer: MedProcNER), and the pairs are mentions of one code.
    #[arg(
        long = "ontology",
        value_name = "FORMAT:PATH",
        required_unless_present = "train_corpora"
    )]
    pub ontologies: Vec<String>,
    /// Annotated corpus (FORMAT:PATH) whose mentions are paired with their gold concept's
    /// names (the supervised setting); repeat for several.
    #[arg(long = "train-corpus", value_name = "FORMAT:PATH")]
    pub train_corpora: Vec<String>,
    /// Times each mention pair is repeated per epoch.
    #[arg(long, default_value_t = 1)]
    pub mention_repeat: usize,
    /// Write the training pairs as TSV (label, text, text) to this file and exit.
    #[arg(long, value_name = "FILE")]
    pub write_pairs: Option<PathBuf>,
    /// Base model directory [default: all-MiniLM-L6-v2, fetched into the cache].
    #[arg(long, value_name = "DIR")]
    pub base: Option<PathBuf>,
    /// Output directory: `last/` (newest checkpoint) and `best/` (best dev acc@1).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Continue the run in `--out` from `last/` (same options and data required).
    #[arg(long)]
    pub resume: bool,
    /// Dev corpus (FORMAT:PATH) scored during training (dense, exact, concept-level acc@1).
    #[arg(long, value_name = "FORMAT:PATH")]
    pub dev_corpus: Option<String>,
    /// Entity types of the dev corpus to score (e.g. Disease); default all.
    #[arg(long, value_delimiter = ',', value_name = "TYPE,...")]
    pub dev_entity_types: Vec<String>,
    /// FORMAT:PATH of the dictionary the dev corpus is scored against (repeat to combine)
    /// [default: the training dictionary]. Each evaluation embeds every name of it, so a
    /// run over several large vocabularies evaluates faster against the dev corpus's own one.
    #[arg(
        long = "dev-ontology",
        value_name = "FORMAT:PATH",
        requires = "dev_corpus"
    )]
    pub dev_ontologies: Vec<String>,
    /// Positive pairs per micro-batch.
    #[arg(long, default_value_t = 64)]
    pub batch_pairs: usize,
    /// Micro-batches per optimizer step.
    #[arg(long, default_value_t = 1)]
    pub accumulation: usize,
    #[arg(long, default_value_t = 2e-5)]
    pub learning_rate: f64,
    /// Optimizer steps of the schedule (warm-up, then linear decay to zero here).
    #[arg(long, default_value_t = 2000)]
    pub steps: usize,
    #[arg(long, default_value_t = 100)]
    pub warmup_steps: usize,
    /// Stop this invocation after this many minutes (resume later with --resume).
    #[arg(long)]
    pub max_minutes: Option<f64>,
    /// Stop this invocation after this many steps (resume later with --resume).
    #[arg(long)]
    pub run_steps: Option<usize>,
    #[arg(long, default_value_t = 200)]
    pub checkpoint_every: usize,
    /// Steps between dev evaluations (0: only at the end).
    #[arg(long, default_value_t = 0)]
    pub eval_every: usize,
    /// Synonym pairs kept per concept (SapBERT: 50).
    #[arg(long, default_value_t = 50)]
    pub pairs_per_concept: usize,
    /// Every N steps, find each concept's nearest other concepts with the current weights;
    /// half of every batch is then pairs of those neighbours (hard negatives). 0: off.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub hard_negatives_every: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Worker threads [default 0: one per CPU]. Results do not depend on it.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    #[arg(long, default_value_t = 25)]
    pub max_length: usize,
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f32,
    /// Global gradient-norm clip (0 disables).
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f32,
}

/// mimalloc's `mi_option_purge_delay` (`mimalloc.h`; libmimalloc-sys builds mimalloc v3):
/// milliseconds before freed memory goes back to the OS, -1 for never. libmimalloc-sys names
/// no constant for it; the test below checks the index still reads its documented default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Training allocates the same large tensors every step: returned to the OS, they come back as
/// fresh pages the kernel must zero — a quarter of a step with 256-token tagger windows (README
/// "Training a tagger"). A trainer's memory peaks every step anyway, so keeping it costs
/// nothing. mimalloc is the binary's global allocator (src/main.rs); under another allocator
/// this changes nothing.
fn keep_freed_memory() {
    // SAFETY: sets a process-wide allocator option, which mimalloc allows at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

pub fn run(command: TrainCommand, cache: &Path) -> Result<()> {
    keep_freed_memory();
    let args = match command {
        TrainCommand::Encoder(args) => args,
        TrainCommand::Tagger(args) => return run_tagger(*args, cache),
        TrainCommand::Reranker(args) => return run_reranker(*args, cache),
    };
    let threads = crate::parallel::threads(args.threads);
    let specs = args
        .ontologies
        .iter()
        .map(|s| s.parse::<OntologySpec>())
        .collect::<crate::Result<Vec<_>>>()?;
    let corpora = args
        .train_corpora
        .iter()
        .map(|s| {
            let spec = s.parse::<CorpusSpec>()?;
            let corpus = spec.load()?;
            Ok((spec, corpus))
        })
        .collect::<crate::Result<Vec<_>>>()?;
    let dictionary = if specs.is_empty() {
        crate::eval::mentions::add_mentions(crate::ontology::Dictionary::default(), &corpora)?.0
    } else {
        ontology::load_dictionary(&specs, &LoadOptions::default())?
    };
    let options = TrainOptions {
        batch_pairs: args.batch_pairs,
        accumulation: args.accumulation,
        learning_rate: args.learning_rate,
        warmup_steps: args.warmup_steps,
        steps: args.steps,
        seed: args.seed,
        max_length: args.max_length,
        checkpoint_every: args.checkpoint_every,
        eval_every: args.eval_every,
        weight_decay: args.weight_decay,
        max_grad_norm: (args.max_grad_norm > 0.0).then_some(args.max_grad_norm),
        hard_negatives_every: args.hard_negatives_every,
        ..TrainOptions::default()
    };
    options.validate()?;

    let mut pairs = PairSet::default();
    pairs.add_synonym_pairs(&dictionary, args.pairs_per_concept, args.seed);
    // With no ontology the mentions already are the names: their synonym pairs are the
    // mention pairs.
    if !specs.is_empty() {
        for (_, corpus) in &corpora {
            pairs.add_mention_pairs(corpus, &dictionary, args.seed, args.mention_repeat);
        }
    }
    eprintln!(
        "{} synonym pairs, {} mention pairs ({} mentions skipped: composite, no id or not in the dictionary)",
        pairs.synonym_pairs, pairs.mention_pairs, pairs.mentions_skipped
    );
    if let Some(path) = &args.write_pairs {
        pairs.write_tsv(path)?;
        eprintln!("wrote {} pairs to {}", pairs.pairs.len(), path.display());
        return Ok(());
    }
    let dev = match &args.dev_corpus {
        Some(spec) => {
            let corpus = spec.parse::<CorpusSpec>()?.load()?;
            if args.dev_ontologies.is_empty() {
                Some(DevSet::new(&corpus, &dictionary, &args.dev_entity_types))
            } else {
                let dev_specs = args
                    .dev_ontologies
                    .iter()
                    .map(|s| s.parse::<OntologySpec>())
                    .collect::<crate::Result<Vec<_>>>()?;
                let dev_dictionary =
                    ontology::load_dictionary(&dev_specs, &LoadOptions::default())?;
                Some(DevSet::new(
                    &corpus,
                    &dev_dictionary,
                    &args.dev_entity_types,
                ))
            }
        }
        None => None,
    };
    let base = match &args.base {
        Some(dir) => dir.clone(),
        None => assets::fetch(&DEFAULT_MODEL, cache)?,
    };
    let start = if args.resume {
        Start::Resume
    } else {
        if args.out.join("last").exists() {
            anyhow::bail!(crate::Error::InvalidInput(format!(
                "{} already holds a training run: pass --resume to continue it, or another --out",
                args.out.display()
            )));
        }
        Start::Base(&base)
    };
    let trainer = Trainer {
        out: &args.out,
        threads,
        options,
        pairs: &pairs,
        dev: dev.as_ref(),
    };
    let stop = StopRule {
        run_steps: args.run_steps,
        max_seconds: args.max_minutes.map(|m| m * 60.0),
    };
    let mut bar = Bar::new();
    let summary = trainer
        .run(start, &stop, &mut bar)
        .with_context(|| format!("training into {}", args.out.display()))?;
    bar.finish();
    let s = &summary.state;
    eprintln!(
        "step {} of {} ({} this run, {:.0} s); last checkpoint {}",
        s.step,
        s.options.steps,
        summary.steps_this_run,
        summary.seconds_this_run,
        summary.last.display()
    );
    if let (Some(best), Some(dir)) = (&s.best, &summary.best) {
        eprintln!(
            "best dev acc@1 {:.4} at step {}: {}",
            best.acc1,
            best.step,
            dir.display()
        );
    }
    Ok(())
}

/// Reads and concatenates corpora given as specs.
fn load_corpora(specs: &[String]) -> Result<crate::eval::Corpus> {
    let mut all = crate::eval::Corpus::default();
    for spec in specs {
        let corpus = spec
            .parse::<CorpusSpec>()?
            .load()
            .with_context(|| format!("reading corpus {spec}"))?;
        if !corpus.span_mismatches.is_empty() {
            eprintln!(
                "{spec}: {} spans disagree with their text (first: {})",
                corpus.span_mismatches.len(),
                corpus.span_mismatches[0]
            );
        }
        all.documents.extend(corpus.documents);
        all.span_mismatches.extend(corpus.span_mismatches);
    }
    Ok(all)
}

fn run_tagger(args: TrainTaggerArgs, cache: &Path) -> Result<()> {
    use crate::train::tagger::{TaggerStart, TaggerTrainer};
    let options = TaggerTrainOptions {
        batch_size: args.batch_size,
        learning_rate: args.learning_rate,
        warmup_steps: args.warmup_steps,
        steps: args.steps,
        seed: args.seed,
        max_length: args.max_length,
        stride: args.stride,
        checkpoint_every: args.checkpoint_every,
        eval_every: args.eval_every,
        patience: args.patience,
        weight_decay: args.weight_decay,
        max_grad_norm: (args.max_grad_norm > 0.0).then_some(args.max_grad_norm),
        loss: args.loss.parse()?,
        focal_gamma: args.focal_gamma,
    };
    options.validate()?;
    let train = load_corpora(&args.train_corpora)?;
    let dev = if args.dev_corpora.is_empty() {
        None
    } else {
        Some(load_corpora(&args.dev_corpora)?)
    };
    let base = match &args.base {
        Some(dir) => dir.clone(),
        None => assets::fetch(&DEFAULT_MODEL, cache)?,
    };
    let start = if args.resume {
        TaggerStart::Resume
    } else {
        if args.out.join("last").exists() {
            anyhow::bail!(crate::Error::InvalidInput(format!(
                "{} already holds a training run: pass --resume to continue it, or another --out",
                args.out.display()
            )));
        }
        TaggerStart::Base(&base)
    };
    let trainer = TaggerTrainer {
        out: &args.out,
        threads: crate::parallel::threads(args.threads),
        options,
        train: &train,
        dev: dev.as_ref(),
    };
    let stop = StopRule {
        run_steps: args.run_steps,
        max_seconds: args.max_minutes.map(|m| m * 60.0),
    };
    let mut bar = Bar::new();
    let summary = trainer
        .run(start, &stop, &mut bar)
        .with_context(|| format!("training into {}", args.out.display()))?;
    bar.finish();
    let s = &summary.state;
    eprintln!(
        "step {} of {} ({} this run, {:.0} s{}); last checkpoint {}",
        s.step,
        s.options.steps,
        summary.steps_this_run,
        summary.seconds_this_run,
        if s.stopped_early {
            ", stopped early"
        } else {
            ""
        },
        summary.last.display()
    );
    if let (Some(best), Some(dir)) = (&s.best, &summary.best) {
        let per_type: Vec<String> = best
            .per_type_f1
            .iter()
            .map(|(t, f)| format!("{t} {f:.4}"))
            .collect();
        eprintln!(
            "best dev strict F1 {:.4} ({}) at step {}: {}",
            best.f1,
            per_type.join(", "),
            best.step,
            dir.display()
        );
    }
    Ok(())
}

/// Progress bar with loss, pairs/s (encoder) or tokens/s (tagger) and ETA; hidden when stderr is not a terminal, where a
/// log line every 50 steps is written instead.
struct Bar {
    bar: ProgressBar,
}

impl Bar {
    fn new() -> Self {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30} step {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]",
            )
            .expect("static template"),
        );
        Bar { bar }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl TrainObserver for Bar {
    fn step(&mut self, r: &StepReport) {
        self.bar.set_length(r.total_steps as u64);
        self.bar.set_position(r.step as u64);
        let text = format!(
            "loss {:.4} lr {:.2e} |g| {:.2} {:.1} {}/s",
            r.loss, r.learning_rate, r.grad_norm, r.rate, r.unit
        );
        if self.bar.is_hidden() && r.step.is_multiple_of(50) {
            eprintln!(
                "step {}/{} {text} ({:.0} s)",
                r.step, r.total_steps, r.seconds
            );
        }
        self.bar.set_message(text);
    }

    fn message(&mut self, text: &str) {
        self.bar.suspend(|| eprintln!("{text}"));
    }
}

fn run_reranker(args: TrainRerankerArgs, cache: &Path) -> Result<()> {
    use crate::rerank::train::{train, RerankTrainOptions};
    let load = |spec: &str| -> crate::Result<(String, crate::eval::Corpus)> {
        Ok((spec.to_string(), spec.parse::<CorpusSpec>()?.load()?))
    };
    let corpora = args
        .corpora
        .iter()
        .map(|s| load(s))
        .collect::<crate::Result<Vec<_>>>()?;
    let dev = args.dev_corpus.as_deref().map(load).transpose()?;
    let index = super::commands::open_index(Some(args.index.as_path()), &args.model, cache)?;
    let encoder = super::commands::encoder_for(&index, &args.model, cache)?;
    let linker = crate::linker::Linker::new(&index, &encoder)?
        .without_reranker()
        .with_threads(args.threads);
    let options = RerankTrainOptions {
        depth: args.depth,
        abbreviations: args.abbreviations,
        entity_types: args.entity_types.clone(),
        ..RerankTrainOptions::default()
    };
    let options = match args.l2 {
        Some(l2) if l2.is_finite() && l2 >= 0.0 => RerankTrainOptions {
            l2_grid: vec![l2],
            ..options
        },
        Some(l2) => anyhow::bail!(crate::Error::InvalidInput(format!(
            "--l2 must be a finite number at least 0, got {l2}"
        ))),
        None => options,
    };
    let started = std::time::Instant::now();
    let reranker = train(
        &index,
        &linker,
        &corpora,
        dev.as_ref().map(|(name, corpus)| (name.as_str(), corpus)),
        &options,
    )?;
    eprintln!(
        "trained on {} candidate lists in {:.0} s; L2 {}",
        reranker.training_lists,
        started.elapsed().as_secs_f64(),
        reranker.l2
    );
    if let Some(dev) = &reranker.dev {
        eprintln!(
            "dev acc@1 over {} mentions: {:.4} in the linker's order, {:.4} re-ranked",
            dev.mentions, dev.linker_acc_at_1, dev.reranked_acc_at_1
        );
    }
    match &args.out {
        Some(path) => {
            reranker.save(path)?;
            eprintln!("wrote {}", path.display());
        }
        None => {
            reranker.record_in(&args.index, &mut index.manifest.clone())?;
            eprintln!(
                "recorded in {} (hybrid linking with this index now re-ranks; `--no-rerank` turns it off)",
                args.index.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_purge_delay_option_index_reads_mimallocs_default() {
        // 1000 ms is mimalloc v3's documented default (v2's was 10); another option at this
        // index would read something else.
        let delay = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(delay, 1000);
    }
}
