//! The plain-text part of a mail made from its HTML, and PocketBase's `{NAME}` placeholders.
//!
//! The text is what a reader without HTML sees and what the console shows in development: tags
//! are dropped, block elements become line breaks, a link becomes `label (url)` so the
//! verification and reset links stay usable, entities are decoded and runs of blank lines are
//! collapsed.

/// Replaces every `{NAME}` of `vars` in `template`; other braces are left alone.
pub fn substitute(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_owned();
    for (name, value) in vars {
        let placeholder = format!("{{{name}}}");
        if out.contains(&placeholder) {
            out = out.replace(&placeholder, value);
        }
    }
    out
}

const BLOCKS: &[&str] = &[
    "p",
    "div",
    "br",
    "tr",
    "li",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "ul",
    "ol",
    "blockquote",
    "hr",
];

/// The readable text of an HTML body.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    // The href of the link being read, written after its label.
    let mut link: Option<String> = None;
    let mut skip_until: Option<&'static str> = None;
    while let Some(lt) = rest.find('<') {
        if skip_until.is_none() {
            out.push_str(&decode(&rest[..lt]));
        }
        let Some(gt) = rest[lt..].find('>') else {
            rest = "";
            break;
        };
        let tag = &rest[lt + 1..lt + gt];
        rest = &rest[lt + gt + 1..];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if let Some(end) = skip_until {
            if closing && name == end {
                skip_until = None;
            }
            continue;
        }
        match name.as_str() {
            "style" | "script" | "head" | "title" if !closing => {
                skip_until = Some(match name.as_str() {
                    "style" => "style",
                    "script" => "script",
                    "head" => "head",
                    _ => "title",
                });
            }
            "a" if !closing => link = attribute(tag, "href"),
            "a" => {
                if let Some(href) = link.take() {
                    let label = out.rsplit('\n').next().unwrap_or_default();
                    if !label.trim_end().ends_with(href.as_str()) {
                        out.push_str(&format!(" ({href})"));
                    }
                }
            }
            n if BLOCKS.contains(&n) => out.push('\n'),
            _ => {}
        }
    }
    if skip_until.is_none() {
        out.push_str(&decode(rest));
    }
    // Trim each line and keep at most one blank line between paragraphs.
    let mut text = String::with_capacity(out.len());
    let mut blank = 0;
    for line in out.lines() {
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.is_empty() {
            blank += 1;
            if blank > 1 || text.is_empty() {
                continue;
            }
        } else {
            blank = 0;
        }
        text.push_str(&line);
        text.push('\n');
    }
    text.trim_end().to_owned()
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let at = lower.find(&format!("{name}="))? + name.len() + 1;
    let value = &tag[at..];
    let value = match value.chars().next()? {
        q @ ('"' | '\'') => value[1..].split(q).next()?,
        _ => value.split(|c: char| c.is_whitespace()).next()?,
    };
    Some(decode(value))
}

fn decode(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    s.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_stay_usable_and_markup_goes() {
        let html = r#"<html><head><style>p{color:red}</style></head><body>
<p>Hello,</p>
<p>Click on the button below to verify your email address.</p>
<p>
  <a class="btn" href="https://app.test/_/#/auth/confirm-verification/abc.def?x=1&amp;y=2" target="_blank" rel="noopener">Verify</a>
</p>
<p>Thanks,<br/>Acme &amp; Co team</p></body></html>"#;
        let text = html_to_text(html);
        assert!(!text.contains('<'), "{text}");
        assert!(!text.contains("color:red"), "{text}");
        assert!(
            text.contains(
                "Verify (https://app.test/_/#/auth/confirm-verification/abc.def?x=1&y=2)"
            ),
            "{text}"
        );
        assert!(text.contains("Thanks,\nAcme & Co team"), "{text}");
        assert!(!text.contains("\n\n\n"), "{text}");
    }

    #[test]
    fn placeholders_are_replaced_and_other_braces_kept() {
        let s = substitute(
            "{APP_NAME}: {OTP} {unknown} {",
            &[("APP_NAME", "Acme"), ("OTP", "123456")],
        );
        assert_eq!(s, "Acme: 123456 {unknown} {");
    }
}
