//! Translating SQLite `strftime` formats and modifiers to PostgreSQL.
//!
//! Covered format specifiers: `%Y` `%m` `%d` `%H` `%M` `%S` `%f` (`SS.MS`) `%j` `%%`, and `%W`,
//! approximated by the ISO week (`IW`; SQLite counts weeks from the first Monday of the year, so
//! the two differ in early January). Others (`%w` `%s` `%J` …) are refused.
//! Covered modifiers: `start of day|month|year`, `±N day(s)|hour(s)|minute(s)|second(s)|
//! month(s)|year(s)`, and `utc` (a no-op: times are already UTC). Others are refused.

/// A modifier, as PostgreSQL applies it to a `timestamp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PgModifier {
    /// `date_trunc(unit, …)`.
    Truncate(&'static str),
    /// `… + interval`, the interval text bound as a parameter.
    Add(String),
    /// Nothing to do.
    None,
}

/// Returns the `to_char` pattern for a SQLite `strftime` format. Literal text is double-quoted
/// so that `to_char` copies it instead of reading it as a pattern.
pub(crate) fn to_char_pattern(format: &str) -> Result<String, String> {
    let mut pattern = String::new();
    let mut literal = String::new();
    let mut chars = format.chars();
    while let Some(character) = chars.next() {
        if character != '%' {
            literal.push(character);
            continue;
        }
        let specifier = chars
            .next()
            .ok_or_else(|| "the format ends with a lone `%`".to_owned())?;
        let translated = match specifier {
            '%' => {
                literal.push('%');
                continue;
            }
            'Y' => "YYYY",
            'm' => "MM",
            'd' => "DD",
            'H' => "HH24",
            'M' => "MI",
            'S' => "SS",
            'f' => "SS.MS",
            'j' => "DDD",
            'W' => "IW",
            other => return Err(format!("format specifier `%{other}` is not supported")),
        };
        flush_literal(&mut pattern, &mut literal);
        pattern.push_str(translated);
    }
    flush_literal(&mut pattern, &mut literal);
    Ok(pattern)
}

fn flush_literal(pattern: &mut String, literal: &mut String) {
    if literal.is_empty() {
        return;
    }
    pattern.push('"');
    for character in literal.chars() {
        if matches!(character, '"' | '\\') {
            pattern.push('\\');
        }
        pattern.push(character);
    }
    pattern.push('"');
    literal.clear();
}

/// Returns how PostgreSQL applies a SQLite datetime modifier.
pub(crate) fn postgres_modifier(modifier: &str) -> Result<PgModifier, String> {
    let normalized = modifier.trim().to_ascii_lowercase();
    match normalized.as_str() {
        "start of day" => return Ok(PgModifier::Truncate("day")),
        "start of month" => return Ok(PgModifier::Truncate("month")),
        "start of year" => return Ok(PgModifier::Truncate("year")),
        "utc" => return Ok(PgModifier::None),
        _ => {}
    }
    let unsupported = || format!("modifier `{modifier}` is not supported on PostgreSQL");
    let mut words = normalized.split_whitespace();
    let (Some(amount), Some(unit), None) = (words.next(), words.next(), words.next()) else {
        return Err(unsupported());
    };
    let digits = amount.trim_start_matches(['+', '-']);
    let sign_count = amount.len() - digits.len();
    let valid_amount = sign_count <= 1
        && !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.parse::<f64>().is_ok_and(f64::is_finite);
    let unit = match unit.trim_end_matches('s') {
        "day" => "days",
        "hour" => "hours",
        "minute" => "minutes",
        "second" => "seconds",
        "month" => "months",
        "year" => "years",
        _ => return Err(unsupported()),
    };
    if !valid_amount {
        return Err(unsupported());
    }
    Ok(PgModifier::Add(format!("{amount} {unit}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_specifiers_translate_and_literals_are_quoted() {
        assert_eq!(
            to_char_pattern("%Y-%m-%d %H:%M:%S").unwrap(),
            r#"YYYY"-"MM"-"DD" "HH24":"MI":"SS"#
        );
        assert_eq!(
            to_char_pattern("day %j, 100%%").unwrap(),
            r#""day "DDD", 100%""#
        );
        assert_eq!(to_char_pattern("%W").unwrap(), "IW");
        assert!(to_char_pattern("%w").is_err());
        assert!(to_char_pattern("%").is_err());
    }

    #[test]
    fn modifiers_translate_to_truncations_and_intervals() {
        assert_eq!(
            postgres_modifier("start of month"),
            Ok(PgModifier::Truncate("month"))
        );
        assert_eq!(
            postgres_modifier("+1 day"),
            Ok(PgModifier::Add("+1 days".into()))
        );
        assert_eq!(
            postgres_modifier("-2.5 Hours"),
            Ok(PgModifier::Add("-2.5 hours".into()))
        );
        for bad in [
            "weekday 0",
            "+1 fortnight",
            "1",
            "++1 day",
            "+x day",
            "1 day later",
        ] {
            assert!(postgres_modifier(bad).is_err(), "{bad}");
        }
    }
}
