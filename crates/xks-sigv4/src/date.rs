//! `X-Amz-Date` parsing and formatting, and UTC calendar arithmetic.
//!
//! The conversions between a day count and a proleptic Gregorian date use the well-known
//! era-based algorithm (400-year eras of 146 097 days), so no date crate is needed.

use std::time::{SystemTime, UNIX_EPOCH};

const SECONDS_PER_DAY: i64 = 86_400;

/// A parsed `X-Amz-Date` value, `YYYYMMDD'T'HHMMSS'Z'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AmzDate<'a> {
    text: &'a str,
    unix_seconds: i64,
}

// === impl AmzDate ===

impl<'a> AmzDate<'a> {
    /// Parses `YYYYMMDD'T'HHMMSS'Z'` strictly: 16 characters, a real calendar date, hours
    /// 00–23, minutes and seconds 00–59. The error is a static reason for the log.
    pub(crate) fn parse(text: &'a str) -> Result<Self, &'static str> {
        let bytes = text.as_bytes();
        if bytes.len() != 16 {
            return Err("it must be 16 characters, YYYYMMDD'T'HHMMSS'Z'");
        }
        if bytes[8] != b'T' || bytes[15] != b'Z' {
            return Err("it must have the form YYYYMMDD'T'HHMMSS'Z'");
        }
        let field = |range: std::ops::Range<usize>| {
            bytes
                .get(range)
                .and_then(parse_digits)
                .ok_or("it must have the form YYYYMMDD'T'HHMMSS'Z'")
        };
        let year = field(0..4)?;
        let month = field(4..6)?;
        let day = field(6..8)?;
        let hour = field(9..11)?;
        let minute = field(11..13)?;
        let second = field(13..15)?;
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return Err("the date is not a calendar date");
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err("the time of day is out of range");
        }
        let days = days_from_civil(i64::from(year), month, day);
        let unix_seconds = days * SECONDS_PER_DAY
            + i64::from(hour) * 3600
            + i64::from(minute) * 60
            + i64::from(second);
        Ok(Self { text, unix_seconds })
    }

    /// The `YYYYMMDD` part, which the credential scope date must equal.
    pub(crate) fn date_part(&self) -> &'a str {
        // The text was checked to be 16 ASCII bytes.
        self.text.get(..8).unwrap_or_default()
    }

    /// The whole value as it appeared in the header.
    pub(crate) fn as_str(&self) -> &'a str {
        self.text
    }

    /// Seconds since the Unix epoch.
    pub(crate) fn unix_seconds(&self) -> i64 {
        self.unix_seconds
    }

    /// Days since the Unix epoch (1970-01-01 is day 0).
    pub(crate) fn day(&self) -> i64 {
        self.unix_seconds.div_euclid(SECONDS_PER_DAY)
    }
}

/// Seconds since the Unix epoch, rounded down (towards the past) to a whole second.
/// Saturates for times more than 292 billion years away.
pub(crate) fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => {
            let before = before.duration();
            let whole = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
            if before.subsec_nanos() > 0 {
                whole.saturating_neg().saturating_sub(1)
            } else {
                whole.saturating_neg()
            }
        }
    }
}

/// The `SystemTime` for a number of seconds since the Unix epoch.
#[cfg(test)]
pub(crate) fn system_time(unix_seconds: i64) -> SystemTime {
    let magnitude = std::time::Duration::from_secs(unix_seconds.unsigned_abs());
    if unix_seconds >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// Formats a time as `YYYYMMDD'T'HHMMSS'Z'` (UTC), dropping fractions of a second.
#[cfg(test)]
pub(crate) fn format_amz_date(time: SystemTime) -> String {
    let seconds = unix_seconds(time);
    let (year, month, day) = civil_from_days(seconds.div_euclid(SECONDS_PER_DAY));
    let second_of_day = seconds.rem_euclid(SECONDS_PER_DAY);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

fn parse_digits(bytes: &[u8]) -> Option<u32> {
    bytes.iter().try_fold(0_u32, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

fn is_leap_year(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date; `month` is 1–12.
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    // Count years from March, so the leap day is the last day of the "year".
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian `(year, month, day)` of a day count since 1970-01-01.
#[cfg(test)]
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // day is 1..=31 and month 1..=12 by construction.
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests;
