//! Namespace storage: sparse memory (fixed-size chunks allocated on first write, never-written
//! blocks read as zeroes) or a file holding every namespace back to back.
//!
//! Reads and overwrites of allocated chunks never allocate: the data path hands out slices of
//! the chunks themselves, so DMA goes straight between guest memory and the store.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// Bytes per chunk of sparse memory (a multiple of both block sizes).
pub(super) const CHUNK: usize = 64 * 1024;

/// A source of zeroes for reads of unallocated chunks.
pub(super) static ZEROES: [u8; CHUNK] = [0; CHUNK];

enum Backing {
    Sparse(HashMap<u64, Box<[u8]>>),
    File { file: Arc<File>, base: u64 },
}

/// One namespace's blocks.
pub(super) struct Store {
    len: u64,
    backing: Backing,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.backing {
            Backing::Sparse(chunks) => format!("sparse, {} chunks", chunks.len()),
            Backing::File { base, .. } => format!("file at {base:#x}"),
        };
        f.debug_struct("Store")
            .field("len", &self.len)
            .field("backing", &kind)
            .finish()
    }
}

/// Splits `[offset, offset + len)` at chunk boundaries: `(chunk index, offset in chunk,
/// length)` for each piece.
fn pieces(offset: u64, len: u64) -> impl Iterator<Item = (u64, usize, usize)> {
    let mut at = offset;
    let end = offset + len;
    std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let index = at / CHUNK as u64;
        let within = (at % CHUNK as u64) as usize;
        let n = (CHUNK - within).min((end - at) as usize);
        at += n as u64;
        Some((index, within, n))
    })
}

impl Store {
    /// `len` bytes of sparse memory, all zero.
    pub(super) fn sparse(len: u64) -> Self {
        Store {
            len,
            backing: Backing::Sparse(HashMap::new()),
        }
    }

    /// `len` bytes of `file` from `base`.
    pub(super) fn file(file: Arc<File>, base: u64, len: u64) -> Self {
        Store {
            len,
            backing: Backing::File { file, base },
        }
    }

    /// Chunks of sparse memory allocated so far (0 for a file).
    pub(super) fn allocated_chunks(&self) -> usize {
        match &self.backing {
            Backing::Sparse(chunks) => chunks.len(),
            Backing::File { .. } => 0,
        }
    }

