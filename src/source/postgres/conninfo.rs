//! libpq's connection strings and connection service file, parsed without I/O: a URI
//! (`postgresql://user:password@host:port/dbname?sslmode=require`) or `key=value` pairs, and the
//! INI sections of `pg_service.conf`. The caller reads the variable or the file.
//!
//! Invariant: no error quotes a value, only keys, line numbers and what is wrong, because a
//! connection string and a service file may hold a password.

/// The connection settings one source gives (a URI, a service, the profile): each unset one is
/// left to the next source down. Its `Debug` never shows the password.
#[derive(Default, Clone, PartialEq, Eq)]
pub struct Settings {
    pub host: Option<String>,
    pub port: Option<String>,
    pub dbname: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub sslmode: Option<String>,
    pub sslrootcert: Option<String>,
    pub connect_timeout: Option<String>,
    /// A service of `pg_service.conf` whose settings fill the ones left unset.
    pub service: Option<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("dbname", &self.dbname)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "(redacted)"))
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .field("connect_timeout", &self.connect_timeout)
            .field("service", &self.service)
            .finish()
    }
}

/// The keys ddbsync understands, for messages.
pub const KEYS: &str = "host, port, dbname, user, password, sslmode, sslrootcert, connect_timeout, service";

impl Settings {
    /// Sets `key` (a libpq keyword); an unknown key is refused, by name only.
    fn set(&mut self, key: &str, value: String) -> Result<(), String> {
        let slot = match key {
            "host" => &mut self.host,
            "port" => &mut self.port,
            "dbname" => &mut self.dbname,
            "user" => &mut self.user,
            "password" => &mut self.password,
            "sslmode" => &mut self.sslmode,
            "sslrootcert" => &mut self.sslrootcert,
            "connect_timeout" => &mut self.connect_timeout,
            "service" => &mut self.service,
            // ddbsync names itself to the server.
            "application_name" | "fallback_application_name" => return Ok(()),
            other => {
                return Err(format!(
                    "has {}, which ddbsync does not read (it reads {KEYS}); remove it (server settings such as \
                     options go in ALTER ROLE … SET)",
                    described(other)
                ))
            }
        };
        // An empty value is libpq's "not set".
        *slot = Some(value).filter(|v| !v.is_empty());
        Ok(())
    }

    /// Each setting of `self`, else `below`'s.
    pub fn or(self, below: Settings) -> Settings {
        Settings {
            host: self.host.or(below.host),
            port: self.port.or(below.port),
            dbname: self.dbname.or(below.dbname),
            user: self.user.or(below.user),
            password: self.password.or(below.password),
            sslmode: self.sslmode.or(below.sslmode),
            sslrootcert: self.sslrootcert.or(below.sslrootcert),
            connect_timeout: self.connect_timeout.or(below.connect_timeout),
            service: self.service.or(below.service),
        }
    }
}

/// libpq's other keywords: a key among them is named in a message; any other word is not, since a
/// value broken by a stray space (`password=a b`) would otherwise show its second half.
const LIBPQ_KEYWORDS: &[&str] = &[
    "hostaddr",
    "passfile",
    "require_auth",
    "channel_binding",
    "options",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
    "gssencmode",
    "sslnegotiation",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcertmode",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "target_session_attrs",
    "load_balance_hosts",
    "client_encoding",
    "requiressl",
];

/// A key as a message may show it: a known keyword, or nothing.
fn printable(key: &str) -> Option<&str> {
    (KEYS.split(", ").any(|k| k == key) || LIBPQ_KEYWORDS.contains(&key)).then_some(key)
}

/// `key` described for a message: `the key "options"`, or a word not shown.
fn described(key: &str) -> String {
    match printable(key) {
        Some(key) => format!("the key \"{key}\""),
        None => "a word that is not a libpq keyword (not shown, in case it is part of a value)".to_string(),
    }
}

/// Parses a connection string: a `postgresql://` (or `postgres://`) URI, or libpq's
/// `key=value` pairs. The error says what is wrong without quoting the string.
pub fn parse(text: &str) -> Result<Settings, String> {
    let text = text.trim();
    match text.strip_prefix("postgresql://").or_else(|| text.strip_prefix("postgres://")) {
        Some(rest) => uri(rest),
        None if text.contains("://") => {
            Err("is a URI whose scheme is not postgresql:// or postgres://; the source is \
             PostgreSQL: write postgresql://user@host:port/dbname"
                .into())
        }
        None => pairs(text),
    }
}

