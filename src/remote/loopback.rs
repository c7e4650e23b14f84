//! A loopback HTTP server on its own thread that answers each connection with a prepared
//! response: `bench remote` replays a captured stream through it, and tests use it to play an
//! inference server. Depends on the standard library only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

/// Reads one HTTP request from `sock`: the head up to its blank line, then a body of
/// `Content-Length` bytes, which is returned.
pub fn read_request(sock: &TcpStream) -> std::io::Result<Vec<u8>> {
    let mut reader = BufReader::new(sock.try_clone()?);
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    Ok(body)
}

/// The head of a `200 OK` server-sent-events response, closed after the body.
pub const SSE_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";

/// Serves `responses` in turn (raw bytes, head included), one connection each, then stops;
/// returns the base URL (`http://127.0.0.1:PORT`).
pub fn serve(responses: Vec<Vec<u8>>) -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
    std::thread::spawn(move || {
        for resp in responses {
            let Ok((mut sock, _)) = listener.accept() else { return };
            if read_request(&sock).is_ok() {
                let _ = sock.write_all(&resp);
            }
        }
    });
    Ok(url)
}
