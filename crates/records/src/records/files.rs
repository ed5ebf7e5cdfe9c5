//! File fields: which names a record's file field holds after a create or update (the names
//! sent, the files uploaded with the request under `field`, `field+` or `+field`, and the names
//! taken away with `field-`), checked as PocketBase checks them (`maxSelect`, `maxSize`,
//! `mimeTypes`, names that are not the record's), and which files a committed write took away
//! (replaced, removed or deleted with their record) so they can be deleted after the commit.

use pier_storage::{Rows, Value as Db};
use serde_json::{Map, Value, json};

use crate::events::{Action, Change, Payload};
use crate::model::{Collection, Field};
use crate::values::{Invalid, as_list, invalid, stored_list};

/// PocketBase's size limit for a file field whose `maxSize` is 0.
const DEFAULT_MAX_FILE_SIZE: u64 = 5 * 1024 * 1024;

/// A file the request streamed into the store, not yet part of any record.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The form key it came under: `field`, `field+` or `+field`.
    pub key: String,
    /// The name it is stored under.
    pub name: String,
    /// The name the client gave it.
    pub original: String,
    pub size: u64,
    /// The type read from its content.
    pub mime: String,
}

/// A file that a committed write took away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedFile {
    pub collection_id: String,
    pub record_id: String,
    pub name: String,
}

/// The largest file `f` accepts.
pub fn max_file_size(f: &Field) -> u64 {
    match f.opt_f64("maxSize") {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(n) if n >= 1.0 => n as u64,
        _ => DEFAULT_MAX_FILE_SIZE,
    }
}

/// PocketBase's error for a file over `maxSize`.
pub(crate) fn too_large(f: &Field, original: &str) -> Invalid {
    let max = max_file_size(f);
    Invalid {
        code: "validation_file_size_limit",
        message: format!(
            "Failed to upload {original} - the maximum allowed file size is {max} bytes."
        ),
        params: Some(json!({"file": original, "maxSize": max})),
    }
}

/// The error of a create (`creating`) or an update whose upload for `f` passed the field's
/// size limit (the API stops reading it at the limit).
pub fn upload_too_large(f: &Field, original: &str, creating: bool) -> crate::RecordError {
    let action = if creating {
        "Failed to create record."
    } else {
        "Failed to update record."
    };
    crate::engine::validation(action, vec![(f.name.clone(), too_large(f, original))])
}

/// The field's new list of file names, or `None` when the request does not touch it.
/// `current` is the record's list (empty on create).
pub(crate) fn resolve(
    f: &Field,
    body: &Map<String, Value>,
    current: &[String],
    uploads: &[Upload],
) -> Option<Result<Vec<String>, Invalid>> {
    let name = &f.name;
    let (append, prepend, remove) = (format!("{name}+"), format!("+{name}"), format!("{name}-"));
    let mine: Vec<&Upload> = uploads
        .iter()
        .filter(|u| u.key == *name || u.key == append || u.key == prepend)
        .collect();
    let touched = !mine.is_empty()
        || [name, &append, &prepend, &remove]
            .iter()
            .any(|k| body.contains_key(k.as_str()));
    if !touched {
        return None;
    }
    Some(resolve_touched(f, body, current, &mine))
}

