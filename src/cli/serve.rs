//! One store, many commands at once. sled lets one process open a store; the process that
//! holds it (the terminal UI, a `record`, any command) also listens on a Unix socket in the
//! store's directory (`thinkdbg.sock`, mode 0600), and a command started while the store is
//! held sends its command line there instead of failing: the holder runs it on a thread
//! against the store it has open, with the command's output (sanitized as always, coloured
//! when the sender's stdout is a terminal) streamed back, and the sender exits with its exit
//! status. The sender closing the connection (Ctrl-C) cancels a generation it started.
//!
//! Wire format: the sender writes one JSON line `{"argv": [...], "cwd": "...", "color": b}`;
//! the holder answers with frames `tag (1 byte) ++ length (u32 LE) ++ bytes`: `o` stdout,
//! `e` stderr, `x` the exit status (one byte). Paths in the command line are made absolute
//! against the sender's directory; the holder's environment applies (THINKDBG_CONFIG, …), and
//! standard input is not forwarded.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Parser;

use super::out::Redirect;
use crate::store::Store;

/// The socket of the process holding the store at `store`.
pub fn socket_path(store: &Path) -> PathBuf {
    store.join("thinkdbg.sock")
}

/// Listens for other processes' commands while `store` is alive; the socket file is removed
/// when it is dropped. Failing to listen (a path too long for a socket, a read-only
/// directory) is logged: other commands then get the store-in-use error as before.
pub fn listen(store: &Arc<Store>) {
    let path = socket_path(store.path());
    if UnixStream::connect(&path).is_err() {
        // Left behind by a process that is gone.
        let _ = std::fs::remove_file(&path);
    }
    let listener = match bind_private(&path) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(socket = %path.display(), "cannot serve other commands: {e}");
            return;
        }
    };
    if let Ok(mut bound) = BOUND.lock() {
        bound.push(path.clone());
    }
    let weak = Arc::downgrade(store);
    LOOPS.fetch_add(1, Ordering::SeqCst);
    let spawned = std::thread::Builder::new()
        .name("store-socket".into())
        .spawn(move || accept_loop(listener, weak, path));
    if let Err(e) = spawned {
        LOOPS.fetch_sub(1, Ordering::SeqCst);
        tracing::warn!("cannot serve other commands: {e}");
    }
}

