//! Errors of the remote client. Messages name the endpoint (without credentials), the SSE line
//! and its content in 'single quotes'; they never contain the API key.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("endpoint '{0}' is not an http:// or https:// URL")]
    BadEndpoint(String),
    #[error("environment variable '{0}' (from --api-key-env) is not set")]
    NoApiKey(String),
    #[error("cannot connect to '{endpoint}': {message}")]
    Connect { endpoint: String, message: String },
    #[error("'{endpoint}' accepted the connection but sent no response: {message}")]
    NoResponse { endpoint: String, message: String },
    #[error("'{endpoint}' answered HTTP {status}: {message}")]
    Http { endpoint: String, status: u16, message: String },
    #[error(
        "'{endpoint}' did not stream: content type '{content_type}' instead of 'text/event-stream'"
    )]
    NotStreaming { endpoint: String, content_type: String },
    #[error("no data from '{endpoint}' for {secs} s (idle timeout, --idle-timeout)")]
    Idle { endpoint: String, secs: u64 },
    #[error("the stream from '{endpoint}' broke: {message}")]
    Broken { endpoint: String, message: String },
    #[error("malformed SSE line {line}: {message}: '{content}'")]
    Sse { line: usize, message: String, content: String },
    #[error("the server reported an error in the stream (SSE line {line}): {message}")]
    Server { line: usize, message: String },
    #[error("routed experts: {0}")]
    Routing(String),
    #[error("cancelled by the user")]
    Cancelled,
}

pub type Result<T> = std::result::Result<T, Error>;

/// At most `max` characters of `s`, control characters escaped: for quoting server text in
/// an error message.
pub fn quote(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).flat_map(char::escape_debug).collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}
