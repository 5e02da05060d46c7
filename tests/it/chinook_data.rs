//! A small Chinook the tests generate, in both of its schemas: a PostgreSQL database built from
//! `tests/data/chinook/postgres.sql` and a SQLite file built from `tests/data/chinook/sqlite.sql`
//! (the DDL of the public Chinook scripts), holding the same rows.
//!
//! The rows come from a fixed seed, so every run and every fresh clone sees the same data without
//! reading anything outside the repository. The values are awkward but legal in both databases:
//! unicode, quotes, a backslash and a line break in names, NULL composers, companies, albums and
//! genres, an artist with no name, albums with no tracks, an invoice with no lines, an empty
//! playlist, prices 0.99, 1.99 and 2.00 (SQLite's NUMERIC affinity stores 2.00 as the INTEGER 2),
//! and dates with and without a time of day, written in each of SQLite's date formats.

use std::fmt::Write;
use std::path::Path;

use chrono::{Duration, NaiveDate};

/// Sizes of the generated store.
pub const ARTISTS: i64 = 30;
pub const ALBUMS: i64 = 60;
pub const TRACKS: i64 = 400;
pub const CUSTOMERS: i64 = 20;
pub const INVOICES: i64 = 80;
pub const EMPLOYEES: i64 = 8;
pub const PLAYLISTS: i64 = 10;

/// One value of a row, spelled for each database.
#[derive(Clone, Debug)]
pub enum V {
    Null,
    Int(i64),
    Text(String),
    /// A NUMERIC(10,2) as written in SQL (`0.99`); SQLite is given the double, as its own
    /// Chinook file holds it.
    Price(String),
    /// A timestamp: the text PostgreSQL is given, and the text the SQLite file holds (the same
    /// instant, sometimes in another of SQLite's formats).
    Date {
        pg: String,
        lite: String,
    },
}

fn text(s: &str) -> V {
    V::Text(s.to_string())
}

fn opt(s: Option<&str>) -> V {
    s.map(text).unwrap_or(V::Null)
}

fn date(s: &str) -> V {
    V::Date { pg: s.to_string(), lite: s.to_string() }
}

/// A table: its PostgreSQL name and columns (SQLite's are the same in PascalCase) and its rows.
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [&'static str],
    pub rows: Vec<Vec<V>>,
}

/// `invoice_line` → `InvoiceLine`: Chinook's SQLite names.
pub fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_uppercase().chain(c).collect::<String>()).unwrap_or_default()
        })
        .collect()
}

/// The generated store: every table, in an order that satisfies the foreign keys.
pub struct Chinook {
    pub tables: Vec<Table>,
}

/// splitmix64: a fixed sequence from a fixed seed, with no dependency to pin.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.range(0, from.len() as i64 - 1) as usize]
    }
}

const ARTIST_NAMES: &[&str] = &[
    "AC/DC",
    "Guns N' Roses",
    "\"Weird Al\" Yankovic",
    "Sigur Rós",
    "Björk",
    "Motörhead",
    "坂本龍一",
    "Mötley Crüe",
    "Кино",
    "Beyoncé",
    "O'Connor & Sons",
    "Ólafur Arnalds",
    "Back\\slash",
    "Emoji 🎸 Orchestra",
    "Trailing Space ",
    "Ελληνικά",
    "עברית",
    "Hüsker Dü",
    "Queensrÿche",
    "Zoë Keating",
];
const WORDS: &[&str] =
    &["Rock", "Night", "Fire", "Blue", "Été", "Mañana", "Don't", "Stop", "Ängel", "夜", "\"Live\"", "Road"];
const COMPOSERS: &[&str] = &[
    "Angus Young, Malcolm Young, Brian Johnson",
    "O'Brien",
    "José González",
    "Jóhann Jóhannsson",
    "坂本龍一",
    "B. Smith & J. Doe",
];
const GENRES: &[&str] = &[
    "Rock",
    "Jazz",
    "Metal",
    "Alternative & Punk",
    "R&B/Soul",
    "Bossa Nova",
    "Música Popular",
    "Hip Hop/Rap",
    "Électronique",
    "Classical",
];
const MEDIA: &[&str] = &[
    "MPEG audio file",
    "Protected AAC audio file",
    "Protected MPEG-4 video file",
    "Purchased AAC audio file",
    "AAC audio file",
];
const FIRST: &[&str] =
    &["François", "Bjørn", "Zoë", "Łukasz", "Søren", "Ana María", "O'Neil", "Jürgen", "Ævar", "Nuño"];
