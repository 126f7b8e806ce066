//! The batching queue in front of the encoder (TEI's `core/src/queue.rs` design, reduced).
//!
//! Encoding never runs on the async runtime. Requests are admitted by [`EncoderQueue::admit`],
//! which takes one permit per mention from a fixed pool — the queue's capacity — and fails at
//! once when the pool is empty: the handler answers 503 with `Retry-After` instead of letting
//! work pile up. Admitted work runs on a blocking thread, where the linker calls
//! [`QueuedEncoder::encode`]; that sends the texts to the queue and waits. Encoder worker
//! threads take every job waiting, up to `max_batch` texts, encode them as one length-sorted
//! batch and hand each job its vectors. Concurrent single-mention requests are therefore
//! encoded together, and a request with several texts is sent as one job per worker (at most
//! `max_batch` texts each), which the workers encode side by side.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::metrics::Metrics;
use crate::encoder::{Encoder, ModelIdentity};
use crate::error::{Error, Result};

struct Job {
    texts: Vec<String>,
    reply: mpsc::SyncSender<Result<Vec<Vec<f32>>>>,
}

/// Mentions admitted to the queue; the permits go back when this is dropped (after the
/// request's blocking work is done, whether or not the client still waits for it).
pub struct Admission {
    _permits: OwnedSemaphorePermit,
    mentions: i64,
    metrics: Arc<Metrics>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.metrics.queue_add(-self.mentions);
    }
}

/// The queue and its worker threads for one model.
pub struct EncoderQueue {
    /// `Sender` is `Sync`: blocking threads send without a lock.
    sender: Sender<Job>,
    permits: Arc<Semaphore>,
    capacity: usize,
    max_batch: usize,
    workers: usize,
    identity: ModelIdentity,
    dim: usize,
    metrics: Arc<Metrics>,
}

impl EncoderQueue {
    /// Starts `workers` threads encoding with `encoder`, merging up to `max_batch` texts.
    pub fn start(
        encoder: &'static dyn Encoder,
        capacity: usize,
        max_batch: usize,
        workers: usize,
        metrics: Arc<Metrics>,
    ) -> Result<Self> {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for i in 0..workers.max(1) {
            let receiver = Arc::clone(&receiver);
            let metrics = Arc::clone(&metrics);
            std::thread::Builder::new()
                .name(format!("medlink-encoder-{i}"))
                .spawn(move || worker(encoder, &receiver, max_batch.max(1), &metrics))
                .map_err(|e| Error::Internal(format!("cannot start an encoder thread: {e}")))?;
        }
        Ok(EncoderQueue {
            sender,
            permits: Arc::new(Semaphore::new(capacity)),
            capacity,
            max_batch: max_batch.max(1),
            workers: workers.max(1),
            identity: encoder.identity().clone(),
            dim: encoder.dim(),
            metrics,
        })
    }

