//! A bounded HTTP load generator for `medlink serve` and the Python reference service
//! (`benches/python/serve_benchmarks.py` drives both). Loopback only, fixed duration, fixed
//! connection count: each connection is one thread with one keep-alive HTTP/1.1 connection
//! sending single-mention `POST` requests back to back (closed loop), so the offered load is
//! what the server can answer. Prints one JSON line: requests, errors, p50/p99/max latency in
//! milliseconds and requests per second.
//!
//! ```text
//! cargo bench --bench serve_load -- --url http://127.0.0.1:8080/v1/link --connections 8 --seconds 60
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Phenotype phrases in the words of notes, not ontology names: the encoder and both indexes
/// do real work for each of them.
const MENTIONS: &[&str] = &[
    "big head",
    "seizures",
    "short stature",
    "low muscle tone",
    "heart murmur",
    "small jaw",
    "wide-set eyes",
    "hearing loss",
    "developmental delay",
    "frequent infections",
    "enlarged liver",
    "curved spine",
    "extra finger",
    "cleft palate",
    "kidney cysts",
    "poor feeding",
    "droopy eyelids",
    "flat feet",
    "speech delay",
    "joint hypermobility",
    "blue sclerae",
    "café-au-lait spots",
    "failure to thrive",
    "intellectual disability",
];

struct Args {
    host: String,
    path: String,
    connections: usize,
    seconds: f64,
    warmup: f64,
    k: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut url = None;
    let mut connections = 1;
    let mut seconds = 10.0;
    let mut warmup = 2.0;
    let mut k = 5;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--url" => url = Some(value("--url")?),
            "--connections" => {
                connections = value("--connections")?
                    .parse()
                    .map_err(|e| format!("{e}"))?
            }
            "--seconds" => seconds = value("--seconds")?.parse().map_err(|e| format!("{e}"))?,
            "--warmup" => warmup = value("--warmup")?.parse().map_err(|e| format!("{e}"))?,
            "-k" => k = value("-k")?.parse().map_err(|e| format!("{e}"))?,
            "--bench" => {} // cargo bench passes this to harness-less benches
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let url = url.ok_or("--url is required")?;
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are supported")?;
    let (host, path) = rest.split_once('/').ok_or("the URL needs a path")?;
    if !(host.starts_with("127.") || host.starts_with("localhost:") || host.starts_with("[::1]")) {
        return Err(format!("refusing to load {host}: loopback addresses only"));
    }
    if !(1..=256).contains(&connections) || !(0.5..=600.0).contains(&seconds) {
        return Err("connections must be 1..=256 and seconds 0.5..=600".into());
    }
    Ok(Args {
        host: host.to_string(),
        path: format!("/{path}"),
        connections,
        seconds,
        warmup,
        k,
    })
}

/// Sends one request on `stream` and reads the answer; returns the status.
fn exchange(
    reader: &mut BufReader<TcpStream>,
    host: &str,
    path: &str,
    body: &str,
) -> std::io::Result<u16> {
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    reader.get_mut().write_all(request.as_bytes())?;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status: u16 = line
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut length = None;
    let mut chunked = false;
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let lower = trimmed.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim(), 16).map_err(std::io::Error::other)?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
        }
    } else {
        let mut body = vec![0; length.unwrap_or(0)];
        reader.read_exact(&mut body)?;
    }
    Ok(status)
}

fn connection(
    args: &Args,
    id: usize,
    start: Instant,
    warm_end: Instant,
    end: Instant,
) -> (Vec<u32>, u64) {
    let mut latencies = Vec::new();
    let mut errors = 0u64;
    let connect = || -> std::io::Result<BufReader<TcpStream>> {
        let s = TcpStream::connect(&args.host)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(BufReader::new(s))
    };
    let mut reader = match connect() {
        Ok(r) => r,
        Err(_) => return (latencies, 1),
    };
    let _ = start;
    let mut i = id * 7;
    while Instant::now() < end {
        let mention = MENTIONS[i % MENTIONS.len()];
        i += 1;
        let body = format!(
            r#"{{"mentions": [{{"mention": "{mention}"}}], "k": {}}}"#,
            args.k
        );
        let sent = Instant::now();
        let result = exchange(&mut reader, &args.host, &args.path, &body);
        let micros = sent.elapsed().as_micros().min(u32::MAX as u128) as u32;
        let counted = sent >= warm_end;
        match result {
            Ok(200) => {
                if counted {
                    latencies.push(micros);
                }
            }
            Ok(_) => {
                if counted {
                    errors += 1;
                }
            }
            Err(_) => {
                if counted {
                    errors += 1;
                }
                match connect() {
                    Ok(r) => reader = r,
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }
    }
    (latencies, errors)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("serve_load: {e}");
            std::process::exit(2);
        }
    };
    let start = Instant::now();
    let warm_end = start + Duration::from_secs_f64(args.warmup);
    let end = warm_end + Duration::from_secs_f64(args.seconds);
    let results: Vec<(Vec<u32>, u64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..args.connections)
            .map(|id| {
                let args = &args;
                scope.spawn(move || connection(args, id, start, warm_end, end))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut all: Vec<u32> = results
        .iter()
        .flat_map(|(l, _)| l.iter().copied())
        .collect();
    let errors: u64 = results.iter().map(|(_, e)| e).sum();
    all.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return f64::NAN;
        }
        let i = ((p * all.len() as f64).ceil() as usize).clamp(1, all.len()) - 1;
        all[i] as f64 / 1000.0
    };
    println!(
        "{{\"connections\": {}, \"seconds\": {}, \"requests\": {}, \"errors\": {}, \"p50_ms\": {:.2}, \"p99_ms\": {:.2}, \"max_ms\": {:.2}, \"rps\": {:.1}}}",
        args.connections,
        args.seconds,
        all.len(),
        errors,
        pct(0.50),
        pct(0.99),
        all.last().map_or(f64::NAN, |&m| m as f64 / 1000.0),
        all.len() as f64 / args.seconds
    );
}
