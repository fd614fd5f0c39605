//! The throttle of password checks (API.md, "Auth"): a login, or a `current_password` check,
//! is counted *before* the password is verified, atomically, under three counters, each in its
//! own window of `LOGIN_WINDOW_SECONDS`, in this order:
//!
//! - the source address, whatever the emails (`LOGIN_MAX_FAILURES_PER_ADDRESS`, 100): one
//!   password sprayed over many accounts. Checked first, so an address over its limit costs one
//!   write to its own counter per request and touches nothing of anyone else's;
//! - the email **from this source address** (`LOGIN_MAX_FAILURES`, 5): a guesser at one
//!   address is stopped, and the account's owner at another address never is;
//! - the email from all addresses together (`LOGIN_MAX_FAILURES_PER_EMAIL`, 50): a guess at one
//!   account spread over many addresses. It is counted only while under its limit, in one
//!   conditional write, and a request it refuses writes nothing to it, so a flood cannot make
//!   it a hot record nor concurrent requests overshoot it; an address the
//!   account logged in from in the last 30 days is exempt (it is held by the two counters
//!   above), so strangers with many addresses cannot lock the owner out either.
//!
//! A refused request still counts under the counters it reached: an address hammering a locked
//! email locks itself. A check that succeeds clears its own (email, address) counter and takes
//! itself back from the other two, so those count failures only: a busy office behind one
//! address is not locked out by its own logins. Unknown emails are counted exactly as known
//! ones, under the same key an account's email would have.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::SourceAddress;
use crate::domain::Email;
use crate::error::{ApiError, ApiResult};
use crate::repo::AttemptWindow;
use crate::state::AppState;

/// How long a login address stays exempt from the all-addresses limit of its account.
pub const REMEMBER_ADDRESS_DAYS: i64 = 30;

/// The counters one check falls under, and the windows it was counted in: what a success
/// clears or takes back.
#[derive(Debug)]
pub struct Admitted {
    pair: Counted,
    by_address: Counted,
    /// Not counted when the address is exempt from the all-addresses limit.
    by_email: Option<Counted>,
    address: SourceAddress,
}

/// A counter and the window an attempt was counted in.
#[derive(Debug)]
struct Counted(String, DateTime<Utc>);

/// The counter of `email_key` from `address`. An address holds no `#`, so the parts cannot run
/// into each other whatever the email holds.
fn pair_counter(address: &SourceAddress, email_key: &str) -> String {
    format!("EA#{}#{email_key}", address.as_str())
}

fn address_counter(address: &SourceAddress) -> String {
    format!("A#{}", address.as_str())
}

fn email_counter(email_key: &str) -> String {
    format!("E#{email_key}")
}

/// The key the throttle counts a typed email under: the account key of the address it parsed
/// as (`Email::key`), so every spelling of one address is one counter; for what is no address
/// at all, the text trimmed and lower-cased.
pub fn email_key(typed: &str, parsed: Option<&Email>) -> String {
    parsed.map(Email::key).unwrap_or_else(|| typed.trim().to_lowercase())
}

/// Counts one password check of `email_key` from `address` (by `user`, when an account has the
/// email), or refuses it with 429 and `Retry-After` when a limit is reached.
pub async fn admit(
    state: &AppState,
    email_key: &str,
    address: &SourceAddress,
    user: Option<Uuid>,
) -> ApiResult<Admitted> {
    let config = &state.config;
    let (now, window) = (state.clock.now(), config.login_window_secs);
    let throttle = &state.repos.throttle;
    let address_key = address_counter(address);
    let by_address = throttle.count_attempt(&address_key, now, window).await?;
    if by_address.count > config.login_max_failures_per_address {
        return Err(too_many(now, window, by_address));
    }
    let pair = pair_counter(address, email_key);
    let by_pair = throttle.count_attempt(&pair, now, window).await?;
    if by_pair.count > config.login_max_failures {
        return Err(too_many(now, window, by_pair));
    }
    // Counted only while under its limit, in one conditional write: a full window is refused
    // without a write (a flood cannot make this record hot), and concurrent requests cannot
    // overshoot it. The owner's recent addresses are exempt, and not counted.
    let email_key = email_counter(email_key);
    let by_email = match throttle
        .count_attempt_below(&email_key, now, window, config.login_max_failures_per_email)
        .await?
    {
        Ok(counted) => Some(Counted(email_key, counted.started_at)),
        Err(full) => {
            let exempt = match user {
                Some(user) if !address.is_unknown() => {
                    throttle.knows_address(user, address.as_str(), now).await?
                }
                _ => false,
            };
            if !exempt {
                return Err(too_many(now, window, full));
            }
            None
        }
    };
    Ok(Admitted {
        pair: Counted(pair, by_pair.started_at),
        by_address: Counted(address_key, by_address.started_at),
        by_email,
        address: address.clone(),
    })
}

