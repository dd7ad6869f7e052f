//! Timestamps as keyrotate prints them: RFC 3339 in UTC, whole seconds.

use std::time::SystemTime;

/// `2026-11-21T10:15:00Z`. Times outside jiff's range (years -9999..=9999) are clamped to it,
/// so a hostile mtime can never make formatting fail.
pub fn rfc3339_utc(time: SystemTime) -> String {
    timestamp(time).strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `2026-11-21`, for people.
pub fn date_utc(time: SystemTime) -> String {
    timestamp(time).strftime("%Y-%m-%d").to_string()
}

fn timestamp(time: SystemTime) -> jiff::Timestamp {
    jiff::Timestamp::try_from(time).unwrap_or_else(|_| {
        if time < SystemTime::UNIX_EPOCH {
            jiff::Timestamp::MIN
        } else {
            jiff::Timestamp::MAX
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_whole_seconds_in_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_255_200_500);
        assert_eq!(rfc3339_utc(t), "2026-11-21T10:00:00Z");
        assert_eq!(date_utc(t), "2026-11-21");
    }

    #[test]
    fn hostile_times_do_not_panic() {
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(400 * 365 * 86_400);
        assert!(rfc3339_utc(before).starts_with("1"));
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(u32::MAX as u64 * 1000);
        assert!(!rfc3339_utc(far).is_empty());
    }
}
