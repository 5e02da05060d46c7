//! Where each PostgreSQL connection setting comes from, libpq's way: the explicit settings (the
//! profile's keys, or the connection string in the variable `url_env` names, whose values win over
//! the profile's TLS and timeout keys), then the service of `pg_service.conf` they or `PGSERVICE`
//! name, then the `PG*` variables, then the defaults (the operating-system user, `localhost`,
//! 5432). The password: the connection string's or `password_env`'s, else the service's, else
//! `PGPASSWORD`, else the password file, which is ignored (with a warning) when group or others
//! may read it.
//!
//! Invariant: no error or log line holds a password or a connection string's text; settings are
//! named by key and by where they were written.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::conninfo::{self, Settings};
use super::pgpass;
use crate::profile::{Profile, SslMode, MAX_WAIT_SECS};
use crate::source::SourceError;

/// The settings a connection is made with.
pub struct Resolved {
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub user: String,
    pub password: Option<String>,
    pub sslmode: SslMode,
    /// Where the sslmode came from (`source.sslmode`, `PGSSLMODE`, a service, the string in `DATABASE_URL`…).
    pub sslmode_origin: String,
    /// Where a TLS setting's fix goes: the profile file, `PGSSLMODE=…`, the service file…
    pub tls_origin: String,
    pub sslrootcert: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub timeout_origin: String,
    /// Where the password came from, or every place looked at and what each held.
    pub password_found: PasswordFound,
}

/// Where the password came from (never the password), for the messages of a refused login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordFound {
    /// `Some(place)` when a password was found there.
    pub origin: Option<String>,
    /// Each place looked at before it, with what it held (`PGPASSWORD (not set)`).
    pub looked: Vec<String>,
    /// A password file libpq ignores (its mode, not a plain file, unreadable), as a warning
    /// `check` shows.
    pub warning: Option<String>,
    /// That file's fix (`chmod 0600 ~/.pgpass`), for the message of a login without a password.
    pub fix: Option<String>,
}

impl PasswordFound {
    /// The message for a server that asks for a password when none was found: the places looked
    /// at, and the fix.
    pub fn missing(&self) -> String {
        let fix = match &self.fix {
            Some(fix) => format!("{fix}; or "),
            None => String::new(),
        };
        format!(
            "the server asks for a password and none was found (looked at: {}); {fix}give one: export PGPASSWORD, \
             name the variable holding it with source.password_env, or add a line host:port:dbname:user:password \
             to ~/.pgpass (or the file PGPASSFILE names), mode 0600",
            self.looked.join("; ")
        )
    }
}

/// Reads one environment variable; empty is unset, as libpq takes it.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A layer of settings and where it was written, for messages.
struct Layer {
    settings: Settings,
    origin: String,
}

/// The profile's own keys as a layer.
fn profile_layer(profile: &Profile) -> Settings {
    let cfg = &profile.source;
    Settings {
        host: cfg.host.clone(),
        port: cfg.port.map(|p| p.to_string()),
        dbname: cfg.dbname.clone(),
        user: cfg.user.clone(),
        password: None,
        sslmode: cfg.sslmode.map(|m| m.name().to_string()),
        sslrootcert: cfg.sslrootcert.as_ref().map(|p| p.display().to_string()),
        connect_timeout: cfg.connect_timeout.map(|d| d.as_secs().to_string()),
        service: cfg.service.clone(),
    }
}

/// The explicit settings: the connection string of `url_env` over the profile's TLS and timeout
/// keys, or the profile's keys. The password of `password_env` is read here too.
fn explicit(profile: &Profile) -> Result<Layer, SourceError> {
    let path = profile.path.display().to_string();
    let own = profile_layer(profile);
    let Some(var) = &profile.source.url_env else {
        let mut settings = own;
        if let Some(var) = &profile.source.password_env {
            let password =
                env(var).ok_or_else(|| SourceError::MissingPassword { path: path.clone(), var: var.clone() })?;
            settings.password = Some(password);
        }
        return Ok(Layer { settings, origin: path });
    };
    let url_error = |problem: String| SourceError::Url { path: path.clone(), var: var.clone(), problem };
    // Blank is unset too: libpq would connect to its defaults, not to what the user meant.
    let text = env(var).filter(|t| !t.trim().is_empty()).ok_or_else(|| {
        url_error(
            "is not set or is empty (or blank); export it with the connection string (postgresql://user@host:port/dbname, or \
             host=… dbname=… pairs), or remove url_env to use the profile's host, port, dbname and user"
                .into(),
        )
    })?;
    let given = conninfo::parse(&text).map_err(|e| url_error(format!("holds a connection string that {e}")))?;
    // Only the TLS and timeout keys may sit beside url_env (profile validation refuses the rest).
    let below = Settings {
        sslmode: own.sslmode,
        sslrootcert: own.sslrootcert,
        connect_timeout: own.connect_timeout,
        ..Settings::default()
    };
    Ok(Layer {
        settings: given.or(below),
        origin: format!("the connection string in {var} (source.url_env in {path})"),
    })
}

