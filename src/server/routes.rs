//! The handlers: parse and validate, pick the index, run the linker on a blocking thread,
//! shape the answer. Every failure is an [`ApiError`].

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;

use super::dto::*;
use super::error::{parse_json, ApiError};
use super::state::{AppState, Indexes, ServedIndex};
use crate::linker::{mention_problem, LinkOptions, Mode};

/// The web page, embedded at compile time: no build step, no files to deploy.
const PAGE: &str = include_str!("page/index.html");

/// Body bytes, with axum's rejections turned into the API's error shape.
fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(
                "payload_too_large",
                "the request body is larger than the server's limit (--max-body-bytes)",
            )
        } else {
            ApiError::bad_json(format!("cannot read the request body: {rejection}"))
        }
    })
}

pub(super) fn indexes(state: &AppState) -> Result<&Indexes, ApiError> {
    state.indexes.get().ok_or_else(|| {
        ApiError::unavailable(
            "not_ready",
            "the indexes are still loading; retry shortly",
            5,
        )
    })
}

fn pick(indexes: &Indexes, name: Option<&str>) -> Result<&'static ServedIndex, ApiError> {
    indexes.get(name).ok_or_else(|| {
        ApiError::not_found(
            "unknown_index",
            format!(
                "no index named `{}` (served: {})",
                name.unwrap_or_default(),
                indexes
                    .by_name
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })
}

fn link_options(
    k: Option<usize>,
    mode: Option<&str>,
    alpha: Option<f32>,
    sources: Vec<String>,
    types: Vec<String>,
) -> Result<LinkOptions, ApiError> {
    let defaults = LinkOptions::default();
    let options = LinkOptions {
        k: k.unwrap_or(defaults.k),
        mode: match mode {
            Some(m) => m.parse::<Mode>()?,
            None => defaults.mode,
        },
        alpha,
        sources,
        types,
        ..defaults
    };
    options.validate()?;
    Ok(options)
}

/// Runs `work` on a blocking thread holding `mentions` places in the encoder queue; a full
/// queue is a 503 with `Retry-After`, answered before any work starts. The work starts when
/// one of the [`Limits::max_active`](super::Limits) slots is free, in arrival order. The
/// places go back when the work ends, even if the client has gone (a timeout drops only the
/// waiting).
async fn run_blocking<T: Send + 'static>(
    state: &AppState,
    served: &'static ServedIndex,
    mentions: usize,
    work: impl FnOnce(&'static ServedIndex) -> crate::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let admission = served.queue.admit(mentions).ok_or_else(|| {
        state.metrics.reject("queue_full");
        ApiError::unavailable(
            "overloaded",
            format!(
                "the encoder queue is full (room for {} mentions); retry shortly",
                served.queue.capacity()
            ),
            1,
        )
    })?;
    let slot = std::sync::Arc::clone(&state.active)
        .acquire_owned()
        .await
        .map_err(|_| ApiError::internal("the server is shutting down"))?;
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let _admission = admission;
        work(served)
    })
    .await
    .map_err(|e| ApiError::internal(format!("the linker task failed: {e}")))?
    .map_err(ApiError::from)
}

