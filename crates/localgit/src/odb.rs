//! Reading objects from a SHA-1 repository's object directory in this process: loose
//! objects and version-2 pack files, deltas included.
//!
//! A delivery reads a handful of objects (the base commit, the trees down to a model, the
//! model's blob); starting `git cat-file --batch` for them costs more than everything else
//! it does. This reader covers the shapes a repository has after ordinary use and `git gc`
//! (gitformat-loose(5), gitformat-pack(5)); anything else is a [`Miss`], on which the
//! caller asks git instead (`crate::objects::ObjectReader`). So a miss is never an error
//! surfaced to a user, and an answer is only ever given for an object whose id was
//! verified by hashing it: a parser bug or a corrupt file becomes a miss, not a commit on
//! top of garbage.
//!
//! The packs are listed when the first object is not found loose, once per reader (one
//! delivery), so a pack written since the last delivery is seen and one that `git gc`
//! deleted meanwhile is just missing (a miss, then git). Pack data is read with positioned
//! reads, a few kilobytes per object: nothing is mapped or read whole.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::objects::RawObject;

/// Bytes in a SHA-1 object id.
const OID_LEN: usize = 20;

/// The longest chain of deltas followed before git is asked instead. git's own default
/// for `gc --aggressive` is 50; a longer chain is a repository packed with unusual
/// settings, and an unbounded one would be a loop in a corrupt pack.
const MAX_DELTA_DEPTH: usize = 64;

/// The start of a version-2 pack index: `\377tOc`, then the version.
const IDX_MAGIC: [u8; 4] = [0xff, b't', b'O', b'c'];

/// Where the fan-out table ends and the sorted object ids start in a version-2 index.
const IDX_NAMES: u64 = 8 + 256 * 4;

/// Why an object was not read in-process. Never shown to a user: the caller asks git.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Miss {
    /// Neither a loose object nor in any pack listed (it may be in a pack written since,
    /// or behind a promisor remote).
    #[error("object {0} is not in the object directory")]
    NotFound(String),
    /// A format this reader does not handle (a version-1 index, a long delta chain).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Something did not parse, or the object's id did not match its content.
    #[error("corrupt or unexpected: {0}")]
    Corrupt(String),
    /// Reading a file failed (e.g. a pack deleted by `git gc` between listing and reading).
    #[error("{path:?}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// The four kinds of object, by their pack type numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Commit,
    Tree,
    Blob,
    Tag,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Commit => "commit",
            Self::Tree => "tree",
            Self::Blob => "blob",
            Self::Tag => "tag",
        }
    }

    fn from_name(name: &[u8]) -> Option<Self> {
        match name {
            b"commit" => Some(Self::Commit),
            b"tree" => Some(Self::Tree),
            b"blob" => Some(Self::Blob),
            b"tag" => Some(Self::Tag),
            _ => None,
        }
    }
}

/// The object directory of one SHA-1 repository (without alternates), read in-process.
pub(crate) struct Odb {
    /// `<git-common-dir>/objects`.
    objects_dir: PathBuf,
    /// The usable packs, listed on the first object not found loose.
    packs: Option<Vec<Pack>>,
}

impl Odb {
    /// A reader of `objects_dir`. The caller has checked that the repository's objects are
    /// all there: SHA-1, no alternates, no replace refs.
    pub(crate) fn new(objects_dir: &Path) -> Self {
        Self {
            objects_dir: objects_dir.to_path_buf(),
            packs: None,
        }
    }

    /// The object `oid` (full, lower-case hex), its id verified against its content.
    pub(crate) fn read(&mut self, oid: &str) -> Result<RawObject, Miss> {
        let raw = parse_oid(oid).ok_or_else(|| Miss::Unsupported(format!("object id {oid}")))?;
        if self.packs.is_none() {
            // Loose first: a fresh repository and a fix's own objects are loose, and
            // trying costs one failed open, where listing the packs costs a directory read
            // and two opens per pack.
            if let Some((kind, data)) = read_loose(&self.objects_dir, oid)? {
                return verified(oid, &raw, kind, data);
            }
            self.packs = Some(list_packs(&self.objects_dir));
        }
        let packs = self.packs.as_deref().unwrap_or_default();
        let (kind, data) = find(&self.objects_dir, packs, &raw, 0)?;
        verified(oid, &raw, kind, data)
    }
}

