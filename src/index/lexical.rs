//! Lexical search over normalised names: a tantivy index of character 3-grams, re-ranked by
//! TF-IDF cosine.
//!
//! This is the typo- and morphology-tolerant partner of the dense index: the linker uses it as a
//! fallback and fuses its scores with cosine similarities of embeddings.
//!
//! # Features
//! A name is cut into words at whitespace; every word is padded with one space on each side and
//! cut into overlapping character 3-grams (`"big head"` -> `" bi"`, `"big"`, `"ig "`, `" he"`,
//! `"hea"`, `"ead"`, `"ad "`). This is scikit-learn's `char_wb` analyzer, the one scispaCy's
//! linker uses: word boundaries count (a word's first and last letters carry weight) but no
//! 3-gram spans two words, so word order does not change the features (`"head big"` has exactly
//! the features of `"big head"`). A one-letter word still gives one 3-gram (`" a "`), so 1–2
//! character queries act as whole-word / word-prefix / word-suffix queries without a special
//! path. [`char_trigrams`] is the single definition used for indexing, querying and scoring.
//!
//! # Scoring rule
//! The score of a name for a query is the cosine between TF-IDF vectors of 3-gram counts,
//! `w(t) = count(t) * idf(t)` with the smoothed `idf(t) = ln((1 + N) / (1 + df(t))) + 1`
//! (scikit-learn's default; `N` names indexed, `df(t)` names containing `t`, 0 for a 3-gram no
//! name has). It is in `[0, 1]`, is 1 exactly when the name has the query's 3-grams in the same
//! proportions, and is comparable across queries; [`LexicalIndex::similarity`] computes it for
//! any pair of strings, so the linker can score dense-index candidates on the same scale.
//!
//! [`LexicalIndex::search`] retrieves a candidate pool of `max(4k, 64)` names, then returns the
//! best `k` of the pool by the cosine above. The pool is ranked by the dot product restricted
//! to the query's rarest 3-grams over the name's norm (the cosine of those 3-grams alone, but
//! for the query's norm, which does not change the order): their postings are read straight
//! from tantivy and summed per name, and every name's norm is computed when the index opens.
//! At most 16 3-grams are used, and none found in more than 5% of the names unless fewer than
//! four rarer ones remain, since frequent 3-grams match too many names to be worth scanning.
//! The pool only decides which names are seen, never their scores. Ties are broken by exact
//! string equality with the query, then the retrieval score, then name index, so results are
//! deterministic. On the HPO name table the results equal an exhaustive TF-IDF cosine scan's
//! (see `tests/it/index_lexical.rs`).
//!
//! tantivy's own BM25 OR-query (block-WAND over the same 3-grams) retrieved the pool until
//! 2026-12: it ranked by a score the cosine then disagreed with, so it needed a deep pool, and
//! keeping a top 256 under WAND spent about half of a lexical search in tantivy's union and
//! collector; summing the postings directly is a plain scan of the same lists.
//!
//! # Promises
//! The index is immutable once built (manual reader reload, no writer kept). Opening it checks
//! the files' checksums and reads the names (their bytes plus 24 per name: id, offset and
//! norm, the norm kept as f32 by row and f64 by name index) and the document frequency of
//! every 3-gram into memory, so that candidates are re-scored without touching tantivy's
//! compressed document store; retrieval adds 4 bytes per name for each CPU searching at once.
//! [`LexicalIndex`] is `Send + Sync`; searches take `&self`. An on-disk index carries a format
//! tag in tantivy's commit payload: [`LexicalIndex::open`] refuses a directory without it with
//! [`Error::FileFormat`], a missing directory with [`Error::Io`] and an unreadable one with
//! [`Error::DataCorruption`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tantivy::index::InvertedIndexReader;
use tantivy::postings::Postings;
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, Value, STORED,
};
use tantivy::tokenizer::{Token, TokenStream, Tokenizer};
use tantivy::{
    DocSet, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, TantivyError,
    Term, TERMINATED,
};

use crate::error::{Error, Result};
use crate::ontology::NameIdx;

/// Written into tantivy's commit payload; bump when the schema or the features change.
const FORMAT: &str = "medlink-lexical/1";

const FIELD_NAME_ID: &str = "name_id";
const FIELD_NAME: &str = "name";
const FIELD_GRAMS: &str = "grams";
/// Name under which [`CharWbTrigrams`] is registered with tantivy.
const TOKENIZER: &str = "medlink_char_wb_3";