/// Link mentions to concepts.
#[utoipa::path(
    post,
    path = "/v1/link",
    request_body = LinkRequest,
    responses(
        (status = 200, description = "One result per mention, in order; a bad mention gets its own error entry", body = LinkResponse),
        (status = 400, description = "Malformed JSON", body = ErrorResponse),
        (status = 401, description = "Missing or wrong API key", body = ErrorResponse),
        (status = 404, description = "Unknown index", body = ErrorResponse),
        (status = 413, description = "Body too large or too many mentions", body = ErrorResponse),
        (status = 422, description = "Wrong types, empty batch, k out of range, bad filter", body = ErrorResponse),
        (status = 429, description = "Too many concurrent requests", body = ErrorResponse),
        (status = 503, description = "Queue full, timeout or not ready (Retry-After)", body = ErrorResponse),
    ),
    security(("api_key" = [])),
    tag = "linking"
)]
pub async fn link(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<LinkResponse>, ApiError> {
    let body = body_bytes(body)?;
    let request: LinkRequest = parse_json(&body)?;
    let limits = &state.config.limits;
    if request.mentions.is_empty() {
        return Err(ApiError::invalid("`mentions` is empty: send at least one"));
    }
    if request.mentions.len() > limits.max_mentions {
        state.metrics.reject("too_many_mentions");
        return Err(ApiError::too_large(
            "too_many_mentions",
            format!(
                "{} mentions in one request; the limit is {}",
                request.mentions.len(),
                limits.max_mentions
            ),
        ));
    }
    let served = pick(indexes(&state)?, request.index.as_deref())?;
    let options = link_options(
        request.k,
        request.mode.as_deref(),
        request.alpha,
        request.sources,
        request.types,
    )?;

    // Validate each mention on its own: one bad mention gets an error entry, not a failed batch.
    enum Item {
        Link {
            id: Option<serde_json::Value>,
            text: String,
            expanded_from: Option<String>,
        },
        Refused {
            id: Option<serde_json::Value>,
            message: String,
        },
    }
    let items: Vec<Item> = request
        .mentions
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let chars = m.mention.chars().count();
            let problem = if chars > limits.max_mention_chars {
                Some(format!(
                    "is {chars} characters long; the limit is {}",
                    limits.max_mention_chars
                ))
            } else {
                mention_problem(&m.mention)
            };
            if let Some(problem) = problem {
                return Item::Refused {
                    id: m.id,
                    message: format!("mention {}: `mention` {problem}", i + 1),
                };
            }
            let context_chars = m.context.as_deref().map_or(0, |c| c.chars().count());
            if context_chars > limits.max_text_chars {
                return Item::Refused {
                    id: m.id,
                    message: format!(
                        "mention {}: `context` is {context_chars} characters long; the limit is {}",
                        i + 1,
                        limits.max_text_chars
                    ),
                };
            }
            let long = m.context.as_deref().and_then(|context| {
                let map = crate::eval::abbrev::expansion_map(context);
                crate::eval::abbrev::expand_mention(&map, &m.mention)
            });
            match long {
                Some(long) => Item::Link {
                    id: m.id,
                    text: long,
                    expanded_from: Some(m.mention),
                },
                None => Item::Link {
                    id: m.id,
                    text: m.mention,
                    expanded_from: None,
                },
            }
        })
        .collect();
    let texts: Vec<String> = items
        .iter()
        .filter_map(|item| match item {
            Item::Link { text, .. } => Some(text.clone()),
            Item::Refused { .. } => None,
        })
        .collect();
    let linked = if texts.is_empty() {
        Vec::new()
    } else {
        run_blocking(&state, served, texts.len(), move |served| {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            served.linker.link_batch(&refs, &options)
        })
        .await?
    };
    let mut linked = linked.into_iter();
    let results = items
        .into_iter()
        .map(|item| match item {
            Item::Link {
                id,
                text,
                expanded_from,
            } => LinkResult {
                id,
                candidates: Some(
                    linked
                        .next()
                        .unwrap_or_default()
                        .into_iter()
                        .map(Into::into)
                        .collect(),
                ),
                linked_text: expanded_from.as_ref().map(|_| text),
                expanded_from,
                error: None,
            },
            Item::Refused { id, message } => LinkResult {
                id,
                candidates: None,
                linked_text: None,
                expanded_from: None,
                error: Some(ErrorBody {
                    code: "invalid_mention".into(),
                    message,
                }),
            },
        })
        .collect();
    Ok(Json(LinkResponse {
        index: served.name.clone(),
        results,
    }))
}