/// The object `oid` from a loose file or a pack, not yet verified; `depth` counts the
/// deltas followed to get here.
fn find(
    objects_dir: &Path,
    packs: &[Pack],
    oid: &[u8; OID_LEN],
    depth: usize,
) -> Result<(Kind, Vec<u8>), Miss> {
    let text = hex(oid);
    if let Some(found) = read_loose(objects_dir, &text)? {
        return Ok(found);
    }
    for pack in packs {
        if let Some(offset) = pack.offset_of(oid)? {
            return pack.entry(objects_dir, packs, offset, depth);
        }
    }
    Err(Miss::NotFound(text))
}

/// `kind` and `data` as the object `oid`, if hashing them gives that id.
fn verified(oid: &str, raw: &[u8; OID_LEN], kind: Kind, data: Vec<u8>) -> Result<RawObject, Miss> {
    let mut hasher = sha1_smol::Sha1::new();
    hasher.update(format!("{} {}\0", kind.name(), data.len()).as_bytes());
    hasher.update(&data);
    if hasher.digest().bytes() != *raw {
        return Err(Miss::Corrupt(format!(
            "the content read for {oid} hashes to another id"
        )));
    }
    Ok(RawObject {
        oid: oid.to_owned(),
        kind: kind.name().to_owned(),
        data,
    })
}

/// The loose object `oid` (hex), or `None` when there is no such file: zlib-compressed
/// `<kind> <size>\0<content>`.
fn read_loose(objects_dir: &Path, oid: &str) -> Result<Option<(Kind, Vec<u8>)>, Miss> {
    let (Some(dir), Some(file)) = (oid.get(..2), oid.get(2..)) else {
        return Err(Miss::Unsupported(format!("object id {oid}")));
    };
    let path = objects_dir.join(dir).join(file);
    let compressed = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(Miss::Io { path, source }),
    };
    let mut data = Vec::new();
    flate2::read::ZlibDecoder::new(compressed.as_slice())
        .read_to_end(&mut data)
        .map_err(|source| Miss::Io {
            path: path.clone(),
            source,
        })?;
    let corrupt = || Miss::Corrupt(format!("loose object {}", path.display()));
    // The header is short: a kind and a decimal size.
    let nul = data
        .iter()
        .take(32)
        .position(|b| *b == 0)
        .ok_or_else(corrupt)?;
    let header = data.get(..nul).ok_or_else(corrupt)?;
    let space = header.iter().position(|b| *b == b' ').ok_or_else(corrupt)?;
    let kind = Kind::from_name(&header[..space]).ok_or_else(corrupt)?;
    let size = parse_decimal(&header[space + 1..]).ok_or_else(corrupt)?;
    if data.len() - (nul + 1) != size {
        return Err(corrupt());
    }
    data.drain(..=nul);
    Ok(Some((kind, data)))
}

fn parse_decimal(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The packs in `objects/pack` this reader can use. A pack it cannot use (a version-1
/// index, a half-written or just-deleted one) is left out: an object only it holds is
/// then not found, and git is asked.
fn list_packs(objects_dir: &Path) -> Vec<Pack> {
    let dir = objects_dir.join("pack");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut packs: Vec<Pack> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let stem = name.to_str()?.strip_suffix(".idx")?.to_owned();
            Pack::open(
                &dir.join(format!("{stem}.idx")),
                &dir.join(format!("{stem}.pack")),
            )
            .ok()
        })
        .collect();
    // The largest pack first: after a gc it holds nearly everything.
    packs.sort_by_key(|pack| std::cmp::Reverse(pack.count));
    packs
}

/// One pack file and its version-2 index, both open.
struct Pack {
    /// The `.idx` file: fan-out table, sorted ids, CRCs, offsets, large offsets.
    idx: File,
    /// Its path, for errors.
    idx_path: PathBuf,
    /// The `.pack` file.
    pack: File,
    /// Its path, for errors.
    pack_path: PathBuf,
    /// The fan-out table: `fanout[b]` is the number of ids whose first byte is `<= b`.
    fanout: [u32; 256],
    /// The number of objects in the pack (`fanout[255]`).
    count: u32,
}