/// Binds the socket where no other user can reach it, even for a moment: in a fresh directory
/// of mode 0700 beside it, made 0600, then moved into place.
fn bind_private(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = path.with_file_name(format!(".thinkdbg-sock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    let staged = dir.join("s");
    let bound = UnixListener::bind(&staged).and_then(|l| {
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
        l.set_nonblocking(true)?;
        std::fs::rename(&staged, path)?;
        Ok(l)
    });
    let _ = std::fs::remove_dir_all(&dir);
    bound
}

/// The sockets this process listens on, removed by `cleanup` before it exits.
static BOUND: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes this process's sockets (the process is about to exit; a listening thread would not
/// notice in time).
pub fn cleanup() {
    STOPPING.store(true, Ordering::SeqCst);
    if let Ok(mut bound) = BOUND.lock() {
        for p in bound.drain(..) {
            let _ = std::fs::remove_file(p);
        }
    }
    // No connection is taken from here on; the commands already taken run to their end
    // (quitting under them would kill another user's run).
    let start = std::time::Instant::now();
    while LOOPS.load(Ordering::SeqCst) > 0 && start.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(10));
    }
    while ACTIVE.load(Ordering::SeqCst) > 0 {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Set when this process is about to exit: the accept loops stop.
static STOPPING: AtomicBool = AtomicBool::new(false);
/// Accept loops running.
static LOOPS: AtomicUsize = AtomicUsize::new(0);
/// Commands taken from other processes and not yet answered.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// Counts a taken command until it is dropped.
struct Taken;

impl Drop for Taken {
    fn drop(&mut self) {
        ACTIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

fn accept_loop(listener: UnixListener, store: Weak<Store>, path: PathBuf) {
    loop {
        if store.strong_count() == 0 || STOPPING.load(Ordering::SeqCst) {
            break;
        }
        match listener.accept() {
            Ok((conn, _)) => {
                let store = store.clone();
                ACTIVE.fetch_add(1, Ordering::SeqCst);
                let taken = Taken;
                let _ = std::thread::Builder::new().name("store-client".into()).spawn(move || {
                    let _taken = taken;
                    serve_one(conn, &store)
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                tracing::warn!("store socket: {e}");
                break;
            }
        }
    }
    let _ = std::fs::remove_file(path);
    LOOPS.fetch_sub(1, Ordering::SeqCst);
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Request {
    argv: Vec<String>,
    cwd: PathBuf,
    color: bool,
}

fn frame(conn: &Mutex<UnixStream>, tag: u8, bytes: &[u8]) {
    if let Ok(mut c) = conn.lock() {
        let mut buf = Vec::with_capacity(bytes.len() + 5);
        buf.push(tag);
        buf.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        buf.extend_from_slice(bytes);
        let _ = c.write_all(&buf);
    }
}

fn serve_one(conn: UnixStream, store: &Weak<Store>) {
    let _ = conn.set_nonblocking(false);
    // A sender that never sends its request does not hold this process open.
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut line = String::new();
    let Ok(reader) = conn.try_clone() else { return };
    let mut reader = BufReader::new(reader);
    // A connection that only checks the holder listens (`holder_listens`) sends nothing.
    if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
        return;
    }
    let _ = conn.set_read_timeout(None);
    let conn = Arc::new(Mutex::new(conn));
    // The sender going away (Ctrl-C) cancels what it started.
    let on_close: super::out::OnClose = Arc::default();
    let watched = on_close.clone();
    std::thread::spawn(move || {
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest);
        if let Ok(flags) = watched.lock() {
            flags.iter().for_each(|f| f.store(true, Ordering::Relaxed));
        }
    });
    let (o, e) = (conn.clone(), conn.clone());
    let redirect = Redirect {
        stdout: Arc::new(move |b: &[u8]| frame(&o, b'o', b)),
        stderr: Arc::new(move |b: &[u8]| frame(&e, b'e', b)),
        color: false,
        on_close,
    };
    let code = match serde_json::from_str::<Request>(&line) {
        Ok(req) => {
            let redirect = Redirect { color: req.color, ..redirect };
            // Closing: no answer at all, so the sender opens the store itself once it is free.
            let Some(held) = store.upgrade() else { return };
            super::out::redirected(redirect, || run_request(req, held))
        }
        Err(e) => {
            frame(&conn, b'e', format!("error: a malformed request: {e}\n").as_bytes());
            2
        }
    };
    frame(&conn, b'x', &[code]);
}

/// Runs one forwarded command line; its exit status.
fn run_request(req: Request, store: Arc<Store>) -> u8 {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut cli = super::Cli::try_parse_from(&req.argv)?;
        absolutize(&mut cli, &req.cwd);
        super::store_args::with_held(store, || super::dispatch(cli))
    }));
    match outcome {
        Ok(Ok(code)) => exit_byte(code),
        Ok(Err(e)) => {
            match e.downcast_ref::<clap::Error>() {
                Some(c) => errln!("{}", c.render()),
                None => errln!("error: {e:#}"),
            }
            1
        }
        Err(_) => {
            errln!("error: the command failed in the process that holds the store");
            1
        }
    }
}

fn exit_byte(code: ExitCode) -> u8 {
    // `ExitCode` does not say its value; the ones the commands return are these.
    if code == ExitCode::SUCCESS {
        0
    } else if code == ExitCode::from(super::interrupt::INTERRUPTED) {
        super::interrupt::INTERRUPTED
    } else {
        1
    }
}

/// Makes the paths of a forwarded command line absolute against the sender's directory.
fn absolutize(cli: &mut super::Cli, cwd: &Path) {
    let abs = |p: &mut PathBuf| {
        if p.is_relative() && p.as_os_str() != "-" {
            *p = cwd.join(&*p);
        }
    };
    if let Some(p) = cli.store.as_mut() {
        abs(p);
    }
    if let Some(cmd) = cli.command.as_mut() {
        super::for_each_path(cmd, &mut |p| abs(p));
    }
}

/// The holder closed the connection without running the command (it was exiting).
#[derive(Debug, thiserror::Error)]
#[error("the thinkdbg process that held the store exited before it took the command")]
pub struct HolderGone;

/// Whether a process holds the store at `store` and listens for commands.
pub fn holder_listens(store: &Path) -> bool {
    UnixStream::connect(socket_path(store)).is_ok()
}

/// Sends this process's command line to the process holding `store`, copies its output here
/// and returns its exit status.
pub fn forward(store: &Path) -> Result<ExitCode> {
    use std::io::IsTerminal;
    let argv: Vec<String> = std::env::args().collect();
    if argv.iter().skip(1).any(|a| a == "-") {
        bail!(
            "store '{}' is in use by another thinkdbg process, and a command that reads standard input cannot be handed to it; close it or give a file",
            store.display()
        );
    }
    // Gone between the check and now: the command can open the store itself.
    let Ok(mut conn) = UnixStream::connect(socket_path(store)) else {
        return Err(HolderGone.into());
    };
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let req = Request { argv, cwd: std::env::current_dir()?, color };
    let mut line = serde_json::to_string(&req)?;
    line.push('\n');
    conn.write_all(line.as_bytes())?;
    let mut reader = BufReader::new(conn);
    let mut answered = false;
    loop {
        let mut head = [0u8; 5];
        if reader.read_exact(&mut head).is_err() {
            if !answered {
                // It was closing the store: the command can open it itself now.
                return Err(HolderGone.into());
            }
            bail!("the thinkdbg process that holds the store stopped before the command ended");
        }
        answered = true;
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body)?;
        // Already sanitized by the holder's output layer (colour codes included).
        match head[0] {
            b'o' => super::out::pass_through(true, &body)?,
            b'e' => super::out::pass_through(false, &body)?,
            b'x' => return Ok(ExitCode::from(body.first().copied().unwrap_or(1))),
            t => bail!("an unknown frame {t} from the process that holds the store"),
        }
    }
}
