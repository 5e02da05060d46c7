//! A TCP proxy between ddbsync and the test PostgreSQL server for the faults a real server does not
//! produce on demand: a server that stops answering in the middle of a query's rows, and a server
//! that offers no TLS. It reads the protocol's message frames (a type byte and a length) from the
//! server and forwards them unchanged until it is told to stop.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// What the proxy does to the connections through it.
#[derive(Debug, Clone, Copy)]
pub enum PgFault {
    /// Forwards this many rows (DataRow messages, over all connections) and then nothing more,
    /// keeping the connection open: the server looks alive but silent.
    StallAfterRows(usize),
    /// Answers `N` (no TLS here) to the client's SSLRequest, as a server without TLS does, and
    /// forwards the rest.
    NoTls,
}

pub struct PgProxy {
    pub port: u16,
    rows: Arc<AtomicUsize>,
}

/// The protocol's SSLRequest: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

impl PgProxy {
    /// Starts a proxy to the PostgreSQL server on `upstream` (a loopback port), on threads of its
    /// own so that tests may block while ddbsync talks through it.
    pub fn start(upstream: u16, fault: PgFault) -> PgProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let rows = Arc::new(AtomicUsize::new(0));
        let counted = rows.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                let rows = counted.clone();
                std::thread::spawn(move || relay(client, server, fault, rows));
            }
        });
        PgProxy { port, rows }
    }

    /// Rows forwarded so far.
    pub fn rows(&self) -> usize {
        self.rows.load(Ordering::SeqCst)
    }
}

fn relay(mut client: TcpStream, server: TcpStream, fault: PgFault, rows: Arc<AtomicUsize>) {
    let (mut to_server, mut from_client) = (server.try_clone().unwrap(), client.try_clone().unwrap());
    std::thread::spawn(move || {
        if let PgFault::NoTls = fault {
            let mut first = [0u8; 8];
            if from_client.read_exact(&mut first).is_err() {
                return;
            }
            if first == SSL_REQUEST {
                if from_client.write_all(b"N").is_err() {
                    return;
                }
            } else if to_server.write_all(&first).is_err() {
                return;
            }
        }
        let _ = std::io::copy(&mut from_client, &mut to_server);
        let _ = to_server.shutdown(Shutdown::Write);
    });
    let mut from_server = server;
    let limit = match fault {
        PgFault::StallAfterRows(n) => n,
        PgFault::NoTls => usize::MAX,
    };
    // The server's first answer to an SSLRequest is one byte, not a frame; this proxy only
    // stalls unencrypted sessions, which send none.
    loop {
        let mut header = [0u8; 5];
        if from_server.read_exact(&mut header).is_err() {
            break;
        }
        let len = u32::from_be_bytes(header[1..5].try_into().unwrap()) as usize;
        let mut body = vec![0u8; len.saturating_sub(4)];
        if from_server.read_exact(&mut body).is_err() {
            break;
        }
        if header[0] == b'D' && rows.fetch_add(1, Ordering::SeqCst) >= limit {
            // Silent from here on: the connection stays open and nothing more arrives.
            let _ = std::io::copy(&mut from_server, &mut std::io::sink());
            return;
        }
        if client.write_all(&header).and_then(|()| client.write_all(&body)).is_err() {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Write);
}
