//! Reading an input file as text, with a located error when it is not UTF-8: "line 3, byte 17"
//! rather than the standard library's bare "stream did not contain valid UTF-8".

use std::path::Path;

/// The file's text, or a message naming the first line that is not UTF-8 (the path is the
/// caller's to add).
pub fn read_utf8(path: &Path) -> std::io::Result<Result<String, String>> {
    let bytes = std::fs::read(path)?;
    Ok(utf8(bytes))
}

/// The bytes as text, or where they stop being UTF-8.
pub fn utf8(bytes: Vec<u8>) -> Result<String, String> {
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let b = e.as_bytes();
        let line = b[..at].iter().filter(|&&c| c == b'\n').count() + 1;
        let col = at
            - b[..at]
                .iter()
                .rposition(|&c| c == b'\n')
                .map_or(0, |p| p + 1)
            + 1;
        format!("line {line}, byte {col}: not valid UTF-8 text (save the file as UTF-8)")
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_the_line() {
        let e = super::utf8(b"a = 1\nb = \"\xff\"\n".to_vec()).unwrap_err();
        assert!(e.starts_with("line 2, byte 6"), "{e}");
    }
}
