//! The local API server and the admin command. The whole API they serve is the catalog's
//! (`catalog::app`: every function's router on the routes of `template.yaml`); what is theirs
//! is the command line, and running the worker locally ([`stream`]).

pub mod keys_admin;
pub mod mail_sink;
pub mod stream;

/// The end of a command-line `main`: an error is printed (never a panic or a debug dump) and
/// becomes a failing exit status.
pub fn exit_with(result: Result<(), String>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Keeps a local worker's mail on this machine: unless `MAIL_DIR` or an `SES_ENDPOINT` stand-in
/// is named, messages go into [`default_mail_dir`]. What the local server and `admin worker` do.
pub fn mail_locally(config: &mut shared::Config) {
    if config.mail.mail_dir.is_none() && config.mail.ses_endpoint.is_none() {
        config.mail.mail_dir = Some(default_mail_dir());
    }
}

/// Where the local server and `admin worker` write account mail when `MAIL_DIR` is unset: `mail/`
/// in the directory they run from (the project's, for `cargo run`), as an absolute path.
pub fn default_mail_dir() -> String {
    let here = std::env::current_dir().unwrap_or_else(|_| std::path::PathBuf::from("."));
    here.join("mail").display().to_string()
}

/// The local server's own URL, the issuer of its tokens when `PUBLIC_BASE_URL` is unset: the
/// address it listens on, as the banner prints it (`http://localhost:<port>` when that is every
/// interface).
pub fn own_url(address: std::net::SocketAddr) -> String {
    if address.ip().is_unspecified() {
        format!("http://localhost:{}", address.port())
    } else {
        format!("http://{address}")
    }
}