const LAST: &[&str] =
    &["Tremblay", "Hansen", "O'Reilly", "Müller", "Nuñez", "Gonçalves", "Kowalski", "Dvořák", "Smith", "Øster"];
const CITIES: &[&str] = &["São Paulo", "Montréal", "Reykjavík", "Kraków", "Edinburgh", "Москва", "Zürich", "Stuttgart"];

/// The store, from the fixed seed.
pub fn generate() -> Chinook {
    let mut rng = Rng(0x00C4_1200_2026);
    let genres = (1..=GENRES.len() as i64).map(|i| vec![V::Int(i), text(GENRES[i as usize - 1])]).collect();
    let media = (1..=MEDIA.len() as i64).map(|i| vec![V::Int(i), text(MEDIA[i as usize - 1])]).collect();

    // Artist 7 has no name (the column allows it); the others from the list, then numbered.
    let artists = (1..=ARTISTS)
        .map(|i| {
            let name = match i {
                7 => None,
                _ => Some(ARTIST_NAMES.get(i as usize - 1).map(|s| s.to_string()).unwrap_or(format!("Artist {i}"))),
            };
            vec![V::Int(i), opt(name.as_deref())]
        })
        .collect();
    // Artists 29 and 30 have no album; albums 59 and 60 no track.
    let albums = (1..=ALBUMS)
        .map(|i| {
            let title = format!("{} {} ({i})", rng.pick(WORDS), rng.pick(WORDS));
            vec![V::Int(i), V::Text(title), V::Int(rng.range(1, ARTISTS - 2))]
        })
        .collect();

    let mut prices = Vec::new();
    let tracks = (1..=TRACKS)
        .map(|i| {
            let name = match i {
                13 => "Line\nBreak".to_string(),
                14 => "Tab\there".to_string(),
                15 => "It's \"quoted\" \\ slashed".to_string(),
                _ => format!("{} {} {i}", rng.pick(WORDS), rng.pick(WORDS)),
            };
            let album = if i > TRACKS - 2 { V::Null } else { V::Int(rng.range(1, ALBUMS - 2)) };
            let genre = if i % 37 == 0 { V::Null } else { V::Int(rng.range(1, GENRES.len() as i64)) };
            let composer = if rng.range(0, 3) == 0 { V::Null } else { text(rng.pick(COMPOSERS)) };
            let bytes = if i % 11 == 0 { V::Null } else { V::Int(rng.range(100_000, 900_000_000)) };
            let price = match rng.range(0, 9) {
                0 => "2.00",
                1 | 2 => "1.99",
                _ => "0.99",
            };
            prices.push(price);
            vec![
                V::Int(i),
                V::Text(name),
                album,
                V::Int(rng.range(1, MEDIA.len() as i64)),
                genre,
                composer,
                V::Int(rng.range(1_000, 2_000_000)),
                bytes,
                V::Price(price.into()),
            ]
        })
        .collect();

    // The general manager (1) reports to no one; two managers under them; staff under those.
    let employees = [
        (1, "Adams", "Andrew", Some("General Manager"), None, "1962-02-18 00:00:00", "2002-08-14 00:00:00"),
        (2, "Edwards", "Nancy", Some("Sales Manager"), Some(1), "1958-12-08", "2002-05-01 08:30:00"),
        (3, "Peacock", "Jane", Some("Sales Support Agent"), Some(2), "1973-08-29 00:00:00", "2002-04-01 09:00"),
        (4, "O'Hara", "Margaret", Some("Sales Support Agent"), Some(2), "1947-09-19", "2003-05-03 00:00:00"),
        (5, "Müller", "Steve", Some("Sales Support Agent"), Some(2), "1965-03-03 00:00:00", "2003-10-17 13:45:10"),
        (6, "Mitchell", "Michael", Some("IT Manager"), Some(1), "1973-07-01 00:00:00", "2003-10-17"),
        (7, "Ñúñez", "Robert", None, Some(6), "1970-05-29 00:00:00", "2004-01-02 00:00:00"),
        (8, "Callahan", "Laura", Some("IT Staff"), Some(6), "1968-01-09 00:00:00", "2004-03-04 00:00:00"),
    ];
    let employees = employees
        .into_iter()
        .map(|(id, last, first, title, reports, born, hired)| {
            // Employee 7's hire date is stored with the `T` separator in the SQLite file.
            let hired = if id == 7 { V::Date { pg: hired.into(), lite: hired.replace(' ', "T") } } else { date(hired) };
            vec![
                V::Int(id),
                text(last),
                text(first),
                opt(title),
                reports.map(V::Int).unwrap_or(V::Null),
                date(born),
                hired,
                text(&format!("{id} Rue de l'Église")),
                text(CITIES[id as usize % CITIES.len()]),
                if id % 2 == 0 { text("AB") } else { V::Null },
                text("Canada"),
                text(&format!("T{id}K 2N1")),
                text(&format!("+1 (403) 262-34{id:02}")),
                if id == 8 { V::Null } else { text(&format!("+1 (403) 262-33{id:02}")) },
                if id == 8 { V::Null } else { text(&format!("{}@chinookcorp.com", first.to_lowercase())) },
            ]
        })
        .collect();

    // Customer 20 has no support rep; one in four has a company.
    let mut addresses = Vec::new();
    let customers = (1..=CUSTOMERS)
        .map(|i| {
            let (first, last) = (FIRST[i as usize % FIRST.len()], LAST[(i as usize * 7) % LAST.len()]);
            let city = CITIES[i as usize % CITIES.len()];
            let address = format!("{} Main Street, apt. \"{i}\"", i * 3);
            let state = if i % 3 == 0 { None } else { Some("QC") };
            let postal = if i % 5 == 0 { None } else { Some(format!("{:05}", i * 1234)) };
            addresses.push((address.clone(), city, state, postal.clone()));
            vec![
                V::Int(i),
                text(first),
                text(last),
                if i % 4 == 0 { text(&format!("Société {last} & Cie")) } else { V::Null },
                V::Text(address),
                text(city),
                opt(state),
                text("Brazil"),
                opt(postal.as_deref()),
                text(&format!("+55 (12) 3923-{i:04}")),
                if i % 2 == 0 { V::Null } else { text(&format!("+55 (12) 3923-{:04}", i + 5000)) },
                text(&format!("{}.{}{i}@example.com", first.to_lowercase(), last.to_lowercase())),
                if i == CUSTOMERS { V::Null } else { V::Int(3 + i % 3) },
            ]
        })
        .collect();

    // Invoices from January 2021, nine days apart, their dates written in each format; invoice 23
    // has no line. The total is the sum of the lines, in cents.
    let start = NaiveDate::from_ymd_opt(2021, 1, 1).unwrap();
    let (mut invoices, mut lines) = (Vec::new(), Vec::new());
    let mut line_id = 0;
    for i in 1..=INVOICES {
        let day = start + Duration::days((i - 1) * 9);
        let d = day.format("%Y-%m-%d").to_string();
        let at = match i % 5 {
            0 => date(&d),
            1 => date(&format!("{d} 00:00:00")),
            2 => date(&format!("{d} {:02}:{:02}:{:02}", rng.range(0, 23), rng.range(0, 59), rng.range(0, 59))),
            3 => date(&format!("{d} {:02}:{:02}", rng.range(0, 23), rng.range(0, 59))),
            _ => {
                let pg = format!("{d} 18:05:09");
                V::Date { lite: pg.replace(' ', "T"), pg }
            }
        };
        let customer = (i - 1) % CUSTOMERS + 1;
        let mut cents = 0;
        let count = if i == 23 { 0 } else { rng.range(1, 5) };
        for _ in 0..count {
            line_id += 1;
            let track = rng.range(1, TRACKS);
            let price = prices[track as usize - 1];
            let quantity = rng.range(1, 2);
            cents += price.replace('.', "").parse::<i64>().unwrap() * quantity;
            lines.push(vec![V::Int(line_id), V::Int(i), V::Int(track), V::Price(price.into()), V::Int(quantity)]);
        }
        let (address, city, state, postal) = &addresses[customer as usize - 1];
        invoices.push(vec![
            V::Int(i),
            V::Int(customer),
            at,
            V::Text(address.clone()),
            text(city),
            opt(*state),
            text("Brazil"),
            opt(postal.as_deref()),
            V::Price(format!("{}.{:02}", cents / 100, cents % 100)),
        ]);
    }

    // Playlist 10 is empty.
    let mut playlist_tracks = Vec::new();
    let playlists = (1..=PLAYLISTS)
        .map(|i| {
            if i < PLAYLISTS {
                let mut chosen: Vec<i64> = (0..rng.range(5, 40)).map(|_| rng.range(1, TRACKS)).collect();
                chosen.sort();
                chosen.dedup();
                playlist_tracks.extend(chosen.into_iter().map(|t| vec![V::Int(i), V::Int(t)]));
            }
            vec![V::Int(i), text(&format!("{} Mix #{i}", rng.pick(WORDS)))]
        })
        .collect();

    let table = |name, columns, rows| Table { name, columns, rows };
    Chinook {
        tables: vec![
            table("genre", &["genre_id", "name"], genres),
            table("media_type", &["media_type_id", "name"], media),
            table("artist", &["artist_id", "name"], artists),
            table("album", &["album_id", "title", "artist_id"], albums),
            table(
                "track",
                &[
                    "track_id",
                    "name",
                    "album_id",
                    "media_type_id",
                    "genre_id",
                    "composer",
                    "milliseconds",
                    "bytes",
                    "unit_price",
                ],
                tracks,
            ),
            table(
                "employee",
                &[
                    "employee_id",
                    "last_name",
                    "first_name",
                    "title",
                    "reports_to",
                    "birth_date",
                    "hire_date",
                    "address",
                    "city",
                    "state",
                    "country",
                    "postal_code",
                    "phone",
                    "fax",
                    "email",
                ],
                employees,
            ),
            table(
                "customer",
                &[
                    "customer_id",
                    "first_name",
                    "last_name",
                    "company",
                    "address",
                    "city",
                    "state",
                    "country",
                    "postal_code",
                    "phone",
                    "fax",
                    "email",
                    "support_rep_id",
                ],
                customers,
            ),
            table(
                "invoice",
                &[
                    "invoice_id",
                    "customer_id",
                    "invoice_date",
                    "billing_address",
                    "billing_city",
                    "billing_state",
                    "billing_country",
                    "billing_postal_code",
                    "total",
                ],
                invoices,
            ),
            table("invoice_line", &["invoice_line_id", "invoice_id", "track_id", "unit_price", "quantity"], lines),
            table("playlist", &["playlist_id", "name"], playlists),
            table("playlist_track", &["playlist_id", "track_id"], playlist_tracks),
        ],
    }
}