/// Find mentions in texts and link them (the NER stage's dictionary matcher + the linker).
#[utoipa::path(
    post,
    path = "/v1/annotate",
    request_body = AnnotateRequest,
    responses(
        (status = 200, description = "Mentions with character offsets and candidates, one entry per text", body = AnnotateResponse),
        (status = 400, description = "Malformed JSON", body = ErrorResponse),
        (status = 401, description = "Missing or wrong API key", body = ErrorResponse),
        (status = 404, description = "Unknown index", body = ErrorResponse),
        (status = 413, description = "Body too large or too many texts", body = ErrorResponse),
        (status = 422, description = "Wrong types, no texts, a text too long, k out of range", body = ErrorResponse),
        (status = 429, description = "Too many concurrent requests", body = ErrorResponse),
        (status = 503, description = "Queue full, timeout or not ready (Retry-After)", body = ErrorResponse),
    ),
    security(("api_key" = [])),
    tag = "linking"
)]
pub async fn annotate(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AnnotateResponse>, ApiError> {
    use crate::ner::annotate::{AnnotateOptions, Annotator};
    let body = body_bytes(body)?;
    let request: AnnotateRequest = parse_json(&body)?;
    let limits = &state.config.limits;
    if request.texts.is_empty() {
        return Err(ApiError::invalid("`texts` is empty: send at least one"));
    }
    if request.texts.len() > limits.max_mentions {
        state.metrics.reject("too_many_texts");
        return Err(ApiError::too_large(
            "too_many_texts",
            format!(
                "{} texts in one request; the limit is {}",
                request.texts.len(),
                limits.max_mentions
            ),
        ));
    }
    for (i, text) in request.texts.iter().enumerate() {
        let chars = text.chars().count();
        if chars > limits.max_text_chars {
            return Err(ApiError::invalid(format!(
                "text {} is {chars} characters long; the limit is {}",
                i + 1,
                limits.max_text_chars
            )));
        }
    }
    let served = pick(indexes(&state)?, request.index.as_deref())?;
    let types = if request.types.is_empty() {
        served.annotate_types.clone()
    } else {
        request.types
    };
    let options = AnnotateOptions {
        link: link_options(
            request.k,
            request.mode.as_deref(),
            request.alpha,
            request.sources,
            types,
        )?,
        abbreviations: request.abbreviations.unwrap_or(true),
        linking: match request.linking.as_deref() {
            None => Default::default(),
            Some(linking) => linking
                .parse()
                .map_err(|e: crate::error::Error| ApiError::invalid(e.to_string()))?,
        },
        ..AnnotateOptions::default()
    };
    let texts = request.texts;
    // Queue room is taken per text: how many mentions a text holds is known only after
    // detection, which runs on the blocking thread.
    let annotated = run_blocking(&state, served, texts.len(), move |served| {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        Annotator::new(&served.matcher, &served.linker).annotate_batch(&refs, &options)
    })
    .await?;
    Ok(Json(AnnotateResponse {
        index: served.name.clone(),
        results: annotated
            .into_iter()
            .map(|mentions| AnnotatedText {
                mentions: mentions.into_iter().map(Into::into).collect(),
            })
            .collect(),
    }))
}

/// Parses `/v1/search`'s query string; `source` and `type` may repeat, so serde_urlencoded
/// reads pairs rather than a struct.
fn search_params(raw: Option<&str>) -> Result<SearchParams, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| ApiError::invalid(format!("malformed query string: {e}")))?;
    let mut params = SearchParams::default();
    let mut q = None;
    for (key, value) in pairs {
        let number = |v: &str| {
            v.parse::<usize>()
                .map_err(|_| ApiError::invalid(format!("`{key}` must be a whole number")))
        };
        match key.as_str() {
            "q" => q = Some(value),
            "k" => params.k = Some(number(&value)?),
            "index" => params.index = Some(value),
            "mode" => params.mode = Some(value),
            "source" => params.source.push(value),
            "type" => params.types.push(value),
            _ => {
                return Err(ApiError::invalid(format!(
                    "unknown query parameter `{key}` (expected q, k, index, mode, source, type)"
                )))
            }
        }
    }
    params.q = q.ok_or_else(|| ApiError::invalid("the query parameter `q` is missing"))?;
    Ok(params)
}