/// 3-grams in more than this fraction of the names are skipped at retrieval when enough rarer
/// 3-grams remain: on HPO 87 3-grams pass it ("al " is in 31% of the names, " of" in 25%,
/// "abn" in 11%), and keeping them made retrieval about 2× slower without finding anything
/// the rarer 3-grams miss.
const FREQUENT_DF_FRACTION: f64 = 0.05;
/// Never retrieve with fewer than this many 3-grams (the rarest ones) when the query has them.
const MIN_RETRIEVAL_GRAMS: usize = 4;
/// Retrieve with at most this many 3-grams, the rarest. Long names otherwise have 40+ 3-grams
/// whose postings are slow to scan (measured with tantivy's OR-query, the retrieval then); on
/// HPO with 1–2 typos, 16 clauses kept hit@25 and
/// hit@1 unchanged and cut the p99 latency from ~4 ms to ~1.3 ms (10 was as good on HPO but lost
/// 0.4 points of hit@25 on NCBI-disease mentions).
const MAX_RETRIEVAL_GRAMS: usize = 16;
/// Candidate pool for re-ranking: `max(POOL_FACTOR * k, MIN_POOL)`.
const POOL_FACTOR: usize = 4;
const MIN_POOL: usize = 64;
/// Indexing memory budget per thread; tantivy splits larger inputs into several segments,
/// merged into one at the end.
const WRITER_MEMORY_PER_THREAD: usize = 64 << 20;
/// Below this many names one indexing thread suffices (and gives one segment without a merge).
const SINGLE_THREAD_NAMES: usize = 200_000;

/// A 3-gram packed into a `u64`: three 21-bit Unicode scalar values. Cheaper to hash, sort and
/// compare than a `String` or a `[char; 3]`.
type Gram = u64;

fn pack(a: char, b: char, c: char) -> Gram {
    (u64::from(a) << 42) | (u64::from(b) << 21) | u64::from(c)
}

fn unpack(g: Gram) -> [char; 3] {
    // Every packed value comes from three chars, so these conversions cannot fail; the
    // replacement character keeps this total anyway.
    let char_at =
        |shift: u32| char::from_u32(((g >> shift) & 0x1f_ffff) as u32).unwrap_or('\u{fffd}');
    [char_at(42), char_at(21), char_at(0)]
}

fn gram_string(g: Gram) -> String {
    unpack(g).iter().collect()
}

/// The character 3-grams of a name, in order, duplicates kept (see the module docs).
pub fn char_trigrams(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each_gram(text, |g| out.push(gram_string(g)));
    out
}

/// Calls `f` on each 3-gram of the space-padded words of `text`.
fn for_each_gram(text: &str, mut f: impl FnMut(Gram)) {
    for word in text.split_whitespace() {
        // Slide a window over ' ', the word's chars, ' '.
        let (mut a, mut b) = (' ', None);
        for c in word.chars().chain(std::iter::once(' ')) {
            match b {
                None => b = Some(c),
                Some(prev) => {
                    f(pack(a, prev, c));
                    a = prev;
                    b = Some(c);
                }
            }
        }
    }
}

/// 3-gram counts of `text`, sorted by 3-gram (so queries are built deterministically).
fn gram_counts(text: &str) -> Vec<(Gram, u32)> {
    let mut grams = Vec::with_capacity(text.len() + 2);
    for_each_gram(text, |g| grams.push(g));
    grams.sort_unstable();
    let mut counts: Vec<(Gram, u32)> = Vec::with_capacity(grams.len());
    for g in grams {
        match counts.last_mut() {
            Some((last, n)) if *last == g => *n += 1,
            _ => counts.push((g, 1)),
        }
    }
    counts
}

/// [`for_each_gram`] as a tantivy tokenizer, so that documents are indexed with exactly the
/// 3-grams queries and scores use. (tantivy's `NgramTokenizer` would make 3-grams across word
/// boundaries, and pre-tokenized text goes through JSON inside tantivy, which made the build
/// four times slower.)
#[derive(Clone, Default)]
struct CharWbTrigrams {
    grams: Vec<Gram>,
    token: Token,
}

struct CharWbTrigramStream<'a> {
    grams: &'a [Gram],
    next: usize,
    token: &'a mut Token,
}

impl Tokenizer for CharWbTrigrams {
    type TokenStream<'a> = CharWbTrigramStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> CharWbTrigramStream<'a> {
        self.grams.clear();
        let grams = &mut self.grams;
        for_each_gram(text, |g| grams.push(g));
        self.token.reset();
        CharWbTrigramStream {
            grams: &self.grams,
            next: 0,
            token: &mut self.token,
        }
    }
}

