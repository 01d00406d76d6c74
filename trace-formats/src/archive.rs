//! Streams one member of a `.tar.gz` without unpacking it to disk.
//!
//! The `tar` crate's `Entry` borrows its `Archive`, which would make a reader that owns both
//! self-referential. Tar is a sequence of 512-byte headers each followed by its data padded to
//! 512 bytes, so we walk the headers ourselves (parsed by `tar::Header`) on top of a `GzDecoder`
//! and hand back the decoder limited to the member's size: memory stays constant.

use flate2::read::GzDecoder;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

/// A reader over the member's bytes.
pub type Member = io::Take<GzDecoder<BufReader<File>>>;

/// Opens the member named `want` (its base name or full path), or, without a name, the first
/// regular `.csv` file. macOS AppleDouble files (`._*`) and pax/xattr headers are skipped.
pub fn open_member(path: &Path, want: Option<&str>) -> io::Result<(String, Member)> {
    let mut gz = GzDecoder::new(BufReader::new(File::open(path)?));
    let mut seen = Vec::new();
    loop {
        let mut block = [0u8; 512];
        if !read_block(&mut gz, &mut block)? || block.iter().all(|b| *b == 0) {
            let what = want.map_or("a .csv member".to_string(), |w| format!("member `{w}`"));
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("the archive has no {what}; it holds [{}]", seen.join(", ")),
            ));
        }
        let header = tar::Header::from_byte_slice(&block);
        let size = header.entry_size()?;
        let name = header.path()?.to_string_lossy().into_owned();
        let base = name.rsplit('/').next().unwrap_or(&name).to_string();
        let regular = header.entry_type().is_file();
        if regular && !base.starts_with("._") {
            seen.push(name.clone());
            let hit = match want {
                Some(w) => base == w || name == w,
                None => base.ends_with(".csv"),
            };
            if hit {
                return Ok((name, gz.take(size)));
            }
        }
        let padded = size.div_ceil(512) * 512;
        io::copy(&mut (&mut gz).take(padded), &mut io::sink())?;
    }
}

/// Fills `block`; false on a clean end of stream.
fn read_block(r: &mut impl Read, block: &mut [u8; 512]) -> io::Result<bool> {
    let mut got = 0;
    while got < block.len() {
        match r.read(&mut block[got..])? {
            0 if got == 0 => return Ok(false),
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "truncated tar header",
                ))
            }
            n => got += n,
        }
    }
    Ok(true)
}

/// True for paths that name a gzip-compressed tar archive.
pub fn is_tar_gz(path: &Path) -> bool {
    let s = path.to_string_lossy();
    s.ends_with(".tar.gz") || s.ends_with(".tgz")
}