/// The service files libpq reads, in its order: the user's (`PGSERVICEFILE`, else
/// `~/.pg_service.conf`), then the system's (`PGSYSCONFDIR/pg_service.conf`; Debian's libpq
/// defaults to `/etc/postgresql-common`).
pub fn service_files(home: Option<&Path>) -> Vec<PathBuf> {
    let user = env("PGSERVICEFILE").map(PathBuf::from).or_else(|| home.map(|h| h.join(".pg_service.conf")));
    let system = env("PGSYSCONFDIR").unwrap_or_else(|| "/etc/postgresql-common".into());
    user.into_iter().chain([Path::new(&system).join("pg_service.conf")]).collect()
}

/// The settings of service `name`, from the first file that defines it; an error names every
/// file looked in and what each held.
fn service(name: &str, chosen_by: &str, home: Option<&Path>) -> Result<Layer, SourceError> {
    let mut looked = Vec::new();
    for file in service_files(home) {
        if file.is_dir() {
            return Err(SourceError::Service(format!(
                "{}: is a directory, not a connection service file, looking for service \"{name}\" ({chosen_by}); \
                 point PGSERVICEFILE at the file itself (such as ~/.pg_service.conf), or unset it",
                file.display()
            )));
        }
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                looked.push(format!("{} (absent)", file.display()));
                continue;
            }
            Err(e) => {
                return Err(SourceError::Service(format!(
                    "{}: cannot read the connection service file ({e}), looking for service \"{name}\" ({chosen_by}); \
                     give the user running ddbsync read access to it",
                    file.display()
                )))
            }
        };
        match conninfo::service(&text, name) {
            Ok(Some(settings)) => {
                return Ok(Layer { settings, origin: format!("service \"{name}\" in {}", file.display()) })
            }
            Ok(None) => looked.push(format!("{} (no [{name}] section)", file.display())),
            Err(e) => {
                return Err(SourceError::Service(format!(
                    "{}: {e}; fix the connection service file (keys: {})",
                    file.display(),
                    conninfo::KEYS.replace(", service", "")
                )))
            }
        }
    }
    Err(SourceError::Service(format!(
        "service \"{name}\" ({chosen_by}) is not defined in any connection service file: looked in {}; add a \
         [{name}] section to one of them (PGSERVICEFILE names another file), or correct the name",
        looked.join(", ")
    )))
}

/// Checks the settings of a layer that arrive as text, so that an unusable one is blamed on where
/// it was written. No value is shown: a connection string split wrongly can put part of a password
/// in any of them.
fn check(layer: &Layer) -> Result<(), SourceError> {
    let problem = |problem: String| SourceError::Setting { origin: layer.origin.clone(), problem };
    if let Some(port) = &layer.settings.port {
        if port.parse::<u16>().ok().filter(|&p| p > 0).is_none() {
            return Err(problem("the port is not a port number (1 to 65535)".into()));
        }
    }
    if let Some(mode) = &layer.settings.sslmode {
        if SslMode::parse(mode).is_none() {
            return Err(problem(
                "the sslmode is not one ddbsync supports; use disable, prefer, require, verify-ca or verify-full"
                    .into(),
            ));
        }
    }
    if let Some(secs) = &layer.settings.connect_timeout {
        if secs.parse::<u64>().ok().filter(|s| (1..=MAX_WAIT_SECS).contains(s)).is_none() {
            return Err(problem(format!(
                "the connect_timeout is not a number of seconds from 1 to {MAX_WAIT_SECS} (0, libpq's \"wait for \
                 ever\", is not allowed)"
            )));
        }
    }
    Ok(())
}