    fn check(&self, offset: u64, len: u64) -> io::Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "access beyond the namespace",
            )),
        }
    }

    /// Hands `[offset, offset + len)` to `sink` in pieces, in order: `sink(position in the
    /// range, bytes)`. `scratch` (at least one chunk) is used for file reads. Stops at the
    /// first error of `sink`, returning it as `Ok(Err(..))`; `Err` is a storage failure.
    pub(super) fn read_with<E>(
        &self,
        offset: u64,
        len: u64,
        scratch: &mut [u8],
        mut sink: impl FnMut(u64, &[u8]) -> Result<(), E>,
    ) -> io::Result<Result<(), E>> {
        self.check(offset, len)?;
        let mut done = 0u64;
        for (index, within, n) in pieces(offset, len) {
            let bytes: &[u8] = match &self.backing {
                Backing::Sparse(chunks) => match chunks.get(&index) {
                    Some(chunk) => &chunk[within..within + n],
                    None => &ZEROES[..n],
                },
                Backing::File { file, base } => {
                    let buf = &mut scratch[..n];
                    file.read_exact_at(buf, base + offset + done)?;
                    buf
                }
            };
            if let Err(e) = sink(done, bytes) {
                return Ok(Err(e));
            }
            done += n as u64;
        }
        Ok(Ok(()))
    }

    /// Fills `[offset, offset + len)` from `source(position in the range, destination)`, in
    /// order, allocating sparse chunks on first write. Stops at the first error of `source`
    /// (the pieces before it are written).
    pub(super) fn write_with<E>(
        &mut self,
        offset: u64,
        len: u64,
        scratch: &mut [u8],
        mut source: impl FnMut(u64, &mut [u8]) -> Result<(), E>,
    ) -> io::Result<Result<(), E>> {
        self.check(offset, len)?;
        let mut done = 0u64;
        for (index, within, n) in pieces(offset, len) {
            match &mut self.backing {
                Backing::Sparse(chunks) => {
                    let chunk = chunks
                        .entry(index)
                        .or_insert_with(|| vec![0u8; CHUNK].into_boxed_slice());
                    if let Err(e) = source(done, &mut chunk[within..within + n]) {
                        return Ok(Err(e));
                    }
                }
                Backing::File { file, base } => {
                    let buf = &mut scratch[..n];
                    if let Err(e) = source(done, buf) {
                        return Ok(Err(e));
                    }
                    file.write_all_at(buf, *base + offset + done)?;
                }
            }
            done += n as u64;
        }
        Ok(Ok(()))
    }

    /// Zeroes `[offset, offset + len)`: sparse chunks wholly covered are freed, partly covered
    /// ones cleared; nothing is allocated.
    pub(super) fn zero(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.check(offset, len)?;
        let mut done = 0u64;
        for (index, within, n) in pieces(offset, len) {
            match &mut self.backing {
                Backing::Sparse(chunks) => {
                    if n == CHUNK {
                        chunks.remove(&index);
                    } else if let Some(chunk) = chunks.get_mut(&index) {
                        chunk[within..within + n].fill(0);
                    }
                }
                Backing::File { file, base } => {
                    file.write_all_at(&ZEROES[..n], *base + offset + done)?;
                }
            }
            done += n as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(store: &Store, offset: u64, len: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let mut scratch = vec![0; CHUNK];
        store
            .read_with(offset, len, &mut scratch, |at, bytes| {
                assert_eq!(at as usize, out.len());
                out.extend_from_slice(bytes);
                Ok::<(), ()>(())
            })
            .unwrap()
            .unwrap();
        out
    }

    fn write_all(store: &mut Store, offset: u64, data: &[u8]) {
        let mut scratch = vec![0; CHUNK];
        store
            .write_with(offset, data.len() as u64, &mut scratch, |at, dst| {
                let at = at as usize;
                dst.copy_from_slice(&data[at..at + dst.len()]);
                Ok::<(), ()>(())
            })
            .unwrap()
            .unwrap();
    }

    #[test]
    fn pieces_split_at_chunk_boundaries() {
        let c = CHUNK as u64;
        let all: Vec<_> = pieces(c - 512, 1024 + c).collect();
        assert_eq!(all, vec![(0, CHUNK - 512, 512), (1, 0, CHUNK), (2, 0, 512)]);
        assert_eq!(pieces(5, 0).count(), 0);
    }

    #[test]
    fn sparse_reads_zero_allocates_on_write_and_frees_on_zero() {
        let mut store = Store::sparse(4 * CHUNK as u64);
        assert_eq!(read_all(&store, 100, 300), vec![0; 300]);
        assert_eq!(store.allocated_chunks(), 0);
        let data: Vec<u8> = (0..CHUNK + 1024).map(|i| (i % 251) as u8).collect();
        write_all(&mut store, CHUNK as u64 - 512, &data);
        assert_eq!(store.allocated_chunks(), 3);
        assert_eq!(
            read_all(&store, CHUNK as u64 - 512, data.len() as u64),
            data
        );
        store.zero(CHUNK as u64, CHUNK as u64).unwrap();
        assert_eq!(store.allocated_chunks(), 2, "the covered chunk is freed");
        store.zero(0, CHUNK as u64 - 256).unwrap();
        let back = read_all(&store, CHUNK as u64 - 512, 512);
        assert_eq!(&back[..256], &[0; 256]);
        assert_eq!(&back[256..], &data[256..512]);
        assert!(store.zero(4 * CHUNK as u64 - 1, 2).is_err());
        assert!(store
            .read_with(u64::MAX, 2, &mut [], |_, _| Ok::<(), ()>(()))
            .is_err());
    }

    #[test]
    fn a_failing_source_stops_the_write() {
        let mut store = Store::sparse(CHUNK as u64 * 2);
        let mut scratch = vec![0; CHUNK];
        let outcome = store
            .write_with(0, CHUNK as u64 * 2, &mut scratch, |at, dst| {
                if at == 0 {
                    dst.fill(7);
                    Ok(())
                } else {
                    Err("fault")
                }
            })
            .unwrap();
        assert_eq!(outcome, Err("fault"));
        assert_eq!(read_all(&store, 0, 4), vec![7; 4]);
    }

    #[test]
    fn file_backing_round_trips() {
        let path = std::env::temp_dir().join(format!("userpci-nvme-store-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        file.set_len(3 * CHUNK as u64).unwrap();
        let file = Arc::new(file);
        let mut store = Store::file(file, CHUNK as u64, CHUNK as u64);
        write_all(&mut store, 10, b"hello");
        assert_eq!(read_all(&store, 8, 9), b"\0\0hello\0\0");
        store.zero(11, 2).unwrap();
        assert_eq!(read_all(&store, 10, 5), b"h\0\0lo");
        let raw = std::fs::read(&path).unwrap();
        assert_eq!(&raw[CHUNK + 10..CHUNK + 15], b"h\0\0lo");
        std::fs::remove_file(&path).unwrap();
    }
}