/// `[user[:password]@][host][:port][/dbname][?key=value&…]`, percent-encoded.
fn uri(rest: &str) -> Result<Settings, String> {
    let mut settings = Settings::default();
    let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = main.split_once('/').unwrap_or((main, ""));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => (Some(userinfo), hostport),
        None => (None, authority),
    };
    if let Some(userinfo) = userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (userinfo, None),
        };
        settings.user = Some(decode(user, "the user name")?).filter(|u| !u.is_empty());
        if let Some(password) = password {
            settings.password = Some(decode(password, "the password")?).filter(|p| !p.is_empty());
        }
    }
    if hostport.contains(',') {
        return Err("names several hosts; ddbsync connects to one (write one host:port)".into());
    }
    let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
        let (address, after) =
            bracketed.split_once(']').ok_or("has an IPv6 address without its closing ] (write [::1]:5432)")?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or("has text after the IPv6 address's ] that is not :port")?),
        };
        (address.to_string(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (decode(host, "the host")?, Some(port)),
            None => (decode(hostport, "the host")?, None),
        }
    };
    settings.host = Some(host).filter(|h| !h.is_empty());
    settings.port = port.map(str::to_string).filter(|p| !p.is_empty());
    settings.dbname = Some(decode(path, "the database name")?).filter(|d| !d.is_empty());
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').ok_or("has a query parameter without =value")?;
        let key = decode(key, "a query parameter's name")?;
        settings.set(&key, decode(value, "a query parameter's value")?)?;
    }
    Ok(settings)
}

/// Percent-decoding, as libpq does it in a URI.
fn decode(text: &str, what: &str) -> Result<String, String> {
    let bad = || {
        format!(
            "has a % in {what} that is not followed by two hexadecimal digits; write a literal % as %25 (and @ : / ? \
             # as %40 %3A %2F %3F %23)"
        )
    };
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).ok_or_else(bad)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| {
        format!(
            "has {what} that is not UTF-8 once decoded; percent-encode the UTF-8 bytes of each character (é is %C3%A9)"
        )
    })
}

/// `key=value key='quoted value'`, with `\'` and `\\` escapes inside quotes.
fn pairs(text: &str) -> Result<Settings, String> {
    let mut settings = Settings::default();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(settings);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!(
                "is neither a postgresql:// URI nor key=value pairs: {} has no = after it",
                described(&key)
            ));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => return Err(format!("has a value of {} without its closing quote", described(&key))),
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        settings.set(&key, value)?;
    }
}