impl TokenStream for CharWbTrigramStream<'_> {
    fn advance(&mut self) -> bool {
        let Some(&g) = self.grams.get(self.next) else {
            return false;
        };
        self.token.text.clear();
        self.token.text.extend(unpack(g));
        self.token.position = self.next;
        self.next += 1;
        true
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

/// scikit-learn's smoothed inverse document frequency.
fn idf(num_docs: u64, doc_freq: u64) -> f64 {
    ((1.0 + num_docs as f64) / (1.0 + doc_freq as f64)).ln() + 1.0
}

/// splitmix64's finaliser: packed 3-grams differ mostly in their low bits, which a plain
/// multiplicative hash would leave badly mixed, and SipHash is slower than needed here.
#[derive(Default)]
struct GramHasher(u64);

impl Hasher for GramHasher {
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(b) ^ (self.0 >> 56);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type GramMap<V> = HashMap<Gram, V, BuildHasherDefault<GramHasher>>;

/// Document frequency and idf of one indexed 3-gram.
#[derive(Clone, Copy)]
struct GramStats {
    df: u32,
    idf: f64,
}

#[derive(Clone, Copy)]
struct Fields {
    name_id: Field,
    name: Field,
    grams: Field,
}

impl Fields {
    fn schema() -> (Schema, Fields) {
        let mut builder = Schema::builder();
        let name_id = builder.add_u64_field(
            FIELD_NAME_ID,
            NumericOptions::default().set_fast().set_stored(),
        );
        // Stored so that opening the index can load the names for re-scoring.
        let name = builder.add_text_field(FIELD_NAME, STORED);
        // Term frequencies matter (repeated 3-grams such as "ana" in "banana" count twice);
        // positions do not: queries are bags of 3-grams, never phrases, built term by term.
        let grams = builder.add_text_field(
            FIELD_GRAMS,
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(TOKENIZER)
                    .set_index_option(IndexRecordOption::WithFreqs),
            ),
        );
        let fields = Fields {
            name_id,
            name,
            grams,
        };
        (builder.build(), fields)
    }

    /// Looks the fields up in an opened index, checking their types.
    fn from_schema(schema: &Schema, path: &Path) -> Result<Fields> {
        let (expected, _) = Fields::schema();
        let corrupt = |comment: String| Error::DataCorruption {
            path: path.to_path_buf(),
            comment,
        };
        let lookup = |name: &str| -> Result<Field> {
            let field = schema
                .get_field(name)
                .map_err(|_| corrupt(format!("lexical index has no field `{name}`")))?;
            let want = expected
                .get_field(name)
                .map(|f| expected.get_field_entry(f).field_type().value_type())
                .map_err(|e| Error::Internal(format!("lexical schema lacks field {name}: {e}")))?;
            if schema.get_field_entry(field).field_type().value_type() != want {
                return Err(corrupt(format!(
                    "lexical index field `{name}` has the wrong type"
                )));
            }
            Ok(field)
        };
        Ok(Fields {
            name_id: lookup(FIELD_NAME_ID)?,
            name: lookup(FIELD_NAME)?,
            grams: lookup(FIELD_GRAMS)?,
        })
    }
}

/// The indexed names in document order, loaded when the index is opened.
struct Names {
    /// Offset of each segment's first document in the rows below, by segment ordinal.
    segment_base: Vec<usize>,
    ids: Vec<NameIdx>,
    /// Row `r` is `text[ends[r - 1]..ends[r]]` (one buffer, not one `String` per name).
    ends: Vec<usize>,
    text: String,
}

impl Names {
    fn get(&self, row: usize) -> (NameIdx, &str) {
        let start = if row == 0 { 0 } else { self.ends[row - 1] };
        (self.ids[row], &self.text[start..self.ends[row]])
    }
}

/// Character-3-gram index over normalised names. See the module docs for the scoring rule.
pub struct LexicalIndex {
    // Kept so the index (and its directory handle) lives as long as the searcher.
    _index: Index,
    _reader: IndexReader,
    fields: Fields,
    grams: GramMap<GramStats>,
    names: Names,
    /// Each segment's 3-gram postings, by segment ordinal (retrieval reads them directly).
    postings: Vec<Arc<InvertedIndexReader>>,
    /// Each row's TF-IDF norm, computed at open: retrieval divides by it for every name a
    /// query's 3-grams reach, thousands per query.
    row_norms: Vec<f32>,
    /// Zeroed per-row buffers in which retrieval sums a query's postings.
    sums: SumBuffers,
    /// The same norms in f64 by name index (0 for an index no row has): scoring a dense-index
    /// candidate by name index needs them without a name-to-row table. Empty (norms then
    /// computed per call) unless the names' indexes are distinct and dense ([`by_name_index`]).
    norms: Vec<f64>,
    num_docs: u64,
    /// Where the index lives, for error messages; `None` in RAM.
    path: Option<PathBuf>,
}

impl fmt::Debug for LexicalIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LexicalIndex")
            .field("len", &self.num_docs)
            .field("grams", &self.grams.len())
            .field("path", &self.path)
            .finish()
    }
}

/// A query's TF-IDF 3-gram vector, computed once and scored against many names with
/// [`LexicalIndex::similarity_to_name`].
#[derive(Debug, Clone)]
pub struct Profile {
    /// The query's distinct 3-grams, sorted; `weights` and `idfs` follow them.
    grams: Vec<Gram>,
    /// `count(t) * idf(t)`.
    weights: Vec<f64>,
    idfs: Vec<f64>,
    norm: f64,
}

/// Profiles up to this many 3-grams count a name's shared 3-grams on the stack.
const STACK_GRAMS: usize = 64;

