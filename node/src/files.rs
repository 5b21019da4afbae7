//! Files the binary writes whole: a secret (a key, a certificate's key) or a certificate is
//! written beside its place, then renamed over it, so a reader (a node reloading its TLS
//! files, a tool reading a key) never sees half of one, and it has its mode from the start.

use std::path::{Path, PathBuf};

/// Writes `text` beside `path`, then renames it over `path`.
pub fn replace(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let aside = PathBuf::from(format!("{}.new", path.display()));
    let _ = std::fs::remove_file(&aside);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&aside)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", aside.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", aside.display()))?;
    std::fs::rename(&aside, path)
        .map_err(|e| anyhow::anyhow!("cannot replace {}: {e}", path.display()))?;
    Ok(())
}