/// Pack entry types (gitformat-pack(5)).
const OBJ_OFS_DELTA: u8 = 6;
const OBJ_REF_DELTA: u8 = 7;

impl Pack {
    fn open(idx_path: &Path, pack_path: &Path) -> Result<Self, Miss> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Miss::Io { path, source }
        };
        let idx = File::open(idx_path).map_err(io(idx_path))?;
        let pack = File::open(pack_path).map_err(io(pack_path))?;
        let mut head = [0u8; IDX_NAMES as usize];
        read_exact_at(&idx, &mut head, 0).map_err(io(idx_path))?;
        if head[..4] != IDX_MAGIC || head[4..8] != [0, 0, 0, 2] {
            return Err(Miss::Unsupported(format!(
                "{} is not a version-2 pack index",
                idx_path.display()
            )));
        }
        let mut fanout = [0u32; 256];
        for (slot, bytes) in fanout.iter_mut().zip(head[8..].chunks_exact(4)) {
            *slot = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        let corrupt = || Miss::Corrupt(format!("pack index {}", idx_path.display()));
        if fanout.windows(2).any(|pair| pair[0] > pair[1]) {
            return Err(corrupt());
        }
        let count = fanout[255];
        // The fixed-size tables and the two trailing checksums must all be there; the
        // large-offset table is read only where an offset points into it.
        let minimum = IDX_NAMES + u64::from(count) * (OID_LEN as u64 + 8) + 2 * OID_LEN as u64;
        let length = idx.metadata().map_err(io(idx_path))?.len();
        if length < minimum {
            return Err(corrupt());
        }
        // "PACK", version 2 or 3, the object count: the pack the index describes.
        let mut header = [0u8; 12];
        read_exact_at(&pack, &mut header, 0).map_err(io(pack_path))?;
        let version = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        let objects = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
        if &header[..4] != b"PACK" || !(2..=3).contains(&version) || objects != count {
            return Err(Miss::Corrupt(format!("pack {}", pack_path.display())));
        }
        Ok(Self {
            idx,
            idx_path: idx_path.to_path_buf(),
            pack,
            pack_path: pack_path.to_path_buf(),
            fanout,
            count,
        })
    }

    /// Where `oid` starts in the pack, if the pack has it: the ids sharing its first byte
    /// (one read, as the fan-out table says where they are), searched in memory.
    fn offset_of(&self, oid: &[u8; OID_LEN]) -> Result<Option<u64>, Miss> {
        let first = usize::from(oid[0]);
        let start = if first == 0 {
            0
        } else {
            self.fanout[first - 1]
        };
        let end = self.fanout[first];
        if start >= end {
            return Ok(None);
        }
        let mut names = vec![0u8; (end - start) as usize * OID_LEN];
        let names_at = IDX_NAMES + u64::from(start) * OID_LEN as u64;
        read_exact_at(&self.idx, &mut names, names_at).map_err(|source| self.idx_io(source))?;
        let Ok(found) = names
            .chunks_exact(OID_LEN)
            .collect::<Vec<_>>()
            .binary_search_by(|name| (*name).cmp(oid.as_slice()))
        else {
            return Ok(None);
        };
        let position = u64::from(start) + found as u64;
        let count = u64::from(self.count);
        // After the ids come a CRC32 per object, then a 4-byte offset per object.
        let offsets_at = IDX_NAMES + count * (OID_LEN as u64 + 4);
        let mut small = [0u8; 4];
        read_exact_at(&self.idx, &mut small, offsets_at + position * 4)
            .map_err(|source| self.idx_io(source))?;
        let small = u32::from_be_bytes(small);
        if small & 0x8000_0000 == 0 {
            return Ok(Some(u64::from(small)));
        }
        // The top bit set: the rest indexes the table of 8-byte offsets (packs over 2 GiB).
        let large_at = offsets_at + count * 4 + u64::from(small & 0x7fff_ffff) * 8;
        let mut large = [0u8; 8];
        read_exact_at(&self.idx, &mut large, large_at).map_err(|source| self.idx_io(source))?;
        Ok(Some(u64::from_be_bytes(large)))
    }

    /// The object whose entry starts at `offset`, deltas resolved.
    fn entry(
        &self,
        objects_dir: &Path,
        packs: &[Pack],
        offset: u64,
        depth: usize,
    ) -> Result<(Kind, Vec<u8>), Miss> {
        if depth > MAX_DELTA_DEPTH {
            return Err(Miss::Unsupported(format!(
                "a delta chain longer than {MAX_DELTA_DEPTH} in {}",
                self.pack_path.display()
            )));
        }
        let corrupt =
            || Miss::Corrupt(format!("entry at {offset} of {}", self.pack_path.display()));
        // The longest header: a 10-byte size, then a 20-byte base id or a 10-byte offset.
        let mut head = [0u8; 32];
        let available =
            read_at_most(&self.pack, &mut head, offset).map_err(|source| self.pack_io(source))?;
        let head = &head[..available];
        let mut at = 0;
        let mut byte = *head.get(at).ok_or_else(corrupt)?;
        at += 1;
        let kind = (byte >> 4) & 0x07;
        // The size: 4 bits here, then 7 bits per byte while the top bit is set.
        let mut size = u64::from(byte & 0x0f);
        let mut shift = 4;
        while byte & 0x80 != 0 {
            byte = *head.get(at).ok_or_else(corrupt)?;
            at += 1;
            if shift > 57 {
                return Err(corrupt());
            }
            size |= u64::from(byte & 0x7f) << shift;
            shift += 7;
        }
        let size = usize::try_from(size).map_err(|_| corrupt())?;
        match kind {
            1..=4 => {
                let kind = [Kind::Commit, Kind::Tree, Kind::Blob, Kind::Tag][usize::from(kind - 1)];
                Ok((kind, self.inflate(offset + at as u64, size)?))
            }
            OBJ_OFS_DELTA => {
                // The base's distance back: big-endian 7-bit groups, each continuation
                // adding one (so that every length has its own range).
                let mut byte = *head.get(at).ok_or_else(corrupt)?;
                at += 1;
                let mut distance = u64::from(byte & 0x7f);
                while byte & 0x80 != 0 {
                    byte = *head.get(at).ok_or_else(corrupt)?;
                    at += 1;
                    distance = distance
                        .checked_add(1)
                        .and_then(|d| d.checked_mul(128))
                        .ok_or_else(corrupt)?
                        | u64::from(byte & 0x7f);
                }
                let base_at = offset
                    .checked_sub(distance)
                    .filter(|base_at| distance > 0 && *base_at >= 12)
                    .ok_or_else(corrupt)?;
                let delta = self.inflate(offset + at as u64, size)?;
                let (kind, base) = self.entry(objects_dir, packs, base_at, depth + 1)?;
                Ok((kind, apply_delta(&base, &delta).ok_or_else(corrupt)?))
            }
            OBJ_REF_DELTA => {
                let base_oid: [u8; OID_LEN] = head
                    .get(at..at + OID_LEN)
                    .and_then(|bytes| bytes.try_into().ok())
                    .ok_or_else(corrupt)?;
                at += OID_LEN;
                let delta = self.inflate(offset + at as u64, size)?;
                let (kind, base) = find(objects_dir, packs, &base_oid, depth + 1)?;
                Ok((kind, apply_delta(&base, &delta).ok_or_else(corrupt)?))
            }
            _ => Err(corrupt()),
        }
    }

    /// The `size` bytes the zlib stream at `offset` inflates to; exactly that many.
    fn inflate(&self, offset: u64, size: usize) -> Result<Vec<u8>, Miss> {
        let compressed = BufReader::with_capacity(
            8 * 1024,
            ReadAt {
                file: &self.pack,
                position: offset,
            },
        );
        let mut decoder = flate2::bufread::ZlibDecoder::new(compressed);
        // The size is the pack's word, so it bounds the first allocation only loosely.
        let mut data = Vec::with_capacity(size.min(1 << 20));
        // One byte more than promised: a stream that runs on is caught here.
        (&mut decoder)
            .take(size as u64 + 1)
            .read_to_end(&mut data)
            .map_err(|source| self.pack_io(source))?;
        if data.len() != size {
            return Err(Miss::Corrupt(format!(
                "entry at {offset} of {} inflates to {} bytes, not {size}",
                self.pack_path.display(),
                data.len()
            )));
        }
        Ok(data)
    }

    fn idx_io(&self, source: std::io::Error) -> Miss {
        Miss::Io {
            path: self.idx_path.clone(),
            source,
        }
    }

    fn pack_io(&self, source: std::io::Error) -> Miss {
        Miss::Io {
            path: self.pack_path.clone(),
            source,
        }
    }
}