impl Profile {
    /// The dot product of the query's vector with `name`'s, over the 3-grams they share: each
    /// 3-gram of the name is looked up in the query's few, not in the index's table, and
    /// the sum runs in 3-gram order, as a sorted walk over the name's own 3-grams would.
    fn shared_dot(&self, name: &str) -> f64 {
        let mut on_stack = [0u32; STACK_GRAMS];
        let mut on_heap = Vec::new();
        let counts: &mut [u32] = if self.grams.len() <= STACK_GRAMS {
            &mut on_stack[..self.grams.len()]
        } else {
            on_heap.resize(self.grams.len(), 0);
            &mut on_heap
        };
        for_each_gram(name, |g| {
            if let Ok(i) = self.grams.binary_search(&g) {
                counts[i] += 1;
            }
        });
        let mut dot = 0.0f64;
        for (i, &n) in counts.iter().enumerate() {
            if n > 0 {
                dot += self.weights[i] * (f64::from(n) * self.idfs[i]);
            }
        }
        dot
    }
}

/// Retrieval's per-row accumulators (4 bytes per name), reused across queries: a search takes
/// one and gives it back zeroed. At most one per CPU is kept; a search beyond that (more
/// threads searching at once than CPUs) allocates its own and frees it, so that a burst of
/// threads does not leave a buffer per thread behind.
struct SumBuffers {
    kept: Mutex<Vec<Vec<f32>>>,
    keep_at_most: usize,
}

impl Default for SumBuffers {
    fn default() -> Self {
        SumBuffers {
            kept: Mutex::default(),
            keep_at_most: crate::parallel::threads(0),
        }
    }
}

impl SumBuffers {
    fn take(&self, rows: usize) -> Vec<f32> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner()).pop();
        kept.filter(|b| b.len() == rows)
            .unwrap_or_else(|| vec![0.0; rows])
    }

    /// `buffer` must be all zero again.
    fn give_back(&self, buffer: Vec<f32>) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() < self.keep_at_most {
            kept.push(buffer);
        }
    }
}

/// A row and its retrieval score, ordered by score, then by lower row (the better first).
#[derive(Clone, Copy)]
struct Ranked {
    score: f32,
    row: u32,
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.score
            .total_cmp(&other.score)
            .then(other.row.cmp(&self.row))
    }
}

/// One retrieval candidate, before sorting.
struct Candidate {
    name_idx: NameIdx,
    cosine: f64,
    exact: bool,
    /// The retrieval score: the dot product over the retrieval 3-grams only, over the name's
    /// norm (breaks ties of the full cosine).
    retrieval: f32,
}

