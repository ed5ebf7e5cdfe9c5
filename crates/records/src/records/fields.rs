//! `fields`: the keys a client asked for, with `:excerpt(max, ellipsis)` on text.

use serde_json::{Map, Value};

/// Keeps only the requested keys (`fields=id,title,expand.author.name,body:excerpt(20,true)`,
/// `*` for every key at a level).
pub fn project(record: &mut Map<String, Value>, fields: &str) {
    let specs: Vec<&str> = split_top_level(fields)
        .into_iter()
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .collect();
    if specs.is_empty() {
        return;
    }
    project_level(
        record,
        &specs
            .iter()
            .map(|s| s.split('.').collect::<Vec<_>>())
            .collect::<Vec<_>>(),
    );
}

/// Splits on commas outside parentheses (`a,b:excerpt(10,true)` is two items).
fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, ch) in s.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth <= 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn project_level(record: &mut Map<String, Value>, specs: &[Vec<&str>]) {
    let mut keep: Map<String, Value> = Map::new();
    let wildcard = specs.iter().any(|s| s.len() == 1 && s[0] == "*");
    for spec in specs {
        let (head, modifier) = match spec[0].split_once(':') {
            Some((h, m)) => (h, Some(m)),
            None => (spec[0], None),
        };
        if head == "*" {
            continue;
        }
        let Some(value) = record.get(head) else {
            continue;
        };
        if spec.len() == 1 {
            let v = match (modifier, value) {
                (Some(m), Value::String(s)) if m.starts_with("excerpt(") => {
                    Value::String(excerpt(s, m))
                }
                _ => value.clone(),
            };
            keep.insert(head.to_owned(), v);
        } else {
            let sub: Vec<Vec<&str>> = specs
                .iter()
                .filter(|s| s.len() > 1 && s[0] == head)
                .map(|s| s[1..].to_vec())
                .collect();
            let mut v = value.clone();
            match &mut v {
                Value::Object(m) if head == "expand" => {
                    // expand.<relation>.<field>: project each expanded record.
                    let mut out = Map::new();
                    for (rel, inner) in m.iter_mut() {
                        let rel_specs: Vec<Vec<&str>> = sub
                            .iter()
                            .filter(|s| s[0] == rel.as_str())
                            .map(|s| s[1..].to_vec())
                            .collect();
                        if rel_specs.is_empty() {
                            continue;
                        }
                        project_value(inner, &rel_specs);
                        out.insert(rel.clone(), inner.clone());
                    }
                    v = Value::Object(out);
                }
                other => project_value(other, &sub),
            }
            keep.insert(head.to_owned(), v);
        }
    }
    if wildcard {
        for (k, v) in std::mem::take(record) {
            keep.entry(k).or_insert(v);
        }
    }
    *record = keep;
}

fn project_value(v: &mut Value, specs: &[Vec<&str>]) {
    if specs.iter().any(|s| s.is_empty()) {
        return;
    }
    match v {
        Value::Object(m) => project_level(m, specs),
        Value::Array(items) => {
            for i in items {
                project_value(i, specs);
            }
        }
        _ => {}
    }
}

/// `excerpt(max[, ellipsis])`: the text without HTML tags, cut to `max` characters.
fn excerpt(s: &str, modifier: &str) -> String {
    let args = modifier
        .trim_start_matches("excerpt(")
        .trim_end_matches(')');
    let mut parts = args.split(',').map(str::trim);
    let max: usize = parts.next().and_then(|n| n.parse().ok()).unwrap_or(100);
    let ellipsis = parts.next().is_some_and(|e| e == "true" || e == "1");
    let mut text = String::with_capacity(s.len());
    let mut in_tag = false;
    for ch in s.chars() {
        match ch {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() <= max {
        return text;
    }
    let mut cut: String = text.chars().take(max).collect();
    if ellipsis {
        cut = cut.trim_end().to_owned();
        cut.push_str("...");
    }
    cut
}
