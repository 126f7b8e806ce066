//! What the handlers share: configuration, limits, metrics and the served indexes.
//!
//! The server starts answering before its indexes are open (the default index may be built on
//! first use, which takes minutes): `/healthz` is up at once, `/readyz` and the `/v1` routes
//! answer 503 `not_ready` until [`AppState::load`] has run.
//!
//! Indexes and encoders are `&'static`: a server keeps them until the process exits, and a
//! [`Linker`] borrows both, so leaking them (once, at load) is what lets every request share one
//! linker without rebuilding it or holding a self-referential struct.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::metrics::Metrics;
use super::queue::{EncoderQueue, QueuedEncoder};
use crate::encoder::Encoder;
use crate::error::{Error, Result};
use crate::index::Index;
use crate::linker::{Linker, MAX_MENTION_CHARS};
use crate::ner::dictionary::{DictionaryMatcher, MatcherOptions};
use crate::ontology::ConceptIdx;

/// Request limits. Defaults suit one client sending batches and a page typing queries.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body in bytes (413 above).
    pub max_body_bytes: usize,
    /// Mentions per `/v1/link` request, texts per `/v1/annotate` request (413 above).
    pub max_mentions: usize,
    /// Characters per mention (that mention gets a 422 error entry above).
    pub max_mention_chars: usize,
    /// Characters per context or annotated text (422 above).
    pub max_text_chars: usize,
    /// Requests answered at once on the `/v1` routes (429 above).
    pub max_concurrent: usize,
    /// Mentions admitted to the encoder queue and not yet answered (503 above).
    pub max_queued_mentions: usize,
    /// Most texts one encoder batch merges.
    pub max_batch: usize,
    /// Encoder worker threads per model. `medlink serve` starts one per CPU and gives each
    /// an encoder of one thread; the default (1) suits an encoder that uses every CPU itself.
    pub encoder_workers: usize,
    /// Requests doing CPU work (encoding, searching, scoring) at once; later ones wait their
    /// turn in arrival order. More than the cores makes every request share them: all slow
    /// down together and the slowest decide p99. It also caps an encoder batch: the default
    /// (512, as `max_concurrent`) sets no limit, and `medlink serve` sets CPUs + 1 for the
    /// int8 encoder only, whose speed does not depend on batches.
    pub max_active: usize,
    /// Time a `/v1` request may take (503 `timeout` after).
    pub request_timeout: Duration,
    /// Recently linked mentions remembered per index (0: off).
    pub mention_cache: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 2 * 1024 * 1024,
            max_mentions: 1_000,
            max_mention_chars: MAX_MENTION_CHARS,
            max_text_chars: 100_000,
            max_concurrent: 512,
            max_queued_mentions: 8_192,
            max_batch: 128,
            encoder_workers: 1,
            max_active: 512,
            request_timeout: Duration::from_secs(30),
            mention_cache: 10_000,
        }
    }
}

impl Limits {
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("max body bytes", self.max_body_bytes),
            ("max mentions", self.max_mentions),
            ("max mention chars", self.max_mention_chars),
            ("max text chars", self.max_text_chars),
            ("max concurrent", self.max_concurrent),
            ("max queued mentions", self.max_queued_mentions),
            ("max batch", self.max_batch),
            ("encoder workers", self.encoder_workers),
            ("max active", self.max_active),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(Error::InvalidInput(format!("{name} must be at least 1")));
        }
        if self.max_mentions > self.max_queued_mentions {
            return Err(Error::InvalidInput(format!(
                "max mentions ({}) must not exceed max queued mentions ({}): such a request could never be admitted",
                self.max_mentions, self.max_queued_mentions
            )));
        }
        if self.max_mention_chars > MAX_MENTION_CHARS {
            return Err(Error::InvalidInput(format!(
                "max mention chars must be at most {MAX_MENTION_CHARS} (the linker's limit)"
            )));
        }
        if self.request_timeout.is_zero() {
            return Err(Error::InvalidInput(
                "the request timeout must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// Server configuration besides the indexes.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    pub limits: Limits,
    /// Bearer token required on every `/v1` route when set.
    pub api_key: Option<String>,
    /// Origins allowed by CORS; empty: no CORS headers at all.
    pub cors_origins: Vec<String>,
}

/// An index to serve, under a name, with the encoder of the model it was built with.
pub struct IndexSpec {
    pub name: String,
    pub index: &'static Index,
    /// Indexes given the same encoder (the same reference) share one queue and worker.
    pub encoder: &'static dyn Encoder,
    /// Concept types `/v1/annotate` detects and links when the request names none; empty:
    /// every type. The default HPO index keeps its phenotype branch, as `medlink annotate` does.
    pub annotate_types: Vec<String>,
}

/// One served index: its linker and what the concept view needs.
pub struct ServedIndex {
    pub name: String,
    pub index: &'static Index,
    pub linker: Linker<'static>,
    pub queue: Arc<EncoderQueue>,
    /// Direct children of each concept: the dictionary stores parents only.
    pub children: HashMap<ConceptIdx, Vec<ConceptIdx>>,
    /// Concept types by frequency, most frequent first.
    pub types: Vec<String>,
    /// The annotate route's mention detector over this index's names.
    pub matcher: DictionaryMatcher,
    /// See [`IndexSpec::annotate_types`].
    pub annotate_types: Vec<String>,
}

/// The loaded indexes, by name.
pub struct Indexes {
    /// Leaked like the indexes they wrap, so blocking tasks can hold them without a clone.
    pub by_name: BTreeMap<String, &'static ServedIndex>,
    pub default: String,
}

impl Indexes {
    /// The index called `name`, or the default one.
    pub fn get(&self, name: Option<&str>) -> Option<&'static ServedIndex> {
        self.by_name.get(name.unwrap_or(&self.default)).copied()
    }
}

/// Shared state of the handlers; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<ServerConfig>,
    pub metrics: Arc<Metrics>,
    pub indexes: Arc<OnceLock<Indexes>>,
    /// Permits for requests in progress on `/v1` routes.
    pub concurrency: Arc<Semaphore>,
    /// Permits for requests doing CPU work ([`Limits::max_active`]); tokio's semaphore is
    /// fair, so waiting requests go in arrival order.
    pub active: Arc<Semaphore>,
    /// Counter for generated request ids.
    pub next_request_id: Arc<AtomicU64>,
}

