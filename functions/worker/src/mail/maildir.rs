//! Mail written to a directory instead of sent (the local server's `MAIL_DIR`, API.md): each
//! message an RFC 5322 `.eml` file named `<UTC timestamp>-<uuid>.eml`, so that names sort by
//! time, and written whole: a reader never sees a `.eml` file that is not complete.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Mailer, OutgoingMail, SendError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailDir {
    /// Created, with its parents, at the first message if missing.
    pub dir: PathBuf,
}

impl MailDir {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// Writes `mail` as a new `.eml` file and returns its path.
    pub async fn write(&self, mail: &OutgoingMail) -> Result<PathBuf, SendError> {
        self.write_raw(mail.raw.clone()).await
    }

    /// Writes a whole RFC 5322 message as a new `.eml` file and returns its path.
    pub async fn write_raw(&self, raw: Vec<u8>) -> Result<PathBuf, SendError> {
        let dir = self.dir.clone();
        let name = file_name(Utc::now(), Uuid::new_v4());
        tokio::task::spawn_blocking(move || write_whole(&dir, &name, &raw))
            .await
            .map_err(|_| SendError::Transient("mail directory: the write did not finish".into()))?
            .map_err(|e| SendError::Transient(format!("mail directory {}: {}", self.dir.display(), e.kind())))
    }
}

#[async_trait::async_trait]
impl Mailer for MailDir {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), SendError> {
        let path = self.write(mail).await?;
        tracing::info!(kind = mail.kind.as_str(), path = %path.display(), "mail written");
        Ok(())
    }
}

/// `20261201T165210.123456Z-<uuid>.eml`.
fn file_name(now: DateTime<Utc>, id: Uuid) -> String {
    format!("{}-{id}.eml", now.format("%Y%m%dT%H%M%S%.6fZ"))
}

/// The bytes into a temporary file in the same directory (a dot file, not `.eml`), flushed to
/// disk, then renamed: on one file system a rename makes the whole file appear at once.
fn write_whole(dir: &Path, name: &str, raw: &[u8]) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let path = dir.join(name);
    let temporary = dir.join(format!(".{name}.tmp"));
    let written = File::create_new(&temporary)
        .and_then(|mut file| {
            file.write_all(raw)?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&temporary, &path));
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written.map(|()| path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::MailKind;

    fn mail(raw: &[u8]) -> OutgoingMail {
        OutgoingMail {
            kind: MailKind::VerifyEmail,
            to: "a@example.com".into(),
            message_id: "<1@example.com>".into(),
            raw: raw.to_vec(),
        }
    }

    /// `20261201T165210.123456Z-<uuid>.eml`, checked piece by piece.
    fn is_well_named(name: &str) -> bool {
        let Some((stamp, rest)) = name.split_once("Z-") else { return false };
        let Some(id) = rest.strip_suffix(".eml") else { return false };
        let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        let stamp: Vec<&str> = stamp.split(['T', '.']).collect();
        stamp.len() == 3
            && digits(stamp[0], 8)
            && digits(stamp[1], 6)
            && digits(stamp[2], 6)
            && id.len() == 36
            && id == id.to_lowercase()
            && Uuid::parse_str(id).is_ok_and(|id| id.get_version_num() == 4)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("the directory")
            .map(|entry| entry.expect("an entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn names_sort_by_time() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().expect("a time");
        let id = Uuid::nil();
        let name = file_name(at("2026-12-01T16:52:10.123456Z"), id);
        assert_eq!(name, format!("20261201T165210.123456Z-{id}.eml"));
        assert!(file_name(at("2026-12-01T16:52:09.999999Z"), Uuid::max()) < name);
        assert!(is_well_named(&file_name(Utc::now(), Uuid::new_v4())));
        assert!(
            !is_well_named("20261201T165210Z-x.eml") && !is_well_named(".20261201T165210.123456Z-x.eml.tmp")
        );
    }

    #[tokio::test]
    async fn each_message_is_one_whole_eml_file_and_nothing_else_is_left() {
        let root = std::env::temp_dir().join(format!("worker-maildir-{}", Uuid::new_v4()));
        let dir = root.join("mail");
        let mailer = MailDir::new(dir.clone());
        let first = mail(b"Subject: one\r\n\r\nbody\r\n");
        mailer.send(&first).await.expect("written");
        let written = names(&dir);
        assert_eq!(written.len(), 1, "{written:?}");
        assert!(is_well_named(&written[0]), "{written:?}");
        assert_eq!(fs::read(dir.join(&written[0])).expect("read"), first.raw);

        let second = mail(b"Subject: two\r\n\r\n");
        let path = mailer.write(&second).await.expect("written");
        assert_eq!(fs::read(&path).expect("read"), second.raw);
        let written = names(&dir);
        assert_eq!(written.len(), 2, "no temporary file left: {written:?}");
        assert!(written.iter().all(|name| is_well_named(name)), "{written:?}");

        // A directory that cannot be made: worth trying again once it can.
        let blocked = MailDir::new(dir.join(&written[0]).join("sub"));
        assert!(matches!(blocked.send(&first).await, Err(SendError::Transient(_))));
        fs::remove_dir_all(&root).expect("clean up");
    }
}
