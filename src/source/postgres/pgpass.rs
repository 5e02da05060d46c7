//! libpq's password file (`~/.pgpass`, or `PGPASSFILE`): `host:port:database:user:password` lines,
//! `*` matching anything, `\:` and `\\` escaping. Pure parsing; the caller reads the file.

/// The password of the first line matching the connection, as libpq picks it.
pub fn lookup(contents: &str, host: &str, port: u16, dbname: &str, user: &str) -> Option<String> {
    let port = port.to_string();
    contents.lines().filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty()).find_map(|line| {
        let fields = split(line);
        if fields.len() != 5 {
            return None;
        }
        let wanted = [host, port.as_str(), dbname, user];
        let matches = fields[..4].iter().zip(wanted).all(|(field, value)| field == "*" || field == value);
        matches.then(|| fields[4].clone())
    })
}

fn split(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().unwrap().push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_line_wins() {
        let file = "# comment\nother:5432:*:*:nope\nlocalhost:5432:pni:sync:s3cret\n*:*:*:*:fallback\n";
        assert_eq!(lookup(file, "localhost", 5432, "pni", "sync").as_deref(), Some("s3cret"));
        assert_eq!(lookup(file, "localhost", 5433, "pni", "sync").as_deref(), Some("fallback"));
    }

    #[test]
    fn escapes_and_colons_in_passwords() {
        let file = "db\\:1:5432:*:u:pa\\:ss:word\n";
        assert_eq!(lookup(file, "db:1", 5432, "x", "u").as_deref(), Some("pa:ss:word"));
    }

    #[test]
    fn no_match_is_none() {
        assert_eq!(lookup("h:1:d:u:p\nmalformed line\n", "h", 2, "d", "u"), None);
    }
}
