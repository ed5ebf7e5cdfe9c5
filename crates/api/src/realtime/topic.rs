//! Subscription topics as PocketBase's clients write them: `collection/*`, `collection/id`
//! (or the bare, older `collection`), with an optional `?options=<JSON>` carrying `query`
//! (`expand`, `fields`, `filter`, anything `@request.query.*` reads) and `headers`.
//!
//! A topic is matched by its collection's name or id. Options that are not valid JSON are
//! ignored, as PocketBase ignores them; the topic itself, options included, is the event name.

use serde_json::{Map, Value};

/// What a topic follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// Every record (`/*`, or no `/`): the list rule applies.
    All,
    /// One record: the view rule applies.
    Record(String),
}

/// One parsed subscription.
#[derive(Debug, Clone)]
pub(crate) struct Topic {
    /// As the client wrote it: the name of the events it receives.
    pub(crate) raw: std::sync::Arc<str>,
    /// A collection name or id.
    pub(crate) collection: String,
    pub(crate) target: Target,
    /// `options.query`, every value as text.
    pub(crate) query: Map<String, Value>,
    /// `options.headers`, names lowercased with `-` as `_`, as rules read them.
    pub(crate) headers: Map<String, Value>,
}

impl Topic {
    pub(crate) fn parse(raw: &str) -> Topic {
        let (path, query) = raw.split_once('?').unwrap_or((raw, ""));
        let (collection, target) = match path.split_once('/') {
            None => (path, Target::All),
            Some((c, "*")) => (c, Target::All),
            Some((c, id)) => (c, Target::Record(id.to_owned())),
        };
        let mut topic = Topic {
            raw: raw.into(),
            collection: collection.to_owned(),
            target,
            query: Map::new(),
            headers: Map::new(),
        };
        let options = form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "options")
            .map(|(_, v)| v.into_owned());
        if let Some(Ok(Value::Object(mut o))) = options.map(|o| serde_json::from_str::<Value>(&o)) {
            if let Some(Value::Object(q)) = o.remove("query") {
                topic.query = q.into_iter().map(|(k, v)| (k, text(v))).collect();
            }
            if let Some(Value::Object(h)) = o.remove("headers") {
                topic.headers = h
                    .into_iter()
                    .map(|(k, v)| (k.to_ascii_lowercase().replace('-', "_"), text(v)))
                    .collect();
            }
        }
        topic
    }

    /// True when an event on record `id` of the collection named `name` (id `cid`) is for
    /// this topic.
    pub(crate) fn matches(&self, name: &str, cid: &str, id: &str) -> bool {
        (self.collection == name || self.collection == cid)
            && match &self.target {
                Target::All => true,
                Target::Record(r) => r == id,
            }
    }

    /// A `query` option (`expand`, `fields`, `filter`), empty when not given.
    pub(crate) fn option(&self, key: &str) -> &str {
        self.query.get(key).and_then(Value::as_str).unwrap_or("")
    }
}

/// A JSON value as PocketBase casts option values to text.
fn text(v: Value) -> Value {
    Value::String(match v {
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_parse_with_their_options() {
        let t = Topic::parse("posts/*");
        assert_eq!((t.collection.as_str(), &t.target), ("posts", &Target::All));
        assert!(t.matches("posts", "pbc_1", "abc"));
        assert!(!t.matches("users", "pbc_2", "abc"));

        let t = Topic::parse(
            "pbc_1/abc?options=%7B%22query%22%3A%7B%22fields%22%3A%22id%2Cviews%22%2C%22n%22%3A5%7D%2C%22headers%22%3A%7B%22X-Token%22%3A%22t%22%7D%7D",
        );
        assert_eq!(t.target, Target::Record("abc".into()));
        assert!(t.matches("posts", "pbc_1", "abc"));
        assert!(!t.matches("posts", "pbc_1", "abd"));
        assert_eq!(t.option("fields"), "id,views");
        assert_eq!(t.option("n"), "5");
        assert_eq!(t.headers.get("x_token"), Some(&Value::from("t")));

        // The older bare form follows every record; broken options are ignored.
        let t = Topic::parse("posts?options=%7Bnope");
        assert_eq!((t.collection.as_str(), &t.target), ("posts", &Target::All));
        assert!(t.query.is_empty());
    }
}