impl LexicalIndex {
    /// Builds the index in `dir` (an empty directory that the caller later renames into place)
    /// from (name index, normalised name) pairs.
    ///
    /// Names without any word (empty or whitespace only) are skipped; [`Self::len`] counts the
    /// names indexed.
    pub fn build(dir: &Path, names: &[(NameIdx, &str)]) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        if entries.next().is_some() {
            return Err(Error::InvalidInput(format!(
                "{}: a lexical index is built into an empty directory",
                dir.display()
            )));
        }
        let (schema, fields) = Fields::schema();
        let index = Index::builder()
            .schema(schema)
            .create_in_dir(dir)
            .map_err(|e| tantivy_error(Some(dir), "create index", e))?;
        index
            .tokenizers()
            .register(TOKENIZER, CharWbTrigrams::default());
        Self::fill_and_open(index, fields, names, Some(dir))
    }

    /// Same as [`Self::build`], in RAM (tests, small vocabularies).
    pub fn build_in_ram(names: &[(NameIdx, &str)]) -> Result<Self> {
        let (schema, fields) = Fields::schema();
        let index = Index::builder()
            .schema(schema)
            .create_in_ram()
            .map_err(|e| tantivy_error(None, "create index in RAM", e))?;
        index
            .tokenizers()
            .register(TOKENIZER, CharWbTrigrams::default());
        Self::fill_and_open(index, fields, names, None)
    }

    /// Opens an index written by [`Self::build`].
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            let (kind, message) = if dir.exists() {
                (
                    std::io::ErrorKind::NotADirectory,
                    "expected a lexical index directory, found a file",
                )
            } else {
                (
                    std::io::ErrorKind::NotFound,
                    "lexical index directory not found",
                )
            };
            return Err(Error::io(dir, std::io::Error::new(kind, message)));
        }
        let unreadable = |e: TantivyError| Error::DataCorruption {
            path: dir.to_path_buf(),
            comment: format!("cannot open lexical index: {e}"),
        };
        let index = Index::open_in_dir(dir).map_err(unreadable)?;
        // Searching never tokenizes (queries are built term by term); registering keeps the
        // index usable by any tantivy code that would.
        index
            .tokenizers()
            .register(TOKENIZER, CharWbTrigrams::default());
        let payload = index.load_metas().map_err(unreadable)?.payload;
        if payload.as_deref() != Some(FORMAT) {
            return Err(Error::FileFormat {
                path: dir.to_path_buf(),
                expected: format!("lexical index ({FORMAT})"),
                found: payload.unwrap_or_else(|| "a tantivy index without format tag".into()),
            });
        }
        let fields = Fields::from_schema(&index.schema(), dir)?;
        // tantivy trusts its files and may panic on damaged ones; their checksums are cheap to
        // verify (CRC32 over a few MB for 40k names) and turn damage into an error.
        let damaged = index.validate_checksum().map_err(unreadable)?;
        if !damaged.is_empty() {
            let mut files: Vec<String> = damaged.iter().map(|p| p.display().to_string()).collect();
            files.sort();
            return Err(Error::DataCorruption {
                path: dir.to_path_buf(),
                comment: format!(
                    "lexical index files fail their checksum: {}",
                    files.join(", ")
                ),
            });
        }
        Self::with_reader(index, fields, Some(dir))
    }

    fn fill_and_open(
        index: Index,
        fields: Fields,
        names: &[(NameIdx, &str)],
        path: Option<&Path>,
    ) -> Result<Self> {
        let threads = if names.len() < SINGLE_THREAD_NAMES {
            1
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .clamp(1, 4)
        };
        let mut writer: IndexWriter = index
            .writer_with_num_threads(threads, threads * WRITER_MEMORY_PER_THREAD)
            .map_err(|e| tantivy_error(path, "open index writer", e))?;
        for &(idx, text) in names {
            if text.split_whitespace().next().is_none() {
                continue;
            }
            let mut doc = TantivyDocument::default();
            doc.add_u64(fields.name_id, u64::from(idx));
            doc.add_text(fields.name, text);
            doc.add_text(fields.grams, text);
            writer
                .add_document(doc)
                .map_err(|e| tantivy_error(path, "add document", e))?;
        }
        let mut commit = writer
            .prepare_commit()
            .map_err(|e| tantivy_error(path, "prepare commit", e))?;
        commit.set_payload(FORMAT);
        commit
            .commit()
            .map_err(|e| tantivy_error(path, "commit", e))?;
        // One segment makes queries cheaper (one posting list per 3-gram); a merge keeps the
        // commit payload.
        let segments = index
            .searchable_segment_ids()
            .map_err(|e| tantivy_error(path, "list segments", e))?;
        if segments.len() > 1 {
            writer
                .merge(&segments)
                .wait()
                .map_err(|e| tantivy_error(path, "merge segments", e))?;
        }
        writer
            .wait_merging_threads()
            .map_err(|e| tantivy_error(path, "finish merges", e))?;
        Self::with_reader(index, fields, path)
    }

    fn with_reader(index: Index, fields: Fields, path: Option<&Path>) -> Result<Self> {
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| read_error(path, "open reader", e))?;
        let searcher = reader.searcher();
        let num_docs = searcher.num_docs();
        let grams = read_gram_stats(&searcher, fields.grams, num_docs, path)?;
        let names = read_names(&searcher, fields, path)?;
        let postings = searcher
            .segment_readers()
            .iter()
            .map(|segment| segment.inverted_index(fields.grams))
            .collect::<tantivy::Result<Vec<_>>>()
            .map_err(|e| read_error(path, "open 3-gram postings", e))?;
        let mut index = LexicalIndex {
            _index: index,
            _reader: reader,
            fields,
            grams,
            norms: Vec::new(),
            names,
            postings,
            row_norms: Vec::new(),
            sums: SumBuffers::default(),
            num_docs,
            path: path.map(Path::to_path_buf),
        };
        if u32::try_from(index.len()).is_err() {
            // Retrieval numbers rows in `u32`.
            return Err(corrupt(
                path,
                format!("lexical index has {} names, more than 2^32", index.len()),
            ));
        }
        let norms = index.compute_row_norms()?;
        index.row_norms = norms.iter().map(|&n| n as f32).collect();
        index.norms = by_name_index(&index.names.ids, &norms);
        Ok(index)
    }

    /// Every row's norm, on every CPU.
    fn compute_row_norms(&self) -> Result<Vec<f64>> {
        const CHUNK: usize = 1 << 14;
        let rows = self.names.ids.len();
        let threads = crate::parallel::threads(0);
        let chunks = crate::parallel::parallel_map(rows.div_ceil(CHUNK), threads, |c| {
            let rows = c * CHUNK..((c + 1) * CHUNK).min(rows);
            Ok(rows
                .map(|row| self.norm_of(self.names.get(row).1))
                .collect::<Vec<f64>>())
        })?;
        Ok(chunks.concat())
    }

    /// Number of names indexed.
    pub fn len(&self) -> usize {
        self.names.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.ids.is_empty()
    }

    /// Top-`k` names for an already-normalised query ([`crate::text::normalize`]), best first,
    /// scored by TF-IDF cosine of character 3-grams in `[0, 1]` (see the module docs).
    ///
    /// An empty query, `k == 0` or a query sharing no 3-gram with any name gives an empty list.
    pub fn search(&self, normalized_query: &str, k: usize) -> Result<Vec<(NameIdx, f32)>> {
        let pool = k.saturating_mul(POOL_FACTOR).max(MIN_POOL);
        self.search_in_pool(normalized_query, k, pool)
    }

    /// [`Self::search`] with a retrieval pool of `pool` names (at least `k`) rather than
    /// `max(4k, 64)`: the best `k` by the full cosine among the best `pool` by the retrieval
    /// score. A shallower pool is cheaper and finds a little less on its own (the linker's
    /// hybrid mode, whose dense candidates make up for it, asks for `pool = k`).
    pub fn search_in_pool(
        &self,
        normalized_query: &str,
        k: usize,
        pool: usize,
    ) -> Result<Vec<(NameIdx, f32)>> {
        let profile = self.profile(normalized_query);
        if profile.weights.is_empty() || k == 0 || self.is_empty() {
            return Ok(Vec::new());
        }
        let grams = self.retrieval_grams(normalized_query);
        if grams.is_empty() {
            return Ok(Vec::new());
        }
        let top = self.retrieve(&grams, pool.max(k).min(self.len()))?;

        let mut candidates = Vec::with_capacity(top.len());
        for (retrieval, row) in top {
            let (name_idx, name) = self.names.get(row as usize);
            candidates.push(Candidate {
                name_idx,
                cosine: self.cosine(&profile, Some(name_idx), name),
                exact: name == normalized_query,
                retrieval,
            });
        }
        candidates.sort_by(|a, b| {
            b.cosine
                .total_cmp(&a.cosine)
                .then(b.exact.cmp(&a.exact))
                .then(b.retrieval.total_cmp(&a.retrieval))
                .then(a.name_idx.cmp(&b.name_idx))
        });
        candidates.truncate(k);
        Ok(candidates
            .into_iter()
            .map(|c| (c.name_idx, c.cosine as f32))
            .collect())
    }

    /// The score [`Self::search`] gives `normalized_name` for `normalized_query`, for any name,
    /// indexed or not (the linker scores dense-index candidates with it). Symmetric; 0 when the
    /// two share no 3-gram or either is empty.
    pub fn similarity(&self, normalized_query: &str, normalized_name: &str) -> f32 {
        self.cosine(&self.profile(normalized_query), None, normalized_name) as f32
    }

    /// The query side of [`Self::similarity`], to score one query against many names.
    pub fn query_profile(&self, normalized_query: &str) -> Profile {
        self.profile(normalized_query)
    }

    /// [`Self::similarity`] with a precomputed query profile, for the dictionary's name
    /// `name_idx`, whose normal form `normalized_name` must be the text this index holds for
    /// `name_idx` (the index's names are the dictionary's, by the same index): the name's norm
    /// is remembered for the next query. Same score.
    pub fn similarity_to_name(
        &self,
        query: &Profile,
        name_idx: NameIdx,
        normalized_name: &str,
    ) -> f32 {
        self.cosine(query, Some(name_idx), normalized_name) as f32
    }

    /// The query's rarest indexed 3-grams with their counts in the query (see the module
    /// docs); empty when no 3-gram of the query is indexed.
    fn retrieval_grams(&self, normalized_query: &str) -> Vec<(Gram, u32)> {
        let mut present: Vec<(u32, Gram, u32)> = gram_counts(normalized_query)
            .into_iter()
            .filter_map(|(g, count)| self.grams.get(&g).map(|s| (s.df, g, count)))
            .collect();
        present.sort_unstable();
        let frequent = (FREQUENT_DF_FRACTION * self.num_docs as f64).max(1.0) as u32;
        let rare = present.iter().filter(|(df, ..)| *df <= frequent).count();
        let keep = rare
            .clamp(MIN_RETRIEVAL_GRAMS, MAX_RETRIEVAL_GRAMS)
            .min(present.len());
        present[..keep]
            .iter()
            .map(|&(_, g, count)| (g, count))
            .collect()
    }

    /// The `pool` rows with the highest dot product restricted to `grams` (the TF-IDF products
    /// of those 3-grams summed over their postings) over the row's full norm, best first, ties
    /// by row; with the score.
    fn retrieve(&self, grams: &[(Gram, u32)], pool: usize) -> Result<Vec<(f32, u32)>> {
        let mut sums = self.sums.take(self.row_norms.len());
        let mut touched: Vec<u32> = Vec::new();
        let summed = self.sum_postings(grams, &mut sums, &mut touched);
        // Every touched row is reset, whatever happened, for the next query; the best
        // `pool` are kept in a min-heap on the way (most rows fall below its least and
        // cost one comparison).
        let mut best: BinaryHeap<Reverse<Ranked>> = BinaryHeap::with_capacity(pool + 1);
        for &row in &touched {
            let sum = std::mem::take(&mut sums[row as usize]);
            let norm = self.row_norms[row as usize];
            let ranked = Ranked {
                score: if norm > 0.0 { sum / norm } else { 0.0 },
                row,
            };
            if best.len() < pool {
                best.push(Reverse(ranked));
            } else if best.peek().is_some_and(|least| ranked > least.0) {
                best.pop();
                best.push(Reverse(ranked));
            }
        }
        self.sums.give_back(sums);
        summed?;
        Ok(best
            .into_sorted_vec()
            .into_iter()
            .map(|Reverse(r)| (r.score, r.row))
            .collect())
    }

    /// Adds `count(t) * idf(t)² * tf(t, row)` of each 3-gram `t` of `grams` into `sums` for
    /// every row whose name has `t`, recording each row's first touch in `touched`.
    fn sum_postings(
        &self,
        grams: &[(Gram, u32)],
        sums: &mut [f32],
        touched: &mut Vec<u32>,
    ) -> Result<()> {
        for &(gram, count) in grams {
            let idf = self.idf(gram);
            let weight = (f64::from(count) * idf * idf) as f32;
            let term = Term::from_field_text(self.fields.grams, &gram_string(gram));
            for (segment, postings) in self.postings.iter().enumerate() {
                let base = self.names.segment_base[segment];
                let end = self
                    .names
                    .segment_base
                    .get(segment + 1)
                    .copied()
                    .unwrap_or(sums.len());
                let Some(mut docs) = postings
                    .read_postings(&term, IndexRecordOption::WithFreqs)
                    .map_err(|e| self.error("read 3-gram postings", e.into()))?
                else {
                    continue;
                };
                let mut doc = docs.doc();
                while doc != TERMINATED {
                    let row = base + doc as usize;
                    let sum = sums.get_mut(row).filter(|_| row < end).ok_or_else(|| {
                        self.corrupt(format!(
                            "3-gram postings of segment {segment} name unknown document {doc}"
                        ))
                    })?;
                    if *sum == 0.0 {
                        touched.push(row as u32);
                    }
                    *sum += weight * docs.term_freq() as f32;
                    doc = docs.advance();
                }
            }
        }
        Ok(())
    }

    fn idf(&self, g: Gram) -> f64 {
        match self.grams.get(&g) {
            Some(s) => s.idf,
            None => idf(self.num_docs, 0),
        }
    }

    fn profile(&self, text: &str) -> Profile {
        let counts = gram_counts(text);
        let grams: Vec<Gram> = counts.iter().map(|&(g, _)| g).collect();
        let idfs: Vec<f64> = grams.iter().map(|&g| self.idf(g)).collect();
        let weights: Vec<f64> = counts
            .iter()
            .zip(&idfs)
            .map(|(&(_, n), idf)| f64::from(n) * idf)
            .collect();
        // Summed in 3-gram order, as `norm_of` sums a name's.
        let norm = weights.iter().map(|w| w * w).sum::<f64>().sqrt();
        Profile {
            grams,
            idfs,
            weights,
            norm,
        }
    }

    /// The Euclidean norm of `text`'s TF-IDF vector.
    fn norm_of(&self, text: &str) -> f64 {
        let mut norm2 = 0.0f64;
        for (g, n) in gram_counts(text) {
            let w = f64::from(n) * self.idf(g);
            norm2 += w * w;
        }
        norm2.sqrt()
    }

    /// TF-IDF cosine of `name` against a query profile, clamped to `[0, 1]` against rounding;
    /// with `name_idx`, the name's norm comes from (or goes into) the cache.
    fn cosine(&self, query: &Profile, name_idx: Option<NameIdx>, name: &str) -> f64 {
        let dot = query.shared_dot(name);
        if dot <= 0.0 {
            return 0.0;
        }
        let norm = match name_idx.and_then(|i| self.norms.get(i as usize)) {
            Some(&norm) if norm > 0.0 => {
                debug_assert_eq!(norm, self.norm_of(name), "{name_idx:?}: {name}");
                norm
            }
            _ => self.norm_of(name),
        };
        (dot / (query.norm * norm)).clamp(0.0, 1.0)
    }

    fn error(&self, what: &str, e: TantivyError) -> Error {
        read_error(self.path.as_deref(), what, e)
    }

    fn corrupt(&self, comment: String) -> Error {
        corrupt(self.path.as_deref(), comment)
    }
}

