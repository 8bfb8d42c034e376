//! When to try an LLM call again: exponential back-off with jitter, and the provider's own
//! `Retry-After` (seconds, an HTTP date, or OpenAI's `retry-after-ms`).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long to wait before retry number `retry` (0 for the first retry).
///
/// Without a `Retry-After` it is "equal jitter": half of `initial · 2^retry` (capped at
/// `max`) plus a random share of the other half, so replicas that failed together do not
/// retry together. A `Retry-After` is honoured as asked. `None` when the provider asks
/// for longer than `max`: waiting that long inside one call would hold the incident's slot,
/// so the caller treats the provider as unavailable instead.
pub fn retry_delay(
    retry: u32,
    initial: Duration,
    max: Duration,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    if let Some(asked) = retry_after {
        return (asked <= max).then_some(asked);
    }
    let exponential = initial
        .checked_mul(1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX))
        .unwrap_or(max)
        .min(max);
    let half = exponential / 2;
    Some(half + half.mul_f64(random_fraction()))
}

/// A number in [0, 1) that differs between calls and processes. `RandomState` is seeded
/// from the OS per instance, which is all the randomness jitter needs (no `rand` crate).
fn random_fraction() -> f64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or(0),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Reads how long the provider asks us to wait: `retry-after-ms` (OpenAI) first, then
/// `retry-after` as delta-seconds or an HTTP date. Unparseable values are ignored.
pub fn retry_after(headers: &reqwest::header::HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if let Some(millis) = header("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
        if millis.is_finite() && millis >= 0.0 {
            return Some(Duration::from_secs_f64(millis / 1000.0));
        }
    }
    header("retry-after").and_then(|value| parse_retry_after(value, now))
}

/// Parses a `Retry-After` value: delta-seconds (`"120"`, tolerated with a fraction) or an
/// HTTP date in any of the three forms RFC 9110 says recipients must accept. A date in the
/// past means "now".
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (IMF-fixdate), `Sunday, 06-Nov-94 08:49:37 GMT`
/// (RFC 850) or `Sun Nov  6 08:49:37 1994` (asctime).
pub fn parse_http_date(value: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = value
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|part| !part.is_empty())
        .collect();
    let (day, month, year, time) = match parts.as_slice() {
        [_, day, month, year, time, "GMT"] => (
            day.parse::<u32>().ok()?,
            month_number(month)?,
            year.parse::<i64>().ok()?,
            *time,
        ),
        [_, date, time, "GMT"] => {
            let mut fields = date.split('-');
            let day = fields.next()?.parse::<u32>().ok()?;
            let month = month_number(fields.next()?)?;
            let year = fields.next()?.parse::<i64>().ok()?;
            // RFC 9110: a two-digit year more than 50 years ahead is in the past century.
            let year = if year < 100 {
                if year < 70 {
                    2000 + year
                } else {
                    1900 + year
                }
            } else {
                year
            };
            (day, month, year, *time)
        }
        [_, month, day, time, year] => (
            day.parse::<u32>().ok()?,
            month_number(month)?,
            year.parse::<i64>().ok()?,
            *time,
        ),
        _ => return None,
    };
    let mut clock = time.split(':').map(|field| field.parse::<u64>().ok());
    let (hours, minutes, seconds) = (clock.next()??, clock.next()??, clock.next()??);
    if clock.next().is_some()
        || hours > 23
        || minutes > 59
        || seconds > 60
        || !(1..=31).contains(&day)
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let unix = days * 86_400 + (hours * 3600 + minutes * 60 + seconds) as i64;
    let unix = u64::try_from(unix).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(unix))
}

fn month_number(name: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    MONTHS
        .iter()
        .position(|month| month.eq_ignore_ascii_case(name))
        .map(|index| index as u32 + 1)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_http_date_forms_parse_to_the_same_instant() {
        let expected = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(expected)
        );
        assert_eq!(
            parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"),
            Some(expected)
        );
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(expected));
        assert_eq!(parse_http_date("yesterday"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 25:49:37 GMT"), None);
    }

    #[test]
    fn retry_after_reads_seconds_dates_and_milliseconds() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(parse_retry_after("-3", now), None);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(7)));
        headers.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_millis(250)));
    }

    #[test]
    fn back_off_doubles_with_jitter_and_honours_retry_after_up_to_the_cap() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        for retry in 0..6 {
            let full = (initial * 2u32.pow(retry)).min(max);
            let delay = retry_delay(retry, initial, max, None).unwrap();
            assert!(
                delay >= full / 2 && delay <= full,
                "retry {retry}: {delay:?}"
            );
        }
        assert_eq!(
            retry_delay(40, initial, max, None).map(|d| d <= max),
            Some(true)
        );
        assert_eq!(
            retry_delay(0, initial, max, Some(Duration::from_secs(1))),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            retry_delay(0, initial, max, Some(Duration::from_secs(3))),
            None
        );
        let delays: std::collections::HashSet<Duration> = (0..20)
            .filter_map(|_| retry_delay(5, initial, max, None))
            .collect();
        assert!(delays.len() > 1, "jitter varies the delay");
    }
}
