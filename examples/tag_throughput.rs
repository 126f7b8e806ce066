//! Tags texts (one per line) with a token-classification model directory and reports
//! throughput as JSON on stdout; `benches/python/tagger_reference.py` runs it beside the
//! transformers pipeline on the same texts and model.
//!
//!     cargo run --release --example tag_throughput -- MODEL_DIR TEXTS.txt \
//!         [--threads N] [--batch-size B] [--batch-tokens T] [--stride S] [--max-length L] [--entities OUT.jsonl]
//!
//! Tokens are counted as the model sees them: every token of every window, special tokens
//! included (what the pipeline's `input_ids` hold).

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use medlink::ner::aggregate::Strategy;
use medlink::ner::tagger::{Tagger, TaggerOptions};

fn main() -> anyhow::Result<()> {
    medlink::parallel::single_threaded_candle();
    let args: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(
        args.len() >= 2,
        "usage: tag_throughput MODEL_DIR TEXTS.txt [options]"
    );
    let (model, texts_path) = (PathBuf::from(&args[0]), PathBuf::from(&args[1]));
    let mut options = TaggerOptions::default();
    let mut entities_out = None;
    let mut rest = args[2..].iter();
    while let Some(flag) = rest.next() {
        let value = rest
            .next()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--threads" => options.threads = value.parse()?,
            "--batch-size" => options.batch_size = value.parse()?,
            "--batch-tokens" => options.batch_tokens = value.parse()?,
            "--stride" => options.stride = value.parse()?,
            "--max-length" => options.max_length = Some(value.parse()?),
            "--entities" => entities_out = Some(PathBuf::from(value)),
            _ => anyhow::bail!("unknown option {flag}"),
        }
    }
    let text = std::fs::read_to_string(&texts_path)?;
    let texts: Vec<&str> = text.lines().collect();
    let tagger = Tagger::load(&model, &options)?;
    let tokens: usize = texts
        .iter()
        .map(|t| {
            tagger
                .windows(t)
                .map(|w| w.iter().map(|e| e.len()).sum::<usize>())
        })
        .sum::<medlink::Result<usize>>()?;
    let started = Instant::now();
    let entities = tagger.tag_batch(&texts, Strategy::First)?;
    let seconds = started.elapsed().as_secs_f64();
    if let Some(path) = entities_out {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
        for e in &entities {
            writeln!(f, "{}", serde_json::to_string(e)?)?;
        }
    }
    println!(
        "{}",
        serde_json::json!({
            "texts": texts.len(),
            "tokens": tokens,
            "seconds": seconds,
            "tokens_per_second": tokens as f64 / seconds,
            "entities": entities.iter().map(Vec::len).sum::<usize>(),
            "threads": options.threads,
        })
    );
    Ok(())
}