/// Each row's `norms` placed at its name index, 0 where no row has the index: none when two
/// names share an index (a norm would belong to one text only) or the indexes are so sparse
/// that the table would cost more than the names (an index built from a subset of a large
/// dictionary).
fn by_name_index(ids: &[NameIdx], norms: &[f64]) -> Vec<f64> {
    let Some(&largest) = ids.iter().max() else {
        return Vec::new();
    };
    let slots = largest as usize + 1;
    if slots > 2 * ids.len() + 1024 {
        return Vec::new();
    }
    let mut seen = vec![false; slots];
    for &id in ids {
        if std::mem::replace(&mut seen[id as usize], true) {
            return Vec::new();
        }
    }
    let mut by_name = vec![0.0; slots];
    for (&id, &norm) in ids.iter().zip(norms) {
        by_name[id as usize] = norm;
    }
    by_name
}

/// Document frequency and idf of every term of the 3-gram field, summed over segments (the
/// index has no deletions, so the sums are exact).
fn read_gram_stats(
    searcher: &Searcher,
    field: Field,
    num_docs: u64,
    path: Option<&Path>,
) -> Result<GramMap<GramStats>> {
    let mut doc_freq: GramMap<u32> = GramMap::default();
    for segment in searcher.segment_readers() {
        let inverted = segment
            .inverted_index(field)
            .map_err(|e| read_error(path, "open 3-gram postings", e))?;
        let mut stream = inverted
            .terms()
            .stream()
            .map_err(|e| read_error(path, "read 3-gram terms", e.into()))?;
        while stream.advance() {
            let gram = std::str::from_utf8(stream.key())
                .ok()
                .and_then(|s| {
                    let mut chars = s.chars();
                    match (chars.next(), chars.next(), chars.next(), chars.next()) {
                        (Some(a), Some(b), Some(c), None) => Some(pack(a, b, c)),
                        _ => None,
                    }
                })
                .ok_or_else(|| {
                    corrupt(
                        path,
                        format!("3-gram field holds the term {:?}", stream.key()),
                    )
                })?;
            *doc_freq.entry(gram).or_insert(0) += stream.value().doc_freq;
        }
    }
    Ok(doc_freq
        .into_iter()
        .map(|(g, df)| {
            let stats = GramStats {
                df,
                idf: idf(num_docs, u64::from(df)),
            };
            (g, stats)
        })
        .collect())
}

