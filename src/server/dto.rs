//! Request and response bodies of the HTTP API. The OpenAPI document is generated from these
//! types (utoipa), so a field added here shows up in `/openapi.json` without further work.
//!
//! Requests reject unknown fields: a misspelt option (`"kk": 5`) is a 422, not silently ignored.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The error shape of every non-2xx answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorBody,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `bad_json`, `invalid_request`, `unknown_index`,
    /// `too_many_mentions`, `payload_too_large`, `unauthorized`, `too_many_requests`,
    /// `overloaded`, `timeout`, `not_ready`.
    #[schema(example = "invalid_request")]
    pub code: String,
    /// What went wrong, for people. Never quotes mention text.
    pub message: String,
}

/// One mention to link.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MentionInput {
    /// Echoed back in the result; any JSON value.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub id: Option<serde_json::Value>,
    /// The mention text, e.g. `big head`.
    #[serde(alias = "text")]
    #[schema(example = "big head")]
    pub mention: String,
    /// Text around the mention: short forms defined there ("WD" after "Wilson disease (WD)")
    /// are linked by their long forms, the whole mention or words of it.
    #[serde(default)]
    pub context: Option<String>,
}

/// `POST /v1/link`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// Mentions to link (1..=max mentions per request), answered in order.
    pub mentions: Vec<MentionInput>,
    /// Concepts per mention (1..=100).
    #[serde(default)]
    #[schema(example = 5)]
    pub k: Option<usize>,
    /// Index name; default: the server's default index.
    #[serde(default)]
    pub index: Option<String>,
    /// `hybrid` (default), `dense` or `lexical`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Weight of the dense score in hybrid mode (0..=1, default 0.6).
    #[serde(default)]
    pub alpha: Option<f32>,
    /// Keep only concepts of these sources (e.g. `HPO`).
    #[serde(default, alias = "source")]
    pub sources: Vec<String>,
    /// Keep only concepts of these types.
    #[serde(default, alias = "type")]
    pub types: Vec<String>,
}

/// One ranked concept, shaped as `medlink link` prints it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CandidateDto {
    #[schema(example = "HP:0000256")]
    pub id: String,
    #[schema(example = "Macrocephaly")]
    pub name: String,
    pub score: f32,
    /// The concept's name or synonym that scored best.
    pub matched_name: String,
    /// Cosine similarity of mention and matched name (absent in lexical mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dense: Option<f32>,
    /// Character-trigram similarity (absent in dense mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lexical: Option<f32>,
    pub exact: bool,
    pub bonus: f32,
    pub source: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    /// The index's re-ranker's probability for this concept among the list, when the index has
    /// one (`medlink train reranker`): candidates are then in this order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerank: Option<f32>,
}

impl From<crate::linker::Candidate> for CandidateDto {
    fn from(c: crate::linker::Candidate) -> Self {
        CandidateDto {
            id: c.id,
            name: c.name,
            score: c.score,
            matched_name: c.matched_name,
            dense: c.dense,
            lexical: c.lexical,
            exact: c.exact,
            bonus: c.bonus,
            source: c.source,
            types: c.types,
            rerank: c.rerank,
        }
    }
}

/// The answer for one mention: candidates, or an error for this mention alone.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LinkResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub id: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidates: Option<Vec<CandidateDto>>,
    /// The text actually linked, when short forms of the mention were expanded from `context`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linked_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expanded_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LinkResponse {
    /// The index that answered.
    pub index: String,
    /// One entry per mention, in request order.
    pub results: Vec<LinkResult>,
}

/// `GET /v1/search` query parameters. `source` and `type` may be repeated.
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// The text to look up.
    pub q: String,
    /// Concepts to return (1..=100, default 10).
    pub k: Option<usize>,
    /// Index name; default: the server's default index.
    pub index: Option<String>,
    /// `hybrid` (default), `dense` or `lexical`.
    pub mode: Option<String>,
    /// Keep only concepts of this source; repeat for several.
    pub source: Vec<String>,
    /// Keep only concepts of this type; repeat for several.
    #[param(rename = "type")]
    pub types: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SearchResponse {
    pub index: String,
    pub query: String,
    pub candidates: Vec<CandidateDto>,
}

