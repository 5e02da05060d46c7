//! libpq's password file (`~/.pgpass`, or `PGPASSFILE`): `host:port:database:user:password` lines,
//! `*` matching anything, `\:` and `\\` escaping, and libpq's rule on the file's mode. Pure; the
//! caller reads the file.

/// Why libpq would ignore a password file of this mode (`st_mode`), if it would: any access for
/// group or others (libpq's `S_IRWXG | S_IRWXO` test), said with the fix.
pub fn mode_flaw(mode: u32) -> Option<String> {
    let access = mode & 0o777;
    (access & 0o077 != 0).then(|| {
        format!(
            "has mode {access:04o}, which lets group or others at it, so it is ignored, as libpq does; \
             `chmod 0600` it to use it"
        )
    })
}

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
    fn a_file_group_or_others_may_touch_is_refused() {
        for (mode, refused) in [
            (0o100600, false),
            (0o100400, false),
            (0o100700, false),
            (0o100640, true),
            (0o100604, true),
            (0o100660, true),
            (0o100620, true),
            (0o100601, true),
            (0o100644, true),
        ] {
            assert_eq!(mode_flaw(mode).is_some(), refused, "{mode:o}");
        }
        let flaw = mode_flaw(0o100644).unwrap();
        assert!(flaw.contains("mode 0644") && flaw.contains("chmod 0600"), "{flaw}");
    }

    #[test]
    fn no_match_is_none() {
        assert_eq!(lookup("h:1:d:u:p\nmalformed line\n", "h", 2, "d", "u"), None);
    }
}