/// Resolves every setting of the connection; see the module's doc for the order.
pub fn resolve(profile: &Profile) -> Result<Resolved, SourceError> {
    let home = home();
    let top = explicit(profile)?;
    check(&top)?;
    let (name, chosen_by) = match &top.settings.service {
        Some(name) => (Some(name.clone()), format!("named by {}", top.origin)),
        None => (env("PGSERVICE"), "named by PGSERVICE".to_string()),
    };
    let service = match name {
        Some(name) => Some(service(&name, &chosen_by, home.as_deref())?),
        None => None,
    };
    if let Some(service) = &service {
        check(service)?;
    }
    // Which layer gave a key: the explicit one, else the service.
    let pick = |get: fn(&Settings) -> &Option<String>| -> Option<(String, &str)> {
        get(&top.settings)
            .clone()
            .map(|v| (v, top.origin.as_str()))
            .or_else(|| service.as_ref().and_then(|s| get(&s.settings).clone().map(|v| (v, s.origin.as_str()))))
    };
    let host = pick(|s| &s.host).map(|(v, _)| v).or_else(|| env("PGHOST")).unwrap_or_else(|| "localhost".into());
    let port = match pick(|s| &s.port) {
        Some((text, _)) => text.parse().unwrap_or(5432),
        None => super::resolve_port(None, env("PGPORT").as_deref())?,
    };
    let user = match pick(|s| &s.user).map(|(v, _)| v).or_else(|| env("PGUSER")) {
        Some(user) => user,
        None => os_user().ok_or_else(|| SourceError::Setting {
            origin: profile.path.display().to_string(),
            problem: "no user name: none is given (source.user, PGUSER), and the operating-system user's name \
                      cannot be found; set source.user"
                .into(),
        })?,
    };
    let dbname = pick(|s| &s.dbname).map(|(v, _)| v).or_else(|| env("PGDATABASE")).unwrap_or_else(|| user.clone());
    let (mut sslmode, mut sslmode_origin, tls_origin) = match pick(|s| &s.sslmode) {
        Some((text, origin)) => {
            let mode = SslMode::parse(&text).unwrap_or(SslMode::Prefer);
            let named = if origin == top.origin && profile.source.url_env.is_none() {
                "source.sslmode".to_string()
            } else {
                origin.to_string()
            };
            (mode, named, origin.to_string())
        }
        None => {
            let (mode, origin) = super::resolve_sslmode(None, env("PGSSLMODE").as_deref())?;
            let fix = match origin {
                "PGSSLMODE" => format!("PGSSLMODE={}", env("PGSSLMODE").unwrap_or_default()),
                _ => profile.path.display().to_string(),
            };
            (mode, origin.to_string(), fix)
        }
    };
    let sslrootcert = pick(|s| &s.sslrootcert).map(|(v, _)| PathBuf::from(v));
    // libpq 16: with `sslrootcert=system` the default sslmode is verify-full (a weaker one given
    // explicitly is refused when the TLS configuration is built).
    let system_cas = sslrootcert.clone().or_else(|| env("PGSSLROOTCERT").map(PathBuf::from));
    if sslmode_origin == "the default sslmode" && system_cas.is_some_and(|p| p.as_os_str() == "system") {
        sslmode = SslMode::VerifyFull;
        sslmode_origin = "the default sslmode with sslrootcert=system".into();
    }
    let (connect_timeout, timeout_origin) = match pick(|s| &s.connect_timeout) {
        Some((secs, origin)) => {
            let named = if origin == top.origin && profile.source.url_env.is_none() {
                "source.connect_timeout_secs".to_string()
            } else {
                origin.to_string()
            };
            (Duration::from_secs(secs.parse().unwrap_or(10)), named)
        }
        None => {
            let (limit, origin) = super::resolve_connect_timeout(None, env("PGCONNECT_TIMEOUT").as_deref())?;
            (limit, origin.to_string())
        }
    };
    let (password, password_found) =
        find_password(profile, &top, service.as_ref(), home.as_deref(), &host, port, &dbname, &user);
    Ok(Resolved {
        host,
        port,
        dbname,
        user,
        password,
        sslmode,
        sslmode_origin,
        tls_origin,
        sslrootcert,
        connect_timeout,
        timeout_origin,
        password_found,
    })
}