/// Search concepts for one query string (the web page's search-as-you-type).
#[utoipa::path(
    get,
    path = "/v1/search",
    params(SearchParams),
    responses(
        (status = 200, description = "Ranked concepts", body = SearchResponse),
        (status = 401, description = "Missing or wrong API key", body = ErrorResponse),
        (status = 404, description = "Unknown index", body = ErrorResponse),
        (status = 422, description = "Missing or empty q, k out of range, unknown parameter", body = ErrorResponse),
        (status = 429, description = "Too many concurrent requests", body = ErrorResponse),
        (status = 503, description = "Queue full, timeout or not ready (Retry-After)", body = ErrorResponse),
    ),
    security(("api_key" = [])),
    tag = "linking"
)]
pub async fn search(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<SearchResponse>, ApiError> {
    let params = search_params(raw.as_deref())?;
    let limits = &state.config.limits;
    let chars = params.q.chars().count();
    if chars > limits.max_mention_chars {
        return Err(ApiError::invalid(format!(
            "`q` is {chars} characters long; the limit is {}",
            limits.max_mention_chars
        )));
    }
    if let Some(problem) = mention_problem(&params.q) {
        return Err(ApiError::invalid(format!("`q` {problem}")));
    }
    let served = pick(indexes(&state)?, params.index.as_deref())?;
    let options = link_options(
        params.k,
        params.mode.as_deref(),
        None,
        params.source,
        params.types,
    )?;
    let query = params.q;
    let text = query.clone();
    let candidates = run_blocking(&state, served, 1, move |served| {
        served.linker.link(&text, &options)
    })
    .await?;
    Ok(Json(SearchResponse {
        index: served.name.clone(),
        query,
        candidates: candidates.into_iter().map(Into::into).collect(),
    }))
}

/// One concept: names, definition, types, parents and children, cross-references.
#[utoipa::path(
    get,
    path = "/v1/concepts/{id}",
    params(("id" = String, Path, description = "Concept id or secondary id, e.g. HP:0000256"), ConceptParams),
    responses(
        (status = 200, description = "The concept", body = ConceptResponse),
        (status = 401, description = "Missing or wrong API key", body = ErrorResponse),
        (status = 404, description = "Unknown concept or index", body = ErrorResponse),
        (status = 503, description = "Not ready (Retry-After)", body = ErrorResponse),
    ),
    security(("api_key" = [])),
    tag = "concepts"
)]
pub async fn concept(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<ConceptResponse>, ApiError> {
    let params: ConceptParams = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::invalid(format!("bad query string: {e}")))?;
    let served = pick(indexes(&state)?, params.index.as_deref())?;
    let dict = &served.index.dictionary;
    let idx = dict.lookup_id(&id).ok_or_else(|| {
        ApiError::not_found(
            "unknown_concept",
            format!("index `{}` has no concept with this id", served.name),
        )
    })?;
    let concept = dict.concept(idx);
    let reference = |id: &str| ConceptRef {
        id: id.to_string(),
        name: dict
            .lookup_id(id)
            .map(|c| dict.concept_name(c).to_string())
            .unwrap_or_default(),
    };
    let mut children: Vec<ConceptRef> = served
        .children
        .get(&idx)
        .map(|c| {
            c.iter()
                .map(|&i| ConceptRef {
                    id: dict.concept_id(i).to_string(),
                    name: dict.concept_name(i).to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    children.sort_by_key(|c| c.name.to_lowercase());
    Ok(Json(ConceptResponse {
        index: served.name.clone(),
        id: concept.id.clone(),
        name: concept.name.clone(),
        source: dict
            .concept_source(idx)
            .map(|s| s.name.clone())
            .unwrap_or_default(),
        synonyms: concept
            .synonyms
            .iter()
            .map(|s| SynonymDto {
                text: s.text.clone(),
                kind: s.kind.as_str().to_string(),
            })
            .collect(),
        definition: concept.definition.clone(),
        types: concept.types.clone(),
        parents: concept.parents.iter().map(|p| reference(p)).collect(),
        children,
        xrefs: concept.xrefs.clone(),
        alt_ids: concept.alt_ids.clone(),
        obsolete: concept.obsolete,
        replaced_by: concept.replaced_by.clone(),
    }))
}

/// The served indexes, their sources and most frequent types.
#[utoipa::path(
    get,
    path = "/v1/indexes",
    responses(
        (status = 200, description = "Served indexes", body = IndexesResponse),
        (status = 401, description = "Missing or wrong API key", body = ErrorResponse),
        (status = 503, description = "Not ready (Retry-After)", body = ErrorResponse),
    ),
    security(("api_key" = [])),
    tag = "concepts"
)]
pub async fn list_indexes(
    State(state): State<AppState>,
) -> Result<Json<IndexesResponse>, ApiError> {
    let indexes = indexes(&state)?;
    Ok(Json(IndexesResponse {
        indexes: indexes
            .by_name
            .values()
            .map(|served| {
                let manifest = &served.index.manifest;
                IndexInfo {
                    name: served.name.clone(),
                    default: served.name == indexes.default,
                    model: manifest.model.name.clone(),
                    concepts: manifest.counts.concepts,
                    names: manifest.counts.names,
                    sources: served
                        .index
                        .dictionary
                        .sources()
                        .iter()
                        .map(|s| s.name.clone())
                        .collect(),
                    types: served.types.iter().take(50).cloned().collect(),
                }
            })
            .collect(),
    }))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = HealthResponse)), tag = "operations")]
pub async fn healthz() -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "ok".into(),
    })
}

/// Readiness: the indexes are loaded.
#[utoipa::path(
    get,
    path = "/readyz",
    responses(
        (status = 200, body = HealthResponse),
        (status = 503, description = "Still loading", body = HealthResponse),
    ),
    tag = "operations"
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.indexes.get().is_some() {
        Json(HealthResponse {
            status: "ok".into(),
        })
        .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            Json(HealthResponse {
                status: "loading".into(),
            }),
        )
            .into_response()
    }
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")), tag = "operations")]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = state.metrics.render();
    if let Some(indexes) = state.indexes.get() {
        text.push_str("# HELP medlink_mention_cache_lookups_total Mention cache lookups by index and result.\n");
        text.push_str("# TYPE medlink_mention_cache_lookups_total counter\n");
        for (name, served) in &indexes.by_name {
            if let Some((hits, misses)) = served.linker.cache_stats() {
                text.push_str(&format!(
                    "medlink_mention_cache_lookups_total{{index=\"{name}\",result=\"hit\"}} {hits}\n\
                     medlink_mention_cache_lookups_total{{index=\"{name}\",result=\"miss\"}} {misses}\n"
                ));
            }
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "OpenAPI 3.1 document", body = Object)), tag = "operations")]
pub async fn openapi() -> Response {
    Json(super::openapi::document()).into_response()
}

/// The web page.
#[utoipa::path(get, path = "/", responses((status = 200, description = "The web page", body = String, content_type = "text/html")), tag = "operations")]
pub async fn page() -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-cache"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; img-src 'self' data:",
            ),
        ],
        Html(PAGE),
    )
        .into_response()
}

/// Anything else: a JSON 404 rather than an empty body.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no_route", "no such route; see /openapi.json")
}

/// A known route with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept this method; see /openapi.json",
    )
}
