use std::time::Duration;

use proptest::prelude::*;

use super::*;

#[test]
fn parses_a_valid_date() {
    let date = AmzDate::parse("20230101T000000Z").unwrap();
    assert_eq!(date.unix_seconds(), 1_672_531_200);
    assert_eq!(date.date_part(), "20230101");
    assert_eq!(date.as_str(), "20230101T000000Z");
    assert_eq!(date.day(), 19_358);

    let date = AmzDate::parse("20240229T235959Z").unwrap();
    assert_eq!(date.unix_seconds(), 1_709_251_199);
    let date = AmzDate::parse("19691231T235959Z").unwrap();
    assert_eq!(date.unix_seconds(), -1);
    assert_eq!(date.day(), -1);
}

#[test]
fn rejects_malformed_dates() {
    for bad in [
        "",
        "20230101",
        "20230101T000000",
        "20230101T000000ZZ",
        "2023-01-01T00:00:00Z",
        "20230101t000000Z",
        "20230101T000000z",
        "20230101 000000Z",
        "2023010AT000000Z",
        "+0230101T000000Z",
        "20231301T000000Z",
        "20230001T000000Z",
        "20230100T000000Z",
        "20230132T000000Z",
        "20230229T000000Z",
        "21000229T000000Z",
        "20230431T000000Z",
        "20230101T240000Z",
        "20230101T236000Z",
        "20230101T235960Z",
        "２0230101T000000Z",
    ] {
        assert!(AmzDate::parse(bad).is_err(), "{bad:?}");
    }
    assert!(AmzDate::parse("20000229T000000Z").is_ok());
}

#[test]
fn day_counts_match_known_dates() {
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(1969, 12, 31), -1);
    assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    assert_eq!(days_from_civil(2023, 1, 1), 19_358);
    assert_eq!(civil_from_days(19_358), (2023, 1, 1));
    assert_eq!(civil_from_days(-1), (1969, 12, 31));
    assert_eq!(civil_from_days(11_016), (2000, 2, 29));
}

#[test]
fn formats_amz_dates() {
    assert_eq!(
        format_amz_date(system_time(1_672_531_200)),
        "20230101T000000Z"
    );
    assert_eq!(
        format_amz_date(system_time(1_672_531_200) + Duration::from_millis(999)),
        "20230101T000000Z"
    );
    assert_eq!(
        format_amz_date(system_time(1_709_251_199)),
        "20240229T235959Z"
    );
    assert_eq!(format_amz_date(system_time(-1)), "19691231T235959Z");
}

#[test]
fn unix_seconds_rounds_towards_the_past() {
    assert_eq!(unix_seconds(UNIX_EPOCH + Duration::from_millis(1_500)), 1);
    assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_millis(500)), -1);
    assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_secs(2)), -2);
    assert_eq!(unix_seconds(UNIX_EPOCH), 0);
}

proptest! {
    #[test]
    fn civil_round_trip(days in -1_000_000_i64..3_000_000) {
        let (y, m, d) = civil_from_days(days);
        prop_assert!((1..=12).contains(&m));
        prop_assert!((1..=31).contains(&d));
        prop_assert_eq!(days_from_civil(y, m, d), days);
    }

    #[test]
    fn format_then_parse_round_trip(seconds in 0_i64..253_402_300_799) {
        let text = format_amz_date(system_time(seconds));
        let parsed = AmzDate::parse(&text).unwrap();
        prop_assert_eq!(parsed.unix_seconds(), seconds);
    }

    #[test]
    fn parse_never_panics(text in ".{0,24}") {
        let _ = AmzDate::parse(&text);
    }
}