/// The password, libpq's order: the explicit layer's (the connection string's, or
/// `password_env`'s), the service's, `PGPASSWORD`, the password file. Each place looked at is
/// noted, so that a refused login can say where the password came from, or where none was.
#[allow(clippy::too_many_arguments)]
fn find_password(
    profile: &Profile,
    top: &Layer,
    service: Option<&Layer>,
    home: Option<&Path>,
    host: &str,
    port: u16,
    dbname: &str,
    user: &str,
) -> (Option<String>, PasswordFound) {
    let mut found = PasswordFound { origin: None, looked: Vec::new(), warning: None, fix: None };
    let explicit = match (&profile.source.url_env, &profile.source.password_env) {
        (Some(var), _) => Some(format!("the connection string in {var}")),
        (None, Some(var)) => Some(format!("{var} (source.password_env)")),
        (None, None) => None,
    };
    if let Some(place) = explicit {
        if let Some(password) = top.settings.password.clone() {
            found.origin = Some(place);
            return (Some(password), found);
        }
        found.looked.push(format!("{place} (no password)"));
    }
    if let Some(service) = service {
        if let Some(password) = service.settings.password.clone() {
            found.origin = Some(service.origin.clone());
            return (Some(password), found);
        }
        found.looked.push(format!("{} (no password, or an empty one)", service.origin));
    }
    if let Some(password) = env("PGPASSWORD") {
        found.origin = Some("PGPASSWORD".into());
        return (Some(password), found);
    }
    found.looked.push("PGPASSWORD (not set)".into());
    let file = match env("PGPASSFILE").map(|f| (PathBuf::from(f), " (PGPASSFILE)")) {
        Some(named) => Some(named),
        None => home.map(|h| (h.join(".pgpass"), "")),
    };
    let Some((file, named_by)) = file else {
        found.looked.push("~/.pgpass (no home directory)".into());
        return (None, found);
    };
    let shown = format!("{}{named_by}", file.display());
    match password_file(&file, host, port, dbname, user) {
        PassFile::Found(password) => {
            found.origin = Some(format!("the password file {shown}"));
            return (Some(password), found);
        }
        PassFile::Absent => found.looked.push(format!("{shown} (absent)")),
        PassFile::NoMatch => found.looked.push(format!(
            "{shown} (no line matches {}:{port}:{dbname}:{user}; * matches any field)",
            host.replace(':', "\\:")
        )),
        PassFile::Ignored(why, fix) => {
            found.looked.push(format!("{shown} (ignored: {why})"));
            found.warning = Some(format!("password file {shown} is ignored: {why}; {fix}"));
            found.fix = Some(fix);
        }
    }
    (None, found)
}

/// The home directory, as libpq finds it: `HOME`, else the password database's entry.
fn home() -> Option<PathBuf> {
    env("HOME").map(PathBuf::from).or_else(|| passwd_entry().map(|(_, home)| home))
}

/// The effective user's login name, libpq's default user (never `$USER`, which anyone can set).
pub fn os_user() -> Option<String> {
    passwd_entry().map(|(name, _)| name)
}

/// The effective user's name and home directory from the password database.
#[cfg(unix)]
fn passwd_entry() -> Option<(String, PathBuf)> {
    use std::ffi::CStr;
    use std::os::unix::ffi::OsStrExt;
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwuid_r writes the entry and its strings into `entry` and `buffer`, both owned
    // here and alive until the strings are copied out; `found` is null or points at `entry`.
    let status =
        unsafe { libc::getpwuid_r(libc::geteuid(), &mut entry, buffer.as_mut_ptr(), buffer.len(), &mut found) };
    if status != 0 || found.is_null() || entry.pw_name.is_null() {
        return None;
    }
    // SAFETY: non-null, NUL-terminated strings inside `buffer` (see above).
    let name = unsafe { CStr::from_ptr(entry.pw_name) }.to_str().ok()?.to_string();
    let home = match entry.pw_dir.is_null() {
        true => PathBuf::new(),
        false => PathBuf::from(std::ffi::OsStr::from_bytes(unsafe { CStr::from_ptr(entry.pw_dir) }.to_bytes())),
    };
    Some((name, home))
}

#[cfg(not(unix))]
fn passwd_entry() -> Option<(String, PathBuf)> {
    env("USERNAME").map(|name| (name, env("USERPROFILE").map(PathBuf::from).unwrap_or_default()))
}

/// What the password file gives the connection.
enum PassFile {
    Found(String),
    Absent,
    NoMatch,
    /// A file libpq would ignore: why, and the fix.
    Ignored(String, String),
}

/// The password the password file gives the connection, unless the file is one libpq would
/// ignore: not a regular file, or readable or writable by group or others (a warning says so).
fn password_file(file: &Path, host: &str, port: u16, dbname: &str, user: &str) -> PassFile {
    let meta = match std::fs::metadata(file) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return PassFile::Absent,
        Err(e) => {
            return PassFile::Ignored(
                format!("cannot be read ({e})"),
                "give the user running ddbsync access to it".into(),
            )
        }
    };
    if !meta.is_file() {
        tracing::warn!("password file {} is not a plain file; it is ignored", file.display());
        let what = if meta.is_dir() { "a directory" } else { "not a plain file" };
        return PassFile::Ignored(
            format!("it is {what}"),
            "point PGPASSFILE at the password file itself, or unset it to use ~/.pgpass".into(),
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if let Some(flaw) = pgpass::mode_flaw(mode) {
            tracing::warn!("password file {} {flaw}", file.display());
            return PassFile::Ignored(
                format!("mode {:04o} lets group or others read it, as libpq refuses", mode & 0o777),
                format!("`chmod 0600 {}` to use it", file.display()),
            );
        }
    }
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => {
            return PassFile::Ignored(
                format!("cannot be read ({e})"),
                "give the user running ddbsync read access to it".into(),
            )
        }
    };
    match pgpass::lookup(&text, host, port, dbname, user) {
        Some(password) => PassFile::Found(password),
        None => PassFile::NoMatch,
    }
}