/// A concept named by id, with its name for display.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConceptRef {
    pub id: String,
    /// Empty when the id is not in the index (a parent from another ontology).
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SynonymDto {
    pub text: String,
    /// exact, related, broad, narrow, abbreviation, fully_specified_name or unspecified.
    pub kind: String,
}

/// `GET /v1/concepts/{id}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConceptResponse {
    pub index: String,
    #[schema(example = "HP:0000256")]
    pub id: String,
    pub name: String,
    pub source: String,
    pub synonyms: Vec<SynonymDto>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<String>,
    pub types: Vec<String>,
    /// Direct is-a parents.
    pub parents: Vec<ConceptRef>,
    /// Direct is-a children (parents inverted at load).
    pub children: Vec<ConceptRef>,
    /// Cross-references to other terminologies (UMLS, SNOMED CT, MeSH...).
    pub xrefs: Vec<String>,
    /// Secondary ids that also resolve to this concept.
    pub alt_ids: Vec<String>,
    pub obsolete: bool,
    pub replaced_by: Vec<String>,
}

/// `GET /v1/concepts/{id}` query parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConceptParams {
    /// Index name; default: the server's default index.
    pub index: Option<String>,
}

/// One served index, for clients (the web page's index and filter menus).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IndexInfo {
    pub name: String,
    pub default: bool,
    pub model: String,
    pub concepts: usize,
    pub names: usize,
    /// Source names, for the `source` filter.
    pub sources: Vec<String>,
    /// The most frequent concept types (at most 50), for the `type` filter.
    pub types: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IndexesResponse {
    pub indexes: Vec<IndexInfo>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthResponse {
    /// `ok`, or `loading` on `/readyz` before the indexes are open.
    pub status: String,
}

/// `POST /v1/annotate`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnnotateRequest {
    /// Documents to annotate (1..=max mentions per request), answered in order.
    #[schema(example = json!(["The boy had a big head and recurrent seizures."]))]
    pub texts: Vec<String>,
    /// Concepts per mention (1..=100, default 10).
    #[serde(default)]
    pub k: Option<usize>,
    /// Index name; default: the server's default index.
    #[serde(default)]
    pub index: Option<String>,
    /// `hybrid` (default), `dense` or `lexical`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Weight of the dense score in hybrid mode (0..=1, default 0.6).
    #[serde(default)]
    pub alpha: Option<f32>,
    /// Link only against concepts of these sources.
    #[serde(default, alias = "source")]
    pub sources: Vec<String>,
    /// Link only against concepts of these types [default: the index's annotate types; the
    /// default HPO index: `Phenotypic abnormality`].
    #[serde(default, alias = "type")]
    pub types: Vec<String>,
    /// Use abbreviations defined in the text (default true).
    #[serde(default)]
    pub abbreviations: Option<bool>,
    /// `encoder` (default): every mention ranked by the model and the lexical index, the
    /// concepts a dictionary match names first. `dictionary`: a dictionary match keeps only
    /// the concepts it matched, ranked lexically; no model runs (the fastest).
    #[serde(default)]
    #[schema(example = "encoder")]
    pub linking: Option<String>,
}

/// One mention found in a text, with its ranked concepts.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AnnotatedMention {
    /// Character offsets (Unicode scalar values) into the text, end exclusive.
    pub start: usize,
    pub end: usize,
    pub text: String,
    /// Entity type: the detector's label (the matched concept's source for the dictionary).
    #[serde(rename = "type")]
    pub entity_type: String,
    /// Detector confidence (1 for dictionary matches).
    pub score: f32,
    /// The text the mention was linked by, when short forms in it are defined in the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linked_text: Option<String>,
    pub candidates: Vec<CandidateDto>,
}

impl From<crate::ner::annotate::LinkedMention> for AnnotatedMention {
    fn from(m: crate::ner::annotate::LinkedMention) -> Self {
        AnnotatedMention {
            start: m.start,
            end: m.end,
            text: m.text,
            entity_type: m.entity_type,
            score: m.score,
            linked_text: m.linked_text,
            candidates: m.candidates.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AnnotatedText {
    /// Mentions sorted by start.
    pub mentions: Vec<AnnotatedMention>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AnnotateResponse {
    pub index: String,
    /// One entry per text, in request order.
    pub results: Vec<AnnotatedText>,
}
