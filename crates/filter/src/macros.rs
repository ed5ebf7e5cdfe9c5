//! Values of the date macros, computed in UTC without a date library.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::ast::DateMacro;
use crate::resolve::Param;

const SECONDS_PER_DAY: i64 = 86_400;

impl DateMacro {
    /// Returns the macro's value at `now`, in UTC, in PocketBase's formats: datetimes are text
    /// such as `2024-05-06 07:08:09.123Z`; `@second` … `@year` are integers (`@weekday`: Sunday
    /// is 0).
    pub fn value_at(self, now: SystemTime) -> Param {
        let milliseconds = match now.duration_since(UNIX_EPOCH) {
            Ok(duration) => i64::try_from(duration.as_millis()).unwrap_or(i64::MAX),
            Err(error) => -i64::try_from(error.duration().as_millis()).unwrap_or(i64::MAX),
        };
        let day = |milliseconds: i64| milliseconds.div_euclid(SECONDS_PER_DAY * 1000);
        let now_time = DateTime::from_milliseconds(milliseconds);
        let start_of = |year: i64, month: i64, day_of_month: i64| DateTime {
            year,
            month,
            day: day_of_month,
            seconds_of_day: 0,
            milliseconds: 0,
        };
        let end_of = |year: i64, month: i64, day_of_month: i64| DateTime {
            year,
            month,
            day: day_of_month,
            seconds_of_day: SECONDS_PER_DAY - 1,
            milliseconds: 999,
        };
        let DateTime {
            year,
            month,
            day: today,
            ..
        } = now_time;
        match self {
            DateMacro::Now => Param::Text(now_time.to_string()),
            DateMacro::Second => Param::Integer(now_time.seconds_of_day % 60),
            DateMacro::Minute => Param::Integer(now_time.seconds_of_day / 60 % 60),
            DateMacro::Hour => Param::Integer(now_time.seconds_of_day / 3600),
            DateMacro::Weekday => Param::Integer((day(milliseconds) + 4).rem_euclid(7)),
            DateMacro::Day => Param::Integer(today),
            DateMacro::Month => Param::Integer(month),
            DateMacro::Year => Param::Integer(year),
            DateMacro::TodayStart => Param::Text(start_of(year, month, today).to_string()),
            DateMacro::TodayEnd => Param::Text(end_of(year, month, today).to_string()),
            DateMacro::MonthStart => Param::Text(start_of(year, month, 1).to_string()),
            DateMacro::MonthEnd => {
                Param::Text(end_of(year, month, days_in_month(year, month)).to_string())
            }
            DateMacro::YearStart => Param::Text(start_of(year, 1, 1).to_string()),
            DateMacro::YearEnd => Param::Text(end_of(year, 12, 31).to_string()),
            DateMacro::Yesterday => Param::Text(
                DateTime::from_milliseconds(milliseconds.saturating_sub(SECONDS_PER_DAY * 1000))
                    .to_string(),
            ),
            DateMacro::Tomorrow => Param::Text(
                DateTime::from_milliseconds(milliseconds.saturating_add(SECONDS_PER_DAY * 1000))
                    .to_string(),
            ),
        }
    }
}

struct DateTime {
    year: i64,
    month: i64,
    day: i64,
    seconds_of_day: i64,
    milliseconds: i64,
}

impl DateTime {
    fn from_milliseconds(milliseconds: i64) -> DateTime {
        let days = milliseconds.div_euclid(SECONDS_PER_DAY * 1000);
        let rest = milliseconds.rem_euclid(SECONDS_PER_DAY * 1000);
        let (year, month, day) = civil_from_days(days);
        DateTime {
            year,
            month,
            day,
            seconds_of_day: rest / 1000,
            milliseconds: rest % 1000,
        }
    }
}

impl std::fmt::Display for DateTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}Z",
            self.year,
            self.month,
            self.day,
            self.seconds_of_day / 3600,
            self.seconds_of_day / 60 % 60,
            self.seconds_of_day % 60,
            self.milliseconds
        )
    }
}

/// Converts days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn text(date_macro: DateMacro, now: SystemTime) -> Param {
        date_macro.value_at(now)
    }

    #[test]
    fn macros_match_known_dates_in_utc() {
        // 2024-02-29 13:14:15.678 UTC, a Thursday in a leap year.
        let now = UNIX_EPOCH + Duration::from_millis(1_709_212_455_678);
        let expect = |date_macro, value: &str| {
            assert_eq!(
                text(date_macro, now),
                Param::Text(value.into()),
                "{date_macro:?}"
            );
        };
        expect(DateMacro::Now, "2024-02-29 13:14:15.678Z");
        expect(DateMacro::TodayStart, "2024-02-29 00:00:00.000Z");
        expect(DateMacro::TodayEnd, "2024-02-29 23:59:59.999Z");
        expect(DateMacro::MonthStart, "2024-02-01 00:00:00.000Z");
        expect(DateMacro::MonthEnd, "2024-02-29 23:59:59.999Z");
        expect(DateMacro::YearStart, "2024-01-01 00:00:00.000Z");
        expect(DateMacro::YearEnd, "2024-12-31 23:59:59.999Z");
        expect(DateMacro::Yesterday, "2024-02-28 13:14:15.678Z");
        expect(DateMacro::Tomorrow, "2024-03-01 13:14:15.678Z");
        assert_eq!(text(DateMacro::Second, now), Param::Integer(15));
        assert_eq!(text(DateMacro::Minute, now), Param::Integer(14));
        assert_eq!(text(DateMacro::Hour, now), Param::Integer(13));
        assert_eq!(text(DateMacro::Weekday, now), Param::Integer(4));
        assert_eq!(text(DateMacro::Day, now), Param::Integer(29));
        assert_eq!(text(DateMacro::Month, now), Param::Integer(2));
        assert_eq!(text(DateMacro::Year, now), Param::Integer(2024));
    }

    #[test]
    fn times_before_the_epoch_do_not_panic() {
        let now = UNIX_EPOCH - Duration::from_millis(1);
        assert_eq!(
            DateMacro::Now.value_at(now),
            Param::Text("1969-12-31 23:59:59.999Z".into())
        );
        assert_eq!(DateMacro::Weekday.value_at(now), Param::Integer(3));
    }
}