fn resolve_touched(
    f: &Field,
    body: &Map<String, Value>,
    current: &[String],
    mine: &[&Upload],
) -> Result<Vec<String>, Invalid> {
    let name = &f.name;
    let (append, prepend, remove) = (format!("{name}+"), format!("+{name}"), format!("{name}-"));
    // Names sent must be files the record has: anything else is not a way to attach a file.
    let sent = |key: &str| body.get(key).map(as_list).unwrap_or_default();
    let mut unknown: Vec<String> = Vec::new();
    let mut keep = |names: Vec<String>| -> Vec<String> {
        names
            .into_iter()
            .filter(|n| {
                let ok = current.contains(n);
                if !ok && !unknown.contains(n) {
                    unknown.push(n.clone());
                }
                ok
            })
            .collect()
    };
    let uploaded_plain = mine.iter().any(|u| u.key == *name);
    let mut list: Vec<String> = match body.get(name.as_str()) {
        Some(v) => keep(as_list(v)),
        // Files uploaded under the plain name replace the field's files.
        None if uploaded_plain => Vec::new(),
        None => current.to_vec(),
    };
    list.extend(keep(sent(&append)));
    let mut front = keep(sent(&prepend));
    if !unknown.is_empty() {
        return Err(Invalid {
            code: "validation_invalid_file",
            message: format!("Invalid new files: [{}].", unknown.join(" ")),
            params: Some(json!({"invalidFiles": unknown})),
        });
    }
    for u in mine {
        if u.key == *name || u.key == append {
            list.push(u.name.clone());
        } else {
            front.push(u.name.clone());
        }
    }
    front.extend(list);
    let gone = sent(&remove);
    let mut out: Vec<String> = Vec::with_capacity(front.len());
    for n in front {
        if !gone.contains(&n) && !out.contains(&n) {
            out.push(n);
        }
    }
    check(f, &out, mine)?;
    Ok(out)
}

