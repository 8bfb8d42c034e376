//! The in-process reader against git's own answers, on real repositories: every object,
//! loose, packed with offset deltas, packed with ref deltas, through the large-offset
//! table; and what it must refuse.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use super::*;
use crate::objects::ObjectReader;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Objects by id: kind and content.
type Objects = HashMap<String, (String, Vec<u8>)>;

/// git in `dir`, without the machine's configuration, with a fixed identity.
fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Fixture")
        .env("GIT_AUTHOR_EMAIL", "fixture@example.com")
        .env("GIT_COMMITTER_NAME", "Fixture")
        .env("GIT_COMMITTER_EMAIL", "fixture@example.com")
        .output()?;
    if !output.status.success() {
        return Err(format!("git {args:?}: {}", String::from_utf8_lossy(&output.stderr)).into());
    }
    Ok(output.stdout)
}

/// A repository with history worth packing: a model rewritten a little in every commit
/// (deltas), a large file edited in the middle (copies longer than 64 KiB), binary and
/// empty files, nested directories, an annotated tag.
fn repository() -> Result<tempfile::TempDir, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    git(root, &["init", "-q", "-b", "main", "."])?;
    std::fs::create_dir_all(root.join("models/staging/deep"))?;
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut random = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let binary: Vec<u8> = (0..5000).map(|_| random().to_le_bytes()[0]).collect();
    std::fs::write(root.join("models/binary.bin"), &binary)?;
    std::fs::write(root.join("models/empty.sql"), "")?;
    let big_line = |n: usize| format!("select {n} as column_{n}, 'padding text for a long file'\n");
    let mut big: Vec<String> = (0..6000).map(big_line).collect();
    for version in 0..12 {
        let columns: String = (0..80)
            .map(|n| format!("    col_{n}_{}", if n == version * 3 { version } else { 0 }))
            .collect::<Vec<_>>()
            .join(",\n");
        std::fs::write(
            root.join("models/staging/stg_orders.sql"),
            format!("-- version {version}\nselect\n{columns}\nfrom {{{{ ref('raw_orders') }}}}\n"),
        )?;
        big[3000 + version] = format!("-- edited in version {version}\n");
        std::fs::write(root.join("models/big.sql"), big.concat())?;
        std::fs::write(
            root.join(format!("models/staging/deep/v{}.sql", version % 3)),
            format!("select {version}\n"),
        )?;
        git(root, &["add", "-A"])?;
        git(root, &["commit", "-q", "-m", &format!("version {version}")])?;
    }
    git(root, &["tag", "-a", "-m", "release", "v1"])?;
    Ok(dir)
}

/// Every object git has, with its kind and content, from `cat-file` itself.
fn objects_from_git(root: &Path) -> Result<Objects, Box<dyn std::error::Error>> {
    let listing = String::from_utf8(git(
        root,
        &[
            "cat-file",
            "--batch-all-objects",
            "--batch-check=%(objectname)",
        ],
    )?)?;
    let mut child = Command::new("git")
        .args(["cat-file", "--batch"])
        .current_dir(root)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().ok_or("stdin")?;
    let requests = listing.clone();
    let writer = std::thread::spawn(move || stdin.write_all(requests.as_bytes()));
    let output = child.wait_with_output()?;
    writer.join().map_err(|_| "writer panicked")??;
    let mut rest = output.stdout.as_slice();
    let mut objects = HashMap::new();
    for _ in listing.lines() {
        let newline = rest.iter().position(|b| *b == b'\n').ok_or("header")?;
        let header = std::str::from_utf8(&rest[..newline])?.to_owned();
        let mut fields = header.split(' ');
        let (Some(oid), Some(kind), Some(size)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(format!("header {header}").into());
        };
        let size: usize = size.parse()?;
        let data = rest[newline + 1..newline + 1 + size].to_vec();
        rest = &rest[newline + 1 + size + 1..];
        objects.insert(oid.to_owned(), (kind.to_owned(), data));
    }
    Ok(objects)
}