/// What a service file says of a service: its settings, or `None` when it has no such section.
/// Read as libpq's `parseServiceFile` reads it, so that psql and ddbsync reach the same server:
/// any line starting with `[` opens a section, whose name is the text up to the first `]` taken
/// verbatim (what follows the `]`, such as a comment, is ignored; `[prod` opens no section of that
/// name); the first section of the name is the service; and within it the FIRST value of a key
/// wins. Errors give the line and the key, never a value.
pub fn service(contents: &str, name: &str) -> Result<Option<Settings>, String> {
    let mut found: Option<Settings> = None;
    let mut seen: Vec<String> = Vec::new();
    let mut inside = false;
    for (number, line) in contents.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            if found.is_some() {
                return Ok(found);
            }
            inside = header.strip_prefix(name).is_some_and(|rest| rest.starts_with(']'));
            if inside {
                found = Some(Settings::default());
            }
            continue;
        }
        let Some(settings) = found.as_mut().filter(|_| inside) else { continue };
        let (key, value) = line.split_once('=').ok_or(format!("line {number}: not key=value"))?;
        let key = key.trim();
        if key == "service" {
            return Err(format!("line {number}: a service cannot name another service (libpq does not nest them)"));
        }
        if seen.iter().any(|k| k == key) {
            // libpq keeps the first value of a key; a later one is ignored, but still checked.
            Settings::default().set(key, value.trim().to_string()).map_err(|e| format!("line {number}: {e}"))?;
            continue;
        }
        settings.set(key, value.trim().to_string()).map_err(|e| format!("line {number}: {e}"))?;
        seen.push(key.to_string());
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(s: &Settings) -> String {
        let f = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        format!(
            "host={} port={} dbname={} user={} password={} sslmode={} sslrootcert={} connect_timeout={} service={}",
            f(&s.host),
            f(&s.port),
            f(&s.dbname),
            f(&s.user),
            f(&s.password),
            f(&s.sslmode),
            f(&s.sslrootcert),
            f(&s.connect_timeout),
            f(&s.service)
        )
    }

    #[test]
    fn uris_as_libpq_reads_them() {
        let cases = [
            (
                "postgresql://sync:p%40ss:w@db.example.com:6543/pni?sslmode=verify-full&connect_timeout=7",
                "host=db.example.com port=6543 dbname=pni user=sync password=p@ss:w sslmode=verify-full \
                 sslrootcert=- connect_timeout=7 service=-",
            ),
            (
                "postgres://localhost",
                "host=localhost port=- dbname=- user=- password=- sslmode=- sslrootcert=- connect_timeout=- service=-",
            ),
            (
                "postgresql://[::1]:5433/x?service=prod",
                "host=::1 port=5433 dbname=x user=- password=- sslmode=- sslrootcert=- connect_timeout=- service=prod",
            ),
            (
                "postgresql://%2Fvar%2Frun%2Fpostgresql/db?user=me",
                "host=/var/run/postgresql port=- dbname=db user=me password=- sslmode=- sslrootcert=- \
                 connect_timeout=- service=-",
            ),
            (
                "postgresql:///db?host=h&port=1&application_name=x",
                "host=h port=1 dbname=db user=- password=- sslmode=- sslrootcert=- connect_timeout=- service=-",
            ),
        ];
        for (uri, want) in cases {
            assert_eq!(show(&parse(uri).unwrap()), want, "{uri}");
        }
    }

    #[test]
    fn key_value_pairs_as_libpq_reads_them() {
        let got = parse("host=h port = 5 dbname='my db' user=u password='it\\'s' sslmode=require").unwrap();
        assert_eq!(
            show(&got),
            "host=h port=5 dbname=my db user=u password=it's sslmode=require sslrootcert=- connect_timeout=- service=-"
        );
        assert_eq!(show(&parse("").unwrap()), show(&Settings::default()));
    }

    #[test]
    fn errors_never_quote_a_value() {
        let secret = "S3cr3tValue";
        for text in [
            format!("postgresql://u:{secret}@h1,h2/db"),
            format!("postgresql://u:{secret}%zz@h/db"),
            format!("postgresql://u:{secret}@h/db?sslmode"),
            format!("postgresql://u:{secret}@h/db?options={secret}"),
            format!("mysql://u:{secret}@h/db"),
            format!("host=h password='{secret}"),
            format!("host=h {secret}"),
            format!("host=h {secret}=x"),
        ] {
            let err = match parse(&text) {
                Err(e) => e,
                Ok(_) => panic!("{text} parsed"),
            };
            assert!(!err.contains(secret), "{err}");
        }
        assert!(parse("host=h options=x").unwrap_err().contains("the key \"options\", which ddbsync does not read"));
    }

    #[test]
    fn errors_of_a_connection_string_carry_their_fix() {
        for (text, fix) in [
            ("postgresql://u:p%zz@h/db", "write a literal % as %25"),
            ("postgresql://u:%C3%28@h/db", "percent-encode the UTF-8 bytes"),
            ("mysql://u@h/db", "write postgresql://user@host:port/dbname"),
            ("host=h options=x", "remove it"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(fix), "{text}: {err}");
        }
    }

    #[test]
    fn a_service_is_its_first_section() {
        let file = "# services\n[other]\nhost=o\n\n[prod]\nhost = db.prod\nport=6432\npassword=pw\n[prod]\nhost=late\n";
        let prod = service(file, "prod").unwrap().unwrap();
        assert_eq!(
            show(&prod),
            "host=db.prod port=6432 dbname=- user=- password=pw sslmode=- sslrootcert=- connect_timeout=- service=-"
        );
        assert!(service(file, "absent").unwrap().is_none());
    }

    #[test]
    fn service_file_errors_name_the_line_not_the_value() {
        let err = service("[prod]\nhost=h\nsecretline-no-equals\n", "prod").unwrap_err();
        assert_eq!(err, "line 3: not key=value");
        let err = service("[prod]\npassfile=/x\n", "prod").unwrap_err();
        assert!(err.starts_with("line 2: has the key \"passfile\", which ddbsync does not read"), "{err}");
        let err = service("[prod]\nhunter2=x\n", "prod").unwrap_err();
        assert!(err.contains("not a libpq keyword") && !err.contains("hunter2"), "{err}");
        assert!(service("[prod]\nservice=x\n", "prod").unwrap_err().contains("cannot name another service"));
        // Lines of other services are not judged.
        assert!(service("[a]\nnonsense\n[prod]\nhost=h\n", "prod").unwrap().is_some());
    }

    #[test]
    fn a_repeated_key_keeps_its_first_value_as_libpq_does() {
        // libpq's parseServiceFile sets a keyword only while it is unset: psql reaches `first`.
        let file = "[dup]\nhost=first.invalid\nhost=second.invalid\nport=1\nport=2\n";
        let dup = service(file, "dup").unwrap().unwrap();
        assert_eq!((dup.host.as_deref(), dup.port.as_deref()), (Some("first.invalid"), Some("1")));
    }

    #[test]
    fn a_section_header_is_read_up_to_its_first_bracket() {
        // Text after the `]` (a comment) is ignored by libpq.
        let svc = service("[svc] # the reporting replica\nhost=h\n", "svc").unwrap().unwrap();
        assert_eq!(svc.host.as_deref(), Some("h"));
        // An unclosed header opens no section of that name, and ends the one before it.
        assert!(service("[svc\nhost=h\n", "svc").unwrap().is_none());
        let svc = service("[svc]\nhost=h\n[broken\nhost=x\n", "svc").unwrap().unwrap();
        assert_eq!(svc.host.as_deref(), Some("h"));
        // The name is verbatim: `[ svc ]` is not `svc`.
        assert!(service("[ svc ]\nhost=h\n", "svc").unwrap().is_none());
    }

    #[test]
    fn debug_hides_the_password() {
        let shown = format!("{:?}", parse("postgresql://u:S3cr3t@h/db").unwrap());
        assert!(shown.contains("(redacted)") && !shown.contains("S3cr3t"), "{shown}");
    }

    #[test]
    fn upper_layers_win() {
        let uri = parse("postgresql://u@h/db").unwrap();
        let service = parse("host=other port=7 sslmode=require").unwrap();
        assert_eq!(
            show(&uri.or(service)),
            "host=h port=7 dbname=db user=u password=- sslmode=require sslrootcert=- connect_timeout=- service=-"
        );
    }
}