impl AppState {
    /// A state with no index yet: the server answers `not_ready` until [`AppState::load`].
    pub fn new(config: ServerConfig) -> Result<Self> {
        config.limits.validate()?;
        Ok(AppState {
            concurrency: Arc::new(Semaphore::new(config.limits.max_concurrent)),
            active: Arc::new(Semaphore::new(config.limits.max_active)),
            config: Arc::new(config),
            metrics: Arc::new(Metrics::default()),
            indexes: Arc::new(OnceLock::new()),
            next_request_id: Arc::new(AtomicU64::new(1)),
        })
    }

    /// A ready state serving `specs`; the first is the default index.
    pub fn with_indexes(config: ServerConfig, specs: Vec<IndexSpec>) -> Result<Self> {
        let state = Self::new(config)?;
        state.load(specs)?;
        Ok(state)
    }

    /// Builds the linkers, starts one encoder queue per distinct encoder and makes the server
    /// ready. The first spec is the default index.
    pub fn load(&self, specs: Vec<IndexSpec>) -> Result<()> {
        let default = specs
            .first()
            .map(|s| s.name.clone())
            .ok_or_else(|| Error::InvalidInput("no index to serve".into()))?;
        let limits = &self.config.limits;
        let mut queues: Vec<(&'static dyn Encoder, Arc<EncoderQueue>)> = Vec::new();
        let mut by_name = BTreeMap::new();
        for spec in specs {
            if spec.name.is_empty()
                || !spec
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(Error::InvalidInput(format!(
                    "index name `{}` must be non-empty ASCII letters, digits, '-', '_' or '.'",
                    spec.name
                )));
            }
            if by_name.contains_key(&spec.name) {
                return Err(Error::InvalidInput(format!(
                    "two indexes are named `{}`: name them with NAME=DIR",
                    spec.name
                )));
            }
            let queue = match queues
                .iter()
                .find(|(e, _)| std::ptr::addr_eq(*e as *const dyn Encoder, spec.encoder))
            {
                Some((_, q)) => Arc::clone(q),
                None => {
                    let q = Arc::new(EncoderQueue::start(
                        spec.encoder,
                        limits.max_queued_mentions,
                        limits.max_batch,
                        limits.encoder_workers,
                        Arc::clone(&self.metrics),
                    )?);
                    queues.push((spec.encoder, Arc::clone(&q)));
                    q
                }
            };
            let encoder: &'static QueuedEncoder =
                Box::leak(Box::new(QueuedEncoder(Arc::clone(&queue))));
            let linker = Linker::new(spec.index, encoder)?.with_cache(limits.mention_cache);
            let dict = &spec.index.dictionary;
            let mut children: HashMap<ConceptIdx, Vec<ConceptIdx>> = HashMap::new();
            let mut type_counts: HashMap<&str, usize> = HashMap::new();
            for (i, concept) in dict.concepts().enumerate() {
                for parent in &concept.parents {
                    if let Some(p) = dict.lookup_id(parent) {
                        children.entry(p).or_default().push(i as ConceptIdx);
                    }
                }
                for t in dict.concept_types(i as ConceptIdx) {
                    *type_counts.entry(t).or_default() += 1;
                }
            }
            dict.release_records();
            let mut types: Vec<(&str, usize)> = type_counts.into_iter().collect();
            types.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            let matcher = DictionaryMatcher::new(
                dict,
                &MatcherOptions {
                    types: spec.annotate_types.clone(),
                    ..MatcherOptions::default()
                },
            )?;
            let served: &'static ServedIndex = Box::leak(Box::new(ServedIndex {
                name: spec.name,
                index: spec.index,
                linker,
                queue,
                children,
                types: types.into_iter().map(|(t, _)| t.to_string()).collect(),
                matcher,
                annotate_types: spec.annotate_types,
            }));
            by_name.insert(served.name.clone(), served);
        }
        self.indexes
            .set(Indexes { by_name, default })
            .map_err(|_| Error::InvalidInput("the server's indexes are already loaded".into()))
    }
}