/// Reads every object git lists in-process and compares; returns how many there were.
fn assert_reads_like_git(root: &Path) -> Result<usize, Box<dyn std::error::Error>> {
    let expected = objects_from_git(root)?;
    assert!(expected.len() > 40, "{} objects", expected.len());
    let mut odb = Odb::new(&root.join(".git/objects"));
    for (oid, (kind, data)) in &expected {
        let object = odb.read(oid).map_err(|miss| format!("{oid}: {miss}"))?;
        assert_eq!(&object.kind, kind, "{oid}");
        assert!(object.data == *data, "{oid}: content differs");
        assert_eq!(&object.oid, oid);
    }
    Ok(expected.len())
}

/// The pack entry types (1–4 whole, 6 offset delta, 7 ref delta) in the repository's packs.
fn entry_types(root: &Path) -> Result<HashMap<u8, usize>, Box<dyn std::error::Error>> {
    let objects_dir = root.join(".git/objects");
    let mut types = HashMap::new();
    for pack in list_packs(&objects_dir) {
        for index in 0..pack.count {
            let mut oid = [0u8; OID_LEN];
            read_exact_at(
                &pack.idx,
                &mut oid,
                IDX_NAMES + u64::from(index) * OID_LEN as u64,
            )?;
            let offset = pack.offset_of(&oid)?.ok_or("listed but not found")?;
            let mut first = [0u8; 1];
            read_exact_at(&pack.pack, &mut first, offset)?;
            *types.entry((first[0] >> 4) & 7).or_insert(0) += 1;
        }
    }
    Ok(types)
}

fn pack_files(root: &Path, extension: &str) -> Result<Vec<PathBuf>, Box<dyn std::error::Error>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root.join(".git/objects/pack"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|found| found == extension) {
            files.push(path);
        }
    }
    Ok(files)
}

#[test]
fn every_object_reads_as_git_reads_it_loose_and_packed_with_both_kinds_of_delta() -> TestResult {
    let dir = repository()?;
    let root = dir.path();
    assert!(pack_files(root, "pack")?.is_empty());
    let loose = assert_reads_like_git(root)?;

    git(root, &["gc", "-q", "--aggressive"])?;
    assert_eq!(pack_files(root, "pack")?.len(), 1);
    let types = entry_types(root)?;
    assert!(
        types.get(&OBJ_OFS_DELTA).copied().unwrap_or(0) > 10,
        "{types:?}"
    );
    assert_eq!(assert_reads_like_git(root)?, loose);

    // pack-objects' --no-delta-base-offset, as repack passes it on.
    git(
        root,
        &[
            "-c",
            "repack.useDeltaBaseOffset=false",
            "repack",
            "-q",
            "-a",
            "-d",
        ],
    )?;
    let types = entry_types(root)?;
    assert!(
        types.get(&OBJ_REF_DELTA).copied().unwrap_or(0) > 10,
        "{types:?}"
    );
    assert_eq!(types.get(&OBJ_OFS_DELTA), None, "{types:?}");
    assert_eq!(assert_reads_like_git(root)?, loose);
    Ok(())
}

#[test]
fn offsets_in_the_large_offset_table_are_followed() -> TestResult {
    let dir = repository()?;
    let root = dir.path();
    git(root, &["gc", "-q"])?;
    let expected = objects_from_git(root)?;
    // Rewrite the index as if the pack were over 2 GiB: every offset moved to the
    // 8-byte table (the checksums in the trailer are not read).
    let [idx_path] = &pack_files(root, "idx")?[..] else {
        return Err("one index expected".into());
    };
    let idx = std::fs::read(idx_path)?;
    let count = u32::from_be_bytes(idx[8 + 255 * 4..IDX_NAMES as usize].try_into()?) as usize;
    let offsets_at = IDX_NAMES as usize + count * (OID_LEN + 4);
    let large_at = offsets_at + count * 4;
    let mut rewritten = idx[..offsets_at].to_vec();
    let mut large = Vec::new();
    for index in 0..count {
        let small = &idx[offsets_at + index * 4..offsets_at + index * 4 + 4];
        large.extend_from_slice(&u64::from(u32::from_be_bytes(small.try_into()?)).to_be_bytes());
        rewritten.extend_from_slice(&(0x8000_0000_u32 | index as u32).to_be_bytes());
    }
    rewritten.extend_from_slice(&large);
    rewritten.extend_from_slice(&idx[large_at..]);
    std::fs::remove_file(idx_path)?;
    std::fs::write(idx_path, rewritten)?;

    let mut odb = Odb::new(&root.join(".git/objects"));
    for (oid, (kind, data)) in &expected {
        let object = odb.read(oid).map_err(|miss| format!("{oid}: {miss}"))?;
        assert_eq!((&object.kind, &object.data), (kind, data), "{oid}");
    }
    Ok(())
}

