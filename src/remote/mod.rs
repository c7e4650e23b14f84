//! Recording from OpenAI-compatible inference servers (SGLang, vLLM, llama.cpp server):
//! streamed `/v1/chat/completions` with logprobs, reasoning text, routed experts and the run's
//! provenance, reported step by step as `record::Event`s to a `record::Recorder` (the same path
//! into the store writer as the embedded engine), so an interrupted stream keeps what arrived.
//!
//! Depends on `trace` and `record`; never on `engine`, `store`, `runs` or the front ends. The API key lives only in the request header: it is never part of an
//! error message, a log line or the stored endpoint.

pub mod chunk;
pub mod client;
pub mod error;
pub mod loopback;
pub mod routing;
pub mod sse;
#[cfg(test)]
mod stream_tests;

pub use client::{record, Ended, RemoteOptions, RemoteOutcome, RemoteRequest};
pub use error::{Error, Result};

/// The chat-completions URL of an endpoint given as a server root, a `/v1` base or the full
/// path.
pub fn chat_url(endpoint: &str) -> Result<String> {
    let e = endpoint.trim();
    if !(e.starts_with("http://") || e.starts_with("https://")) {
        return Err(Error::BadEndpoint(redact(e)));
    }
    let (base, query) = match e.find(['?', '#']) {
        Some(i) => e.split_at(i),
        None => (e, ""),
    };
    let base = base.trim_end_matches('/');
    let url = if base.ends_with("/chat/completions") {
        base.to_string()
    } else if base.ends_with("/v1") {
        format!("{base}/chat/completions")
    } else {
        format!("{base}/v1/chat/completions")
    };
    Ok(format!("{url}{query}"))
}

/// The URL without user info, query or fragment: what is stored and shown.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), url),
    };
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_become_chat_urls() {
        assert_eq!(chat_url("http://h:1").unwrap(), "http://h:1/v1/chat/completions");
        assert_eq!(chat_url("http://h:1/v1/").unwrap(), "http://h:1/v1/chat/completions");
        assert_eq!(
            chat_url("https://h/v1/chat/completions?x=1").unwrap(),
            "https://h/v1/chat/completions?x=1"
        );
        assert!(chat_url("h:1").unwrap_err().to_string().contains("'h:1'"));
    }

    #[test]
    fn redaction_drops_credentials_query_and_fragment() {
        assert_eq!(
            redact("https://user:secret@api.example.com:8443/v1/chat/completions?api_key=s3#f"),
            "https://api.example.com:8443/v1/chat/completions"
        );
        assert_eq!(redact("http://h:1"), "http://h:1");
    }
}