/// Every document's name id and name, in document order.
fn read_names(searcher: &Searcher, fields: Fields, path: Option<&Path>) -> Result<Names> {
    let capacity = usize::try_from(searcher.num_docs()).unwrap_or(0);
    let mut names = Names {
        segment_base: Vec::with_capacity(searcher.segment_readers().len()),
        ids: Vec::with_capacity(capacity),
        ends: Vec::with_capacity(capacity),
        text: String::new(),
    };
    for segment in searcher.segment_readers() {
        if segment.has_deletes() {
            // Rows are addressed by document id; a deletion would shift nothing but leave a
            // hole, and the index is never written to after its build.
            return Err(corrupt(
                path,
                "lexical index has deleted documents".to_string(),
            ));
        }
        names.segment_base.push(names.ids.len());
        let store = segment
            .get_store_reader(1)
            .map_err(|e| read_error(path, "open stored names", e.into()))?;
        for doc in store.iter::<TantivyDocument>(None) {
            let doc = doc.map_err(|e| read_error(path, "read stored names", e))?;
            let id = doc.get_first(fields.name_id).and_then(|v| v.as_u64());
            let name = doc.get_first(fields.name).and_then(|v| v.as_str());
            match (id.map(NameIdx::try_from), name) {
                (Some(Ok(id)), Some(name)) => {
                    names.ids.push(id);
                    names.text.push_str(name);
                    names.ends.push(names.text.len());
                }
                _ => {
                    return Err(corrupt(
                        path,
                        format!("document {} lacks a valid name id or name", names.ids.len()),
                    ))
                }
            }
        }
    }
    Ok(names)
}

