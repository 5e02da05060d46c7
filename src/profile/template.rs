//! Key templates such as `LESSON#{lesson_id}`: literal text with column values put in. A template
//! with no column is a constant (`PROFILE`), which a sort key may be.
//!
//! How a column's value is spelled in a key (numbers canonical, `1e300` as PostgreSQL prints it, no
//! text at all for NaN, `infinity` or a JSON object) is `value::Cell::key_text`'s; `build` puts the
//! pieces together and names the column whose value cannot go in.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    Column(String),
}

/// A parsed template. `{{` and `}}` stand for literal braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub parts: Vec<Part>,
    source: String,
}

impl Template {
    pub fn parse(source: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = source.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed || name.trim().is_empty() || name.contains('{') {
                        return Err(format!(
                            "template {source:?} has an empty or unclosed `{{…}}`; write `{{column}}`"
                        ));
                    }
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Column(name.trim().to_string()));
                }
                '}' => {
                    return Err(format!(
                        "template {source:?} has a `}}` without `{{`; write `}}}}` for a literal brace"
                    ))
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template { parts, source: source.to_string() })
    }

    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Column(c) => Some(c.as_str()),
            Part::Text(_) => None,
        })
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_text_and_columns() {
        let t = Template::parse("LESSON#{lesson_id}#{ part }").unwrap();
        assert_eq!(
            t.parts,
            vec![
                Part::Text("LESSON#".into()),
                Part::Column("lesson_id".into()),
                Part::Text("#".into()),
                Part::Column("part".into())
            ]
        );
        assert_eq!(t.columns().collect::<Vec<_>>(), ["lesson_id", "part"]);
        assert_eq!(t.to_string(), "LESSON#{lesson_id}#{ part }");
    }

    #[test]
    fn doubled_braces_are_literal() {
        let t = Template::parse("{{x}}{id}").unwrap();
        assert_eq!(t.parts, vec![Part::Text("{x}".into()), Part::Column("id".into())]);
    }

    #[test]
    fn a_constant_is_a_template_and_bad_braces_are_not() {
        assert_eq!(Template::parse("PROFILE").unwrap().parts, vec![Part::Text("PROFILE".into())]);
        assert!(Template::parse("A#{}").unwrap_err().contains("empty or unclosed"));
        assert!(Template::parse("A#{id").unwrap_err().contains("empty or unclosed"));
        assert!(Template::parse("A}").unwrap_err().contains("without"));
    }
}