#[test]
fn what_it_cannot_read_goes_to_git_which_answers() -> TestResult {
    let dir = repository()?;
    let root = dir.path();
    git(root, &["gc", "-q"])?;
    let head = String::from_utf8(git(root, &["rev-parse", "HEAD"])?)?
        .trim()
        .to_owned();
    let expected = objects_from_git(root)?;

    // A version-1 index: refused, so the object is not found in-process.
    let [pack_path] = &pack_files(root, "pack")?[..] else {
        return Err("one pack expected".into());
    };
    let idx_path = pack_path.with_extension("idx");
    std::fs::remove_file(&idx_path)?;
    git(
        root,
        &[
            "index-pack",
            "--index-version=1",
            "-o",
            idx_path.to_str().ok_or("path")?,
            pack_path.to_str().ok_or("path")?,
        ],
    )?;
    let mut odb = Odb::new(&root.join(".git/objects"));
    assert!(matches!(odb.read(&head), Err(Miss::NotFound(_))));

    // The reader then asks git, once, and gets every answer right.
    let mut reader = ObjectReader::new(root, Some(Odb::new(&root.join(".git/objects"))));
    for (oid, (kind, data)) in &expected {
        let object = reader.object(oid)?.ok_or("missing")?;
        assert_eq!((&object.kind, &object.data), (kind, data), "{oid}");
    }
    assert!(reader.started_git());
    Ok(())
}

#[test]
fn a_fresh_repository_is_read_without_git_and_names_git_must_resolve_go_to_git() -> TestResult {
    let dir = repository()?;
    let root = dir.path();
    let head = String::from_utf8(git(root, &["rev-parse", "HEAD"])?)?
        .trim()
        .to_owned();
    let tag = String::from_utf8(git(root, &["rev-parse", "v1"])?)?
        .trim()
        .to_owned();
    let mut reader = ObjectReader::new(root, Some(Odb::new(&root.join(".git/objects"))));
    let commit = reader.commit(&head)?.ok_or("no commit")?;
    let entry = reader
        .tree_entry(&commit.tree, "models/staging/stg_orders.sql")?
        .ok_or("no entry")?;
    assert!(reader.blob(&entry.oid)?.starts_with(b"-- version 11\n"));
    assert!(!reader.started_git());
    // A tag peeled to its commit, an abbreviated id, a branch name: git resolves them.
    assert_eq!(reader.commit(&tag)?.ok_or("no commit")?.oid, head);
    assert!(reader.started_git());
    assert_eq!(reader.commit(&head[..10])?.ok_or("no commit")?.oid, head);
    assert_eq!(reader.commit("main")?.ok_or("no commit")?.oid, head);
    assert!(reader.commit(&"0".repeat(40))?.is_none());
    Ok(())
}

