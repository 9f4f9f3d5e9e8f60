// SPDX-License-Identifier: MIT OR Apache-2.0
//! The HTTP endpoint that serves the metrics (`GET /metrics`), free of GStreamer: a hyper
//! HTTP/1 server on the plugin's shared runtime ([`crate::net::RUNTIME`]). Every user of the
//! same host and port shares one [`Endpoint`]; the last one to drop it closes the port.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ACCEPT, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

use crate::net::RUNTIME;

/// How long a client may take to send its request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// What the endpoint serves at `/metrics`: the content type and the body, for the request's
/// `Accept` header.
pub type Render = fn(Option<&str>) -> (&'static str, String);

/// A listening endpoint; dropping the last handle stops it and its connections.
#[derive(Debug)]
pub struct Endpoint {
    host: String,
    address: SocketAddr,
    task: tokio::task::AbortHandle,
}

impl Endpoint {
    /// The address the endpoint listens on (its port is the bound one, also for port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://host:port/metrics`.
    pub fn url(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("http://{host}:{}/metrics", self.address.port())
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
        let mut open = lock();
        let key = (self.host.clone(), self.address.port());
        if open.get(&key).is_some_and(|w| w.strong_count() == 0) {
            open.remove(&key);
        }
    }
}

/// The open endpoints by host and bound port.
type Open = HashMap<(String, u16), Weak<Endpoint>>;

static OPEN: LazyLock<Mutex<Open>> = LazyLock::new(Mutex::default);

fn lock() -> std::sync::MutexGuard<'static, Open> {
    OPEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The endpoint on `host` and `port`: the one already open there, or a new one (port 0:
/// always a new one on a free port). Binding happens here, so that a port already taken is
/// this call's error.
pub fn endpoint(host: &str, port: u16, render: Render) -> std::io::Result<Arc<Endpoint>> {
    let mut open = lock();
    if port != 0
        && let Some(existing) = open.get(&(host.to_string(), port)).and_then(Weak::upgrade)
    {
        return Ok(existing);
    }
    let listener = bind(host, port).map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot listen on {host}:{port}: {e}"))
    })?;
    listener.set_nonblocking(true)?;
    let address = listener.local_addr()?;
    let listener = {
        let _runtime = RUNTIME.enter();
        tokio::net::TcpListener::from_std(listener)?
    };
    let task = RUNTIME.spawn(serve(listener, render)).abort_handle();
    let endpoint = Arc::new(Endpoint {
        host: host.to_string(),
        address,
        task,
    });
    open.insert(
        (host.to_string(), address.port()),
        Arc::downgrade(&endpoint),
    );
    Ok(endpoint)
}

/// Binds; a port that an endpoint just closed (its listener is released on the runtime a
/// moment after the last handle went, e.g. an element restarting) is tried again for 1 s.
fn bind(host: &str, port: u16) -> std::io::Result<TcpListener> {
    let mut tries = 0;
    loop {
        match TcpListener::bind((host, port)) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && port != 0 && tries < 20 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            result => return result,
        }
    }
}

/// Accepts connections until aborted; aborting it drops (and so aborts) the connections.
async fn serve(listener: tokio::net::TcpListener, render: Render) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors, or the like: wait a moment rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        // Forget the connections that ended.
        while connections.try_join_next().is_some() {}
        let service = hyper::service::service_fn(move |request| async move {
            Ok::<_, std::convert::Infallible>(respond(&request, render))
        });
        connections.spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(request: &Request<Incoming>, render: Render) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &str, body: String| {
        Response::builder()
            .status(status)
            .header(CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    };
    let text = "text/plain; charset=utf-8";
    if *request.method() != Method::GET && *request.method() != Method::HEAD {
        let mut response = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            text,
            "Only GET is served\n".into(),
        );
        response
            .headers_mut()
            .insert(ALLOW, hyper::header::HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match request.uri().path() {
        "/metrics" => {
            let accept = request.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
            let (content_type, body) = render(accept);
            reply(StatusCode::OK, content_type, body)
        }
        "/" => reply(
            StatusCode::OK,
            "text/html; charset=utf-8",
            "<html><body><a href=\"/metrics\">metrics</a></body></html>\n".into(),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            text,
            "Not found: the metrics are at /metrics\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn render(accept: Option<&str>) -> (&'static str, String) {
        ("text/plain", format!("accept {accept:?}\n"))
    }

    fn get(address: SocketAddr, path: &str) -> String {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    #[test]
    fn one_endpoint_per_port_served_until_the_last_handle_goes() {
        let first = endpoint("127.0.0.1", 0, render).unwrap();
        let port = first.address().port();
        assert_ne!(port, 0);
        assert_eq!(first.url(), format!("http://127.0.0.1:{port}/metrics"));
        let second = endpoint("127.0.0.1", port, render).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        let response = get(first.address(), "/metrics");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(
            response.ends_with("accept Some(\"text/plain\")\n"),
            "{response}"
        );
        assert!(get(first.address(), "/other").starts_with("HTTP/1.1 404"));
        // Another port 0 is another endpoint.
        let other = endpoint("127.0.0.1", 0, render).unwrap();
        assert_ne!(other.address(), first.address());
        drop(first);
        assert!(get(second.address(), "/metrics").starts_with("HTTP/1.1 200"));
        let address = second.address();
        drop(second);
        // The port is closed (the abort lands on the runtime: allow it a moment).
        let closed = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            std::net::TcpStream::connect(address).is_err()
        });
        assert!(closed);
    }

    #[test]
    fn a_port_in_use_is_an_error_naming_it() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let error = endpoint("127.0.0.1", port, render).unwrap_err();
        assert!(
            error.to_string().contains(&format!("127.0.0.1:{port}")),
            "{error}"
        );
    }
}
