//! A five-field cron expression (`minute hour day-of-month month day-of-week`), evaluated in
//! UTC. Fields take `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, and lists `a,b`;
//! day-of-week 0 and 7 are Sunday. As in classic cron, when both day fields are restricted a
//! day matching either runs. `@hourly`, `@daily` (`@midnight`), `@weekly` and `@monthly` are
//! accepted too.

use std::fmt;

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule {
    source: String,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    days_restricted: bool,
    weekdays_restricted: bool,
}

/// Why a cron expression was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cron expression `{expression}`: {problem}")]
pub struct CronError {
    expression: String,
    problem: String,
}

fn parse_field(field: &str, min: u32, max: u32, name: &str) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("bad step `{s}` in the {name} field"))?;
                (r, step)
            }
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let a: u32 = a.parse().map_err(|_| format!("bad {name} `{a}`"))?;
            let b: u32 = b.parse().map_err(|_| format!("bad {name} `{b}`"))?;
            (a, b)
        } else {
            let a: u32 = range.parse().map_err(|_| format!("bad {name} `{range}`"))?;
            // `5/15` means from 5 to the end, every 15.
            (a, if step > 1 { max } else { a })
        };
        if lo < min || hi > max || lo > hi {
            return Err(format!("{name} `{range}` is outside {min}-{max}"));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, field != "*"))
}

impl CronSchedule {
    /// Parses an expression.
    ///
    /// # Errors
    /// [`CronError`] naming the expression and the problem.
    pub fn parse(expression: &str) -> Result<CronSchedule, CronError> {
        let err = |problem: String| CronError {
            expression: expression.to_owned(),
            problem,
        };
        let expanded = match expression.trim() {
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            return Err(err(format!(
                "expected 5 fields (minute hour day month weekday), got {}",
                fields.len()
            )));
        };
        let (minutes, _) = parse_field(minute, 0, 59, "minute").map_err(err)?;
        let (hours, _) = parse_field(hour, 0, 23, "hour").map_err(err)?;
        let (days, days_restricted) = parse_field(day, 1, 31, "day").map_err(err)?;
        let (months, _) = parse_field(month, 1, 12, "month").map_err(err)?;
        let (mut weekdays, weekdays_restricted) =
            parse_field(weekday, 0, 7, "weekday").map_err(err)?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(CronSchedule {
            source: expression.to_owned(),
            minutes,
            hours,
            days,
            months,
            weekdays,
            days_restricted,
            weekdays_restricted,
        })
    }

    fn day_matches(&self, days_since_epoch: i64) -> bool {
        let (_, month, day) = pier_core::time::civil_from_days(days_since_epoch);
        if self.months & (1 << month) == 0 {
            return false;
        }
        // 1970-01-01 was a Thursday (4).
        let weekday = (days_since_epoch + 4).rem_euclid(7);
        let by_day = self.days & (1 << day) != 0;
        let by_weekday = self.weekdays & (1 << weekday) != 0;
        if self.days_restricted && self.weekdays_restricted {
            by_day || by_weekday
        } else {
            by_day && by_weekday
        }
    }

    /// The first matching minute strictly after `unix_seconds`, in Unix seconds (UTC); `None`
    /// when nothing matches within five years (e.g. February 30th).
    pub fn next_after(&self, unix_seconds: i64) -> Option<i64> {
        let start_minute = unix_seconds.div_euclid(60) + 1;
        let first_day = start_minute.div_euclid(1440);
        for day in first_day..first_day + 5 * 366 {
            if !self.day_matches(day) {
                continue;
            }
            let from = if day == first_day {
                start_minute.rem_euclid(1440)
            } else {
                0
            };
            for m in from..1440 {
                if self.hours & (1 << (m / 60)) != 0 && self.minutes & (1 << (m % 60)) != 0 {
                    return Some((day * 1440 + m) * 60);
                }
            }
        }
        None
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn daily_at_three() {
        let c = CronSchedule::parse("0 3 * * *").unwrap();
        assert_eq!(c.next_after(0), Some(3 * 3600));
        assert_eq!(c.next_after(3 * 3600), Some(DAY + 3 * 3600));
        assert_eq!(c.next_after(3 * 3600 - 1), Some(3 * 3600));
    }

    #[test]
    fn steps_lists_and_weekdays() {
        let c = CronSchedule::parse("*/15 * * * *").unwrap();
        assert_eq!(c.next_after(60), Some(15 * 60));
        // Sundays at 04:30; 1970-01-04 was a Sunday.
        let c = CronSchedule::parse("30 4 * * 7").unwrap();
        assert_eq!(c.next_after(0), Some(3 * DAY + 4 * 3600 + 1800));
        let c = CronSchedule::parse("0 0 1,15 * *").unwrap();
        assert_eq!(c.next_after(0), Some(14 * DAY));
        assert_eq!(
            CronSchedule::parse("@daily").unwrap().next_after(1),
            Some(DAY)
        );
    }

    #[test]
    fn bad_expressions_are_refused_with_the_reason() {
        for bad in [
            "",
            "0 3 * *",
            "60 * * * *",
            "* 24 * * *",
            "*/0 * * * *",
            "a * * * *",
            "5-1 * * * *",
        ] {
            let e = CronSchedule::parse(bad).unwrap_err();
            assert!(e.to_string().contains("invalid cron expression"), "{e}");
        }
        assert_eq!(
            CronSchedule::parse("0 0 30 2 *").unwrap().next_after(0),
            None
        );
    }
}