/// git's delta format applied to `base`: the base's size and the result's size (7-bit
/// little-endian varints), then instructions — a byte with the top bit set copies a range
/// of the base (its low four bits say which offset bytes follow, the next three which
/// size bytes; a size of 0 means 0x10000), a byte 1–127 inserts that many literal bytes,
/// 0 is reserved. `None` when anything does not add up.
fn apply_delta(base: &[u8], delta: &[u8]) -> Option<Vec<u8>> {
    let mut rest = delta;
    let source_size = read_size(&mut rest)?;
    let target_size = read_size(&mut rest)?;
    if source_size != base.len() {
        return None;
    }
    let mut target = Vec::with_capacity(target_size.min(1 << 24));
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        if op & 0x80 != 0 {
            let mut offset = 0usize;
            for bit in 0..4 {
                if op & (1 << bit) != 0 {
                    let (&byte, tail) = rest.split_first()?;
                    rest = tail;
                    offset |= usize::from(byte) << (8 * bit);
                }
            }
            let mut size = 0usize;
            for bit in 0..3 {
                if op & (0x10 << bit) != 0 {
                    let (&byte, tail) = rest.split_first()?;
                    rest = tail;
                    size |= usize::from(byte) << (8 * bit);
                }
            }
            if size == 0 {
                size = 0x10000;
            }
            target.extend_from_slice(base.get(offset..offset.checked_add(size)?)?);
        } else if op != 0 {
            let (literal, tail) = rest.split_at_checked(usize::from(op))?;
            target.extend_from_slice(literal);
            rest = tail;
        } else {
            return None;
        }
        if target.len() > target_size {
            return None;
        }
    }
    (target.len() == target_size).then_some(target)
}