fn corrupt(path: Option<&Path>, comment: String) -> Error {
    match path {
        Some(path) => Error::DataCorruption {
            path: path.to_path_buf(),
            comment,
        },
        None => Error::Internal(format!("in-RAM lexical index: {comment}")),
    }
}

/// Maps a tantivy error while reading an index: I/O failures name the path; anything else
/// means the files are damaged (or, in RAM, a bug).
fn read_error(path: Option<&Path>, what: &str, e: TantivyError) -> Error {
    match (path, &e) {
        (Some(path), TantivyError::IoError(io)) => Error::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(io.kind(), format!("lexical index: {what}: {io}")),
        },
        (Some(_), _) => corrupt(path, format!("lexical index: {what}: {e}")),
        (None, _) => Error::Internal(format!("in-RAM lexical index: {what}: {e}")),
    }
}

/// Maps a tantivy error while building an index: I/O failures name the path; anything else is a
/// bug, reported with what was being done.
fn tantivy_error(path: Option<&Path>, what: &str, e: TantivyError) -> Error {
    match (path, &e) {
        (Some(path), TantivyError::IoError(io)) => Error::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(io.kind(), format!("lexical index: {what}: {io}")),
        },
        (Some(path), _) => {
            Error::Internal(format!("lexical index {}: {what}: {e}", path.display()))
        }
        (None, _) => Error::Internal(format!("in-RAM lexical index: {what}: {e}")),
    }
}
