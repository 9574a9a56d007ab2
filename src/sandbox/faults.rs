//! Fault injection: the seeded dice, and the connection-level kill switch that lets a
//! handler drop the TCP connection without writing a response.
//!
//! The kill switch is why the sandbox has its own accept loop instead of `axum::serve`:
//! each connection gets a [`ConnKill`] that is put into every request's extensions, and the
//! connection task drops the connection future as soon as it is triggered.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rand::Rng;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tower::Service;

use super::{api_error, lock, App, SandboxKind};

/// Triggers the drop of the connection that carried a request.
#[derive(Clone)]
pub(crate) struct ConnKill(Arc<Notify>);

/// What the dice decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    None,
    /// Answer 503 before doing anything.
    Fail,
    /// Drop the connection before the change is applied.
    ResetBefore,
    /// Apply the change, then drop the connection: the client never learns it happened.
    ResetAfter,
}

/// Throws the dice for one request. Always draws the same number of values, so the fault
/// sequence depends only on the seed and the order of requests.
pub(crate) fn roll(app: &App) -> Fault {
    let (fail, reset, after): (f64, f64, bool) = {
        let mut rng = lock(&app.fault_rng);
        (rng.random(), rng.random(), rng.random())
    };
    if fail < app.cfg.fail_rate {
        Fault::Fail
    } else if reset < app.cfg.reset_rate {
        if after {
            Fault::ResetAfter
        } else {
            Fault::ResetBefore
        }
    } else {
        Fault::None
    }
}

/// Drops the connection that carried the request. The connection task drops this future
/// along with the connection, so the fallback answer is only reached if the request did
/// not come through [`accept_loop`] (it never should).
pub(crate) async fn drop_connection(kind: SandboxKind, kill: Option<ConnKill>) -> Response {
    if let Some(kill) = kill {
        kill.0.notify_one();
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    api_error(
        kind,
        StatusCode::INTERNAL_SERVER_ERROR,
        "connection reset requested outside the sandbox accept loop",
    )
}

/// Accepts connections until `shutdown` turns true (or its sender is dropped) and serves
/// each one with hyper (HTTP/1.1), with a [`ConnKill`] in every request.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("sandbox: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let kill = Arc::new(Notify::new());
            let conn_kill = ConnKill(kill.clone());
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(conn_kill.clone());
                let mut router = router.clone();
                router.call(req.map(axum::body::Body::new))
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                r = conn => {
                    if let Err(e) = r {
                        tracing::debug!("sandbox: connection ended: {e}");
                    }
                }
                _ = kill.notified() => {}
                _ = shutdown.wait_for(|stop| *stop) => {}
            }
        });
    }
}