    /// Takes room for `mentions` texts, or `None` when the queue is full.
    pub fn admit(&self, mentions: usize) -> Option<Admission> {
        let n = u32::try_from(mentions.max(1)).ok()?;
        if mentions > self.capacity {
            return None;
        }
        let permits = Arc::clone(&self.permits).try_acquire_many_owned(n).ok()?;
        self.metrics.queue_add(n as i64);
        Some(Admission {
            _permits: permits,
            mentions: n as i64,
            metrics: Arc::clone(&self.metrics),
        })
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// An [`Encoder`] whose `encode` goes through the queue: what the linkers of a server hold.
/// Blocking: call it only from a blocking thread (the handlers use `spawn_blocking`).
pub struct QueuedEncoder(pub Arc<EncoderQueue>);

impl Encoder for QueuedEncoder {
    fn dim(&self) -> usize {
        self.0.dim
    }

    fn identity(&self) -> &ModelIdentity {
        &self.0.identity
    }

    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        // A request is cut into one part per worker (at most a batch each), so an idle server
        // encodes it on every worker; similar lengths share a part, so the parts pad little.
        // All parts are queued before any answer is awaited.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let part = texts
            .len()
            .div_ceil(self.0.workers)
            .clamp(1, self.0.max_batch);
        let parts: Vec<&[usize]> = order.chunks(part).collect();
        let mut answers = Vec::with_capacity(parts.len());
        for part in &parts {
            let (reply, answer) = mpsc::sync_channel(1);
            let job = Job {
                texts: part.iter().map(|&i| texts[i].to_string()).collect(),
                reply,
            };
            self.0
                .sender
                .send(job)
                .map_err(|_| Error::Internal("the encoder workers have stopped".into()))?;
            answers.push(answer);
        }
        let mut vectors = vec![Vec::new(); texts.len()];
        for (part, answer) in parts.into_iter().zip(answers) {
            let got = answer
                .recv()
                .map_err(|_| Error::Internal("an encoder worker stopped mid-batch".into()))??;
            for (&i, vector) in part.iter().zip(got) {
                vectors[i] = vector;
            }
        }
        Ok(vectors)
    }
}

fn worker(
    encoder: &'static dyn Encoder,
    receiver: &Mutex<Receiver<Job>>,
    max_batch: usize,
    metrics: &Metrics,
) {
    loop {
        // Hold the receiver only while collecting a batch, so with several workers one
        // encodes while the next collects.
        let jobs = {
            let Ok(rx) = receiver.lock() else { return };
            let Ok(first) = rx.recv() else { return };
            let mut size = first.texts.len();
            let mut jobs = vec![first];
            while size < max_batch {
                match rx.try_recv() {
                    Ok(job) => {
                        size += job.texts.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            jobs
        };
        let texts: Vec<&str> = jobs
            .iter()
            .flat_map(|j| j.texts.iter().map(String::as_str))
            .collect();
        let started = Instant::now();
        // A panic in the model must not kill the worker and strand every later request.
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| encoder.encode(&texts)))
                .unwrap_or_else(|_| Err(Error::Internal("the encoder panicked".into())));
        metrics.observe_batch(texts.len(), started.elapsed().as_secs_f64());
        match result {
            Ok(vectors) if vectors.len() == texts.len() => {
                let mut vectors = vectors.into_iter();
                for job in jobs {
                    let mine: Vec<Vec<f32>> = vectors.by_ref().take(job.texts.len()).collect();
                    // The requester may have timed out and gone: nothing to do then.
                    let _ = job.reply.send(Ok(mine));
                }
            }
            Ok(vectors) => {
                let message = format!(
                    "the encoder returned {} vectors for {} texts",
                    vectors.len(),
                    texts.len()
                );
                for job in jobs {
                    let _ = job.reply.send(Err(Error::Internal(message.clone())));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for job in jobs {
                    let _ = job.reply.send(Err(Error::Model(message.clone())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoder::Pooling;

    /// Encodes each text as `[its number]` and records the batches it was given.
    struct Recording {
        identity: ModelIdentity,
        batches: Mutex<Vec<Vec<String>>>,
    }

    impl Encoder for Recording {
        fn dim(&self) -> usize {
            1
        }

        fn identity(&self) -> &ModelIdentity {
            &self.identity
        }

        fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
            let batch = texts.iter().map(|t| t.to_string()).collect();
            self.batches.lock().unwrap().push(batch);
            Ok(texts.iter().map(|t| vec![t.parse().unwrap()]).collect())
        }
    }

    #[test]
    fn a_request_larger_than_a_batch_is_split_and_answered_in_order() {
        let encoder: &'static Recording = Box::leak(Box::new(Recording {
            identity: ModelIdentity {
                name: "recording".into(),
                pooling: Pooling::Mean,
                dim: 1,
                max_length: 8,
                weights_sha256: String::new(),
                int8: false,
            },
            batches: Mutex::new(Vec::new()),
        }));
        let queue = EncoderQueue::start(encoder, 100, 4, 2, Arc::new(Metrics::default())).unwrap();
        let queued = QueuedEncoder(Arc::new(queue));
        // Longest first: the parts are cut by length, the answer keeps the request's order.
        let numbers: Vec<u64> = (0..10).map(|i| 10u64.pow(9 - i)).collect();
        let texts: Vec<String> = numbers.iter().map(u64::to_string).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vectors = queued.encode(&refs).unwrap();
        let expected: Vec<Vec<f32>> = numbers.iter().map(|&n| vec![n as f32]).collect();
        assert_eq!(vectors, expected);
        // Parts of at most 4 texts, each of texts as long as one another: the 4 shortest, the
        // next 4, the 2 longest.
        let mut batches = encoder.batches.lock().unwrap().clone();
        batches.sort();
        let mut expected_parts: Vec<Vec<String>> = vec![
            texts[6..].to_vec(),
            texts[2..6].to_vec(),
            texts[..2].to_vec(),
        ];
        for part in &mut expected_parts {
            part.sort();
        }
        for batch in &mut batches {
            batch.sort();
        }
        expected_parts.sort();
        assert_eq!(batches, expected_parts);
        assert!(queued.encode(&[]).unwrap().is_empty());
    }
}