/// The check succeeded: its own (email, address) counter is cleared, and it is taken back from
/// the others, which count failures only.
pub async fn succeeded(state: &AppState, admitted: &Admitted) -> ApiResult<()> {
    let clear = async { Ok(state.repos.throttle.clear_attempts(&admitted.pair.0).await?) };
    let by_email = async {
        match &admitted.by_email {
            Some(counted) => forgive(state, counted).await,
            None => Ok(()),
        }
    };
    let (a, b, c) = tokio::join!(forgive(state, &admitted.by_address), by_email, clear);
    a.and(b).and(c)
}

/// The check succeeded as a login: also remember the address for the account, for 30 days
/// (not the shared `unknown` bucket, which is nobody's address).
pub async fn logged_in(state: &AppState, admitted: &Admitted, user: Uuid) -> ApiResult<()> {
    let until = state.clock.now() + Duration::days(REMEMBER_ADDRESS_DAYS);
    let remember = async {
        if admitted.address.is_unknown() {
            return Ok(());
        }
        Ok(state.repos.throttle.remember_address(user, admitted.address.as_str(), until).await?)
    };
    let (a, b) = tokio::join!(succeeded(state, admitted), remember);
    a.and(b)
}

async fn forgive(state: &AppState, Counted(counter, started_at): &Counted) -> ApiResult<()> {
    Ok(state.repos.throttle.forgive_attempt(counter, *started_at).await?)
}

fn too_many(now: DateTime<Utc>, window_secs: i64, window: AttemptWindow) -> ApiError {
    too_many_because(now, window_secs, window, "Too many failed login attempts; try again later")
}

fn too_many_because(
    now: DateTime<Utc>,
    window_secs: i64,
    window: AttemptWindow,
    detail: &'static str,
) -> ApiError {
    let reopens = window.started_at + Duration::seconds(window_secs);
    let millis = (reopens - now).num_milliseconds().max(0) as u64;
    ApiError::TooManyRequests { retry_after_secs: millis.div_ceil(1000).max(1), detail }
}

/// The window of the mail throttles: an hour (API.md).
pub const MAIL_WINDOW_SECS: i64 = 3600;

/// Counts a request for mail (a password recovery, a new verification message) from `address`,
/// or refuses it with 429 past `MAIL_MAX_REQUESTS_PER_ADDRESS` (20) in the hour. Counted only
/// while under the limit, in one conditional write, as the per-email login limit is.
pub async fn admit_mail_request(state: &AppState, address: &SourceAddress) -> ApiResult<()> {
    let now = state.clock.now();
    let counter = format!("M#{}", address.as_str());
    let max = state.config.mail_max_requests_per_address;
    match state.repos.throttle.count_attempt_below(&counter, now, MAIL_WINDOW_SECS, max).await? {
        Ok(_) => Ok(()),
        Err(full) => {
            Err(too_many_because(now, MAIL_WINDOW_SECS, full, "Too many requests for mail; try again later"))
        }
    }
}

/// Counts a message to the address `email_key` (recovery and verification together), unless
/// `MAIL_MAX_PER_RECIPIENT` (3) were counted in the hour: false, and the message is not sent.
/// What the worker asks before it sends.
pub async fn admit_message_to(
    throttle: &dyn crate::repo::ThrottleRepo,
    config: &crate::Config,
    email_key: &str,
    now: DateTime<Utc>,
) -> crate::repo::RepoResult<bool> {
    let counter = format!("R#{email_key}");
    Ok(throttle
        .count_attempt_below(&counter, now, MAIL_WINDOW_SECS, config.mail_max_per_recipient)
        .await?
        .is_ok())
}
