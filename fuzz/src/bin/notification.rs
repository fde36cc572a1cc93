//! SQS message bodies: S3 notifications, SNS envelopes, EventBridge events. Any input must give
//! a notice or an error, never a panic.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(body) = std::str::from_utf8(data) {
            let _ = veil::daemon::events::parse(body);
        }
    });
}
