//! Instance logs captured to size-rotated files: `<name>.log`, then `<name>.log.1` …
//! `<name>.log.<keep>` (oldest), so a chatty replica never fills the disk.
//!
//! Output is copied in chunks, not lines, so a child that never prints a newline cannot
//! make ballast buffer without bound.

use std::path::{Path, PathBuf};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Where and how much to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPolicy {
    /// Directory of the log files (created when missing).
    pub dir: PathBuf,
    /// Size at which the current file is rotated, bytes; default 10 MiB.
    pub max_bytes: u64,
    /// Rotated files kept besides the current one; default 3.
    pub keep: usize,
}

impl LogPolicy {
    /// Logs in `dir`, 10 MiB per file, 3 rotated files kept.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        LogPolicy { dir: dir.into(), max_bytes: 10 << 20, keep: 3 }
    }
}

/// An append-only file that rotates when it reaches its size limit.
#[derive(Debug)]
pub struct RotatingLog {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: tokio::fs::File,
    written: u64,
}

fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl RotatingLog {
    /// Opens (appending to) `<policy.dir>/<name>.log`.
    pub async fn open(policy: &LogPolicy, name: &str) -> std::io::Result<Self> {
        tokio::fs::create_dir_all(&policy.dir).await?;
        let path = policy.dir.join(format!("{name}.log"));
        let file = tokio::fs::OpenOptions::new().create(true).append(true).open(&path).await?;
        let written = file.metadata().await?.len();
        Ok(RotatingLog { path, max_bytes: policy.max_bytes.max(1), keep: policy.keep, file, written })
    }

    /// The current file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `bytes`, rotating first when they would pass the limit (a chunk larger
    /// than the limit is split).
    pub async fn write(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        while !bytes.is_empty() {
            if self.written >= self.max_bytes {
                self.rotate().await?;
            }
            let room = usize::try_from(self.max_bytes - self.written).unwrap_or(usize::MAX);
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.file.write_all(now).await?;
            self.written += now.len() as u64;
            bytes = rest;
        }
        self.file.flush().await
    }

    async fn rotate(&mut self) -> std::io::Result<()> {
        self.file.flush().await?;
        if self.keep == 0 {
            tokio::fs::remove_file(&self.path).await?;
        } else {
            let _ = tokio::fs::remove_file(rotated(&self.path, self.keep)).await;
            for n in (1..self.keep).rev() {
                let _ = tokio::fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1)).await;
            }
            tokio::fs::rename(&self.path, rotated(&self.path, 1)).await?;
        }
        self.file = tokio::fs::OpenOptions::new().create(true).append(true).open(&self.path).await?;
        self.written = 0;
        Ok(())
    }
}

/// Copies `reader` into `log` until end of file (or a write error, which ends the copy
/// and is logged: the replica keeps running either way, its pipe drained no more).
pub async fn copy_into(mut reader: impl AsyncRead + Unpin, mut log: RotatingLog) {
    let mut buf = vec![0u8; 8192];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if let Err(e) = log.write(&buf[..n]).await {
                    tracing::warn!(log = %log.path().display(), error = %e, "instance log write failed");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rotates_at_the_limit_and_keeps_n_files() {
        let dir = std::env::temp_dir().join(format!("ballast-logs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let policy = LogPolicy { dir: dir.clone(), max_bytes: 10, keep: 2 };
        let mut log = RotatingLog::open(&policy, "web-1").await.expect("open");
        log.write(b"0123456789abcdefghij").await.expect("two files' worth");
        log.write(b"KLMNO").await.expect("third");
        log.write(b"pqrstuvwxyz").await.expect("fourth");
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        assert_eq!(read(dir.join("web-1.log")), "uvwxyz");
        assert_eq!(read(dir.join("web-1.log.1")), "KLMNOpqrst");
        assert_eq!(read(dir.join("web-1.log.2")), "abcdefghij");
        assert!(!dir.join("web-1.log.3").exists(), "only `keep` rotated files");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