fn check(f: &Field, list: &[String], mine: &[&Upload]) -> Result<(), Invalid> {
    let max = match f.opt_f64("maxSelect") {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(n) if n >= 1.0 => n as usize,
        _ => 1,
    };
    if list.len() > max {
        return Err(Invalid {
            code: "validation_too_many_files",
            message: format!("The maximum allowed files is {max}."),
            params: Some(json!({"maxSelect": max})),
        });
    }
    for u in mine.iter().filter(|u| list.contains(&u.name)) {
        if u.size > max_file_size(f) {
            return Err(too_large(f, &u.original));
        }
        let allowed: Vec<String> = f.options.get("mimeTypes").map(as_list).unwrap_or_default();
        if !allowed.is_empty() && !pier_files::mime_allowed(&u.mime, &allowed) {
            return Err(invalid(
                "validation_invalid_mime_type",
                format!(
                    "\"{}\" mime type must be one of: {}.",
                    u.name,
                    allowed.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// The list as the field's JSON value: a string for single fields, an array for multiple.
pub(crate) fn as_value(f: &Field, list: Vec<String>) -> Value {
    if f.is_multi() {
        Value::Array(list.into_iter().map(Value::String).collect())
    } else {
        Value::String(list.into_iter().last().unwrap_or_default())
    }
}

/// The file names of a record's JSON field (what `current` is built from on update).
pub(crate) fn names_in(record: &Map<String, Value>, f: &Field) -> Vec<String> {
    record.get(&f.name).map(as_list).unwrap_or_default()
}

fn row_files(c: &Collection, rows: &Rows, index: usize) -> (String, Vec<(String, Vec<String>)>) {
    let row = rows.iter().nth(index).unwrap_or_default();
    let get = |name: &str| rows.column_index(name).and_then(|i| row.get(i));
    let id = get("id")
        .and_then(Db::as_str)
        .unwrap_or_default()
        .to_owned();
    let files = c
        .fields
        .iter()
        .filter(|f| f.kind == "file")
        .map(|f| (f.name.clone(), stored_list(f, get(&f.name))))
        .collect();
    (id, files)
}

/// The files that `changes` take away once committed: every file of a deleted record, and the
/// files an update no longer lists.
pub(crate) fn removed(changes: &[Change]) -> Vec<RemovedFile> {
    let mut out = Vec::new();
    for ch in changes {
        let (
            Some(Payload::Row {
                collection,
                rows,
                index,
                ..
            }),
            true,
        ) = (
            &ch.record,
            matches!(ch.action, Action::Update | Action::Delete),
        )
        else {
            continue;
        };
        if !collection.fields.iter().any(|f| f.kind == "file") {
            continue;
        }
        let (id, now) = row_files(collection, rows, *index);
        let before = match (ch.action, &ch.previous) {
            (Action::Delete, _) => now.clone(),
            (
                _,
                Some(Payload::Row {
                    collection: pc,
                    rows: pr,
                    index: pi,
                    ..
                }),
            ) => row_files(pc, pr, *pi).1,
            _ => continue,
        };
        for (field, names) in before {
            let kept: &[String] = match ch.action {
                Action::Delete => &[],
                _ => now
                    .iter()
                    .find(|(f, _)| *f == field)
                    .map_or(&[][..], |(_, n)| n.as_slice()),
            };
            for n in names.into_iter().filter(|n| !kept.contains(n)) {
                out.push(RemovedFile {
                    collection_id: collection.id.clone(),
                    record_id: id.clone(),
                    name: n,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(multi: bool) -> Field {
        let mut f: Field = serde_json::from_value(json!({
            "name": "docs", "type": "file", "maxSelect": if multi { 3 } else { 1 },
            "maxSize": 100, "mimeTypes": ["image/png"]
        }))
        .unwrap();
        f.normalize();
        f
    }

    fn up(key: &str, name: &str, size: u64, mime: &str) -> Upload {
        Upload {
            key: key.into(),
            name: name.into(),
            original: format!("orig_{name}"),
            size,
            mime: mime.into(),
        }
    }

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn uploads_replace_append_prepend_and_remove() {
        let f = field(true);
        let cur = vec!["a.png".to_owned(), "b.png".to_owned()];
        let png = |k, n| up(k, n, 10, "image/png");
        let r = |b: Value, u: Vec<Upload>| resolve(&f, &body(b), &cur, &u);
        assert!(r(json!({"title": 1}), vec![]).is_none());
        assert_eq!(
            r(json!({}), vec![png("docs", "n.png")]).unwrap().unwrap(),
            ["n.png"]
        );
        assert_eq!(
            r(json!({}), vec![png("docs+", "n.png")]).unwrap().unwrap(),
            ["a.png", "b.png", "n.png"]
        );
        assert_eq!(
            r(json!({}), vec![png("+docs", "n.png")]).unwrap().unwrap(),
            ["n.png", "a.png", "b.png"]
        );
        assert_eq!(
            r(json!({"docs": ["b.png"]}), vec![png("docs", "n.png")])
                .unwrap()
                .unwrap(),
            ["b.png", "n.png"]
        );
        assert_eq!(
            r(json!({"docs-": "a.png"}), vec![]).unwrap().unwrap(),
            ["b.png"]
        );
        assert!(
            r(json!({"docs": null}), vec![])
                .unwrap()
                .unwrap()
                .is_empty()
        );
        let e = r(json!({"docs": ["zzz.png"]}), vec![])
            .unwrap()
            .unwrap_err();
        assert_eq!(e.code, "validation_invalid_file");
        let four = vec![png("docs+", "x.png"), png("docs+", "y.png")];
        assert_eq!(
            r(json!({}), four).unwrap().unwrap_err().code,
            "validation_too_many_files"
        );
        let big = vec![up("docs", "big.png", 101, "image/png")];
        assert_eq!(
            r(json!({}), big).unwrap().unwrap_err().code,
            "validation_file_size_limit"
        );
        let txt = vec![up("docs", "t.png", 5, "text/plain")];
        assert_eq!(
            r(json!({}), txt).unwrap().unwrap_err().code,
            "validation_invalid_mime_type"
        );
    }

    #[test]
    fn a_single_field_holds_one_file() {
        let f = field(false);
        let cur = vec!["a.png".to_owned()];
        let u = vec![up("docs", "n.png", 1, "image/png")];
        let list = resolve(&f, &Map::new(), &cur, &u).unwrap().unwrap();
        assert_eq!(as_value(&f, list), json!("n.png"));
        let u = vec![up("docs+", "n.png", 1, "image/png")];
        let e = resolve(&f, &Map::new(), &cur, &u).unwrap().unwrap_err();
        assert_eq!(e.code, "validation_too_many_files");
    }
}