/// A delta header's size: 7 bits per byte, least significant first.
fn read_size(rest: &mut &[u8]) -> Option<usize> {
    let mut size = 0usize;
    let mut shift = 0;
    loop {
        let (&byte, tail) = rest.split_first()?;
        *rest = tail;
        if shift > 57 {
            return None;
        }
        size |= usize::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return Some(size);
        }
    }
}

/// A file read from a position on, with positioned reads: packs are shared by every
/// lookup of a reader, so none of them owns a cursor.
struct ReadAt<'a> {
    file: &'a File,
    position: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match pread(self.file, buf, self.position) {
                Ok(read) => {
                    self.position += read as u64;
                    return Ok(read);
                }
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
    }
}

/// Fills `buf` from `offset`, or fails (at the end of the file, too).
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    let read = read_at_most(file, buf, offset)?;
    if read == buf.len() {
        Ok(())
    } else {
        Err(std::io::ErrorKind::UnexpectedEof.into())
    }
}

/// Reads into `buf` from `offset` until it is full or the file ends; how much was read.
fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match pread(file, &mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

#[cfg(unix)]
fn pread(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn pread(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    // Moves the file's cursor, which nothing here relies on.
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// A full SHA-1 id in lower-case hex, as bytes.
fn parse_oid(oid: &str) -> Option<[u8; OID_LEN]> {
    if oid.len() != 2 * OID_LEN {
        return None;
    }
    let mut raw = [0u8; OID_LEN];
    for (byte, pair) in raw.iter_mut().zip(oid.as_bytes().chunks_exact(2)) {
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(raw)
}

fn hex(raw: &[u8]) -> String {
    crate::objects::hex(raw)
}

#[cfg(test)]
mod tests;
