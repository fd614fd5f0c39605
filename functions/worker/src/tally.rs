//! What one invocation of the worker did, counted for its metrics line (issue 18: mail sent and
//! failed, purges): written once per invocation by [`crate::Worker::handle`] through
//! [`shared::metrics::Metrics::counts`], by function alone.

use shared::metrics::Metric;

/// The counts of one invocation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Messages handed to the mailer and accepted.
    pub mail_sent: u64,
    /// Messages given up for good: refused by SES, unreadable, unrenderable, or a day old.
    pub mail_given_up: u64,
    /// Messages the mailer could not take now (SES throttling or out of reach): left for the
    /// sweep.
    pub mail_deferred: u64,
    /// Purges run to their end.
    pub purges_done: u64,
    /// Records those runs (finished or not) deleted.
    pub purged_records: u64,
    /// Work that failed on the store (a stream record retried, or a sweep that failed).
    pub work_failed: u64,
}

impl Tally {
    /// The metrics, by their names in CloudWatch.
    pub fn metrics(&self) -> [Metric<'static>; 6] {
        #[allow(clippy::cast_precision_loss)] // counts of one invocation: far below 2^53
        let n = |v: u64| v as f64;
        [
            ("MailSent", "Count", n(self.mail_sent)),
            ("MailGivenUp", "Count", n(self.mail_given_up)),
            ("MailDeferred", "Count", n(self.mail_deferred)),
            ("PurgesDone", "Count", n(self.purges_done)),
            ("PurgedRecords", "Count", n(self.purged_records)),
            ("WorkFailed", "Count", n(self.work_failed)),
        ]
    }
}
