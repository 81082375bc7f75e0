//! The runner every hostile-device fuzz harness shares (the driver crates include this file
//! with `#[path]`): a corpus kept in the repository is replayed first, then random inputs
//! from a fixed seed.
//!
//! Every harness takes its input as bytes and decodes them into device behaviour, so the
//! corpus (`tests/fuzz_corpus/<target>/*.hex`: hex digits, whitespace and `#` comments) and
//! the random cases go through the same code. Deterministic: the seed is fixed per target
//! (`USERPCI_FUZZ_SEED` changes it), and `USERPCI_FUZZ_CASES` sets the number of random
//! cases (the default keeps CI short). A failure panics with the input, shrunk, as hex: put
//! it in the corpus with the fix.

#![allow(dead_code)]

use std::path::Path;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};

/// Random cases per target: `USERPCI_FUZZ_CASES`, else `default`.
pub fn cases(default: u32) -> u32 {
    match std::env::var("USERPCI_FUZZ_CASES") {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("USERPCI_FUZZ_CASES={text:?}: expected a number")),
        Err(_) => default,
    }
}

/// The seed of `target`: FNV-1a of its name, or of `USERPCI_FUZZ_SEED` and the name.
fn seed(target: &str) -> [u8; 32] {
    let extra = std::env::var("USERPCI_FUZZ_SEED").unwrap_or_default();
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut out = [0u8; 32];
    for (i, b) in extra.bytes().chain(target.bytes()).chain(0..32).enumerate() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        out[i % 32] ^= (hash >> 32) as u8;
    }
    out
}

/// Decodes a corpus file: hex digit pairs; whitespace and `#` comments ignored.
pub fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text
        .lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .flat_map(|line| line.bytes().filter(|b| !b.is_ascii_whitespace()))
        .collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("{} hex digits, not pairs", digits.len()));
    }
    digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).map_err(|e| e.to_string())?;
            u8::from_str_radix(pair, 16).map_err(|_| format!("{pair:?} is not a hex byte"))
        })
        .collect()
}

/// The corpus of `target` under `dir`, sorted by file name.
pub fn corpus(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "hex"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let bytes =
                decode_hex(&text).unwrap_or_else(|e| panic!("corpus {}: {e}", path.display()));
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                bytes,
            )
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Replays the corpus in `corpus_dir` through `check`, then `cases(default_cases)` random
/// inputs of up to `max_len` bytes. Panics on the first failure (a panic inside `check`
/// counts), naming the input. Returns the number of inputs run.
pub fn run(
    target: &str,
    corpus_dir: &Path,
    default_cases: u32,
    max_len: usize,
    check: impl Fn(&[u8]) -> Result<(), TestCaseError>,
) -> u64 {
    let corpus = corpus(corpus_dir);
    assert!(
        !corpus.is_empty(),
        "{target}: empty corpus in {}",
        corpus_dir.display()
    );
    for (name, bytes) in &corpus {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(bytes)));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{target}: corpus {name} fails: {e}"),
            Err(_) => panic!("{target}: corpus {name} panicked"),
        }
    }
    let cases = cases(default_cases);
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 512,
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed(target));
    let mut runner = TestRunner::new_with_rng(config, rng);
    match runner.run(&vec(any::<u8>(), 0..max_len), |bytes| check(&bytes)) {
        Ok(()) => {}
        Err(TestError::Fail(reason, bytes)) => {
            panic!(
                "{target}: {reason}\nminimal input (add to the corpus): {}",
                hex(&bytes)
            )
        }
        Err(TestError::Abort(reason)) => panic!("{target}: aborted: {reason}"),
    }
    let total = corpus.len() as u64 + u64::from(cases);
    eprintln!(
        "fuzz {target}: {} corpus inputs, {cases} random cases: 0 failures",
        corpus.len()
    );
    total
}

/// A cursor over the input bytes; reads past the end give zeroes, so every input decodes.
pub struct Bytes<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data, at: 0 }
    }

    /// True when every byte was consumed.
    pub fn is_empty(&self) -> bool {
        self.at >= self.data.len()
    }

    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        std::array::from_fn(|_| self.u8())
    }

    /// Up to `n` of the remaining bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let start = self.at.min(self.data.len());
        let end = start.saturating_add(n).min(self.data.len());
        self.at = end;
        &self.data[start..end]
    }
}