#[test]
fn content_that_does_not_hash_to_its_name_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let objects_dir = dir.path();
    let oid = "0123456789abcdef0123456789abcdef01234567";
    std::fs::create_dir_all(objects_dir.join("01"))?;
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(b"blob 5\0hello")?;
    std::fs::write(objects_dir.join("01").join(&oid[2..]), encoder.finish()?)?;
    let mut odb = Odb::new(objects_dir);
    assert!(matches!(odb.read(oid), Err(Miss::Corrupt(_))));
    // A size in the header that is not the content's.
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(b"blob 6\0hello")?;
    std::fs::write(objects_dir.join("01").join(&oid[2..]), encoder.finish()?)?;
    assert!(matches!(odb.read(oid), Err(Miss::Corrupt(_))));
    assert!(matches!(
        odb.read("ffffffffffffffffffffffffffffffffffffffff"),
        Err(Miss::NotFound(_))
    ));
    assert!(matches!(odb.read("HEAD"), Err(Miss::Unsupported(_))));
    Ok(())
}

#[test]
fn deltas_are_applied_as_git_applies_them_and_refused_when_they_do_not_add_up() {
    let base: Vec<u8> = (0..0x20000u32).map(|n| (n % 251) as u8).collect();
    // Source 0x20000, target 0x10000 + 3: copy 0x10000 bytes from 0x100 (size bytes all
    // absent: 0x10000), then insert "abc".
    let mut delta = vec![0x80, 0x80, 0x08, 0x83, 0x80, 0x04];
    delta.extend([0x80 | 0x02, 0x01]);
    delta.extend([3, b'a', b'b', b'c']);
    let target = apply_delta(&base, &delta).unwrap();
    assert_eq!(target.len(), 0x10003);
    assert_eq!(&target[..0x10000], &base[0x100..0x10100]);
    assert_eq!(&target[0x10000..], b"abc");

    // The wrong source size, a reserved op, a copy past the base, a short target.
    let mut wrong_source = delta.clone();
    wrong_source[2] = 0x09;
    assert_eq!(apply_delta(&base, &wrong_source), None);
    let mut reserved = delta.clone();
    reserved.push(0);
    assert_eq!(apply_delta(&base, &reserved), None);
    assert_eq!(apply_delta(&[1, 2], &[2, 2, 0x90, 3]), None);
    assert_eq!(apply_delta(&[1, 2], &[2, 3, 0x90, 2]), None);
    assert_eq!(apply_delta(&[1, 2], &[2, 2, 0x90, 2]), Some(vec![1, 2]));
}

#[test]
fn delta_chains_longer_than_the_bound_go_to_git() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    git(root, &["init", "-q", "-b", "main", "."])?;
    // A window sliding over random lines: each version resembles only its neighbours, so
    // packing with a deep limit chains them one on another.
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let lines: Vec<String> = (0..400)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            format!("{seed:032x}\n")
        })
        .collect();
    let mut stream = Vec::new();
    for version in 0..100 {
        let content = lines[version * 2..version * 2 + 100].concat();
        stream.extend(
            format!(
                "commit refs/heads/main\ncommitter A <a@example.com> {} +0000\ndata 2\nv\nM 100644 inline f.sql\ndata {}\n{content}\n",
                1_000_000 + version,
                content.len()
            )
            .into_bytes(),
        );
    }
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(root)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::piped())
        .spawn()?;
    child.stdin.take().ok_or("stdin")?.write_all(&stream)?;
    assert!(child.wait()?.success());
    git(
        root,
        &[
            "repack",
            "-q",
            "-a",
            "-d",
            "-f",
            "--depth=200",
            "--window=200",
        ],
    )?;

    let expected = objects_from_git(root)?;
    let mut odb = Odb::new(&root.join(".git/objects"));
    let mut too_deep = 0;
    for oid in expected.keys() {
        match odb.read(oid) {
            Ok(_) => {}
            Err(Miss::Unsupported(_)) => too_deep += 1,
            Err(miss) => return Err(format!("{oid}: {miss}").into()),
        }
    }
    assert!(too_deep > 0 && too_deep < expected.len(), "{too_deep}");
    let mut reader = ObjectReader::new(root, Some(Odb::new(&root.join(".git/objects"))));
    for (oid, (kind, data)) in &expected {
        let object = reader.object(oid)?.ok_or("missing")?;
        assert_eq!((&object.kind, &object.data), (kind, data), "{oid}");
    }
    assert!(reader.started_git());
    Ok(())
}