impl Chinook {
    /// The rows as PostgreSQL INSERT statements, for a database made with `postgres.sql`.
    pub fn postgres_inserts(&self) -> String {
        let mut sql = String::new();
        for t in &self.tables {
            if t.rows.is_empty() {
                continue;
            }
            let _ = writeln!(sql, "INSERT INTO {} ({}) VALUES", t.name, t.columns.join(", "));
            for (n, row) in t.rows.iter().enumerate() {
                let values: Vec<String> = row
                    .iter()
                    .map(|v| match v {
                        V::Null => "NULL".to_string(),
                        V::Int(i) => i.to_string(),
                        V::Price(p) => p.clone(),
                        // standard_conforming_strings: only the quote is special.
                        V::Text(s) | V::Date { pg: s, .. } => format!("'{}'", s.replace('\'', "''")),
                    })
                    .collect();
                let end = if n + 1 == t.rows.len() { ";" } else { "," };
                let _ = writeln!(sql, "    ({}){end}", values.join(", "));
            }
        }
        sql
    }

    /// Creates the SQLite file at `path` with Chinook's SQLite schema and these rows.
    pub fn write_sqlite(&self, path: &Path) {
        let mut db = rusqlite::Connection::open(path).expect("create the SQLite file");
        let ddl = std::fs::read_to_string(crate::harness::repo().join("tests/data/chinook/sqlite.sql")).unwrap();
        db.execute_batch(&ddl).expect("Chinook's SQLite schema");
        let tx = db.transaction().unwrap();
        for t in &self.tables {
            let columns: Vec<String> = t.columns.iter().map(|c| format!("[{}]", pascal(c))).collect();
            let marks = vec!["?"; columns.len()].join(", ");
            let sql = format!("INSERT INTO [{}] ({}) VALUES ({marks})", pascal(t.name), columns.join(", "));
            let mut insert = tx.prepare(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
            for row in &t.rows {
                let values = row.iter().map(|v| match v {
                    V::Null => rusqlite::types::Value::Null,
                    V::Int(i) => rusqlite::types::Value::Integer(*i),
                    V::Price(p) => rusqlite::types::Value::Real(p.parse().unwrap()),
                    V::Text(s) | V::Date { lite: s, .. } => rusqlite::types::Value::Text(s.clone()),
                });
                insert.execute(rusqlite::params_from_iter(values)).unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        }
        tx.commit().unwrap();
    }

    pub fn table(&self, name: &str) -> &Table {
        self.tables.iter().find(|t| t.name == name).unwrap()
    }
}
