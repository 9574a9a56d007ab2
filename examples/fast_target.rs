//! A deliberately trivial users endpoint for throughput benchmarks: `POST /users/user`
//! answers 200 with a fixed JSON body, no auth check, no state, so that the endpoint is
//! not the bottleneck when `enlist run` and `wrk` are compared (benches/run_vs_wrk.sh).
//!
//! `cargo run --release --example fast_target -- 127.0.0.1:18080 [WORKER_THREADS]`
//!
//! Listens on loopback only (the address must be a 127.0.0.1 / ::1 address).

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;

const BODY: &str = r#"{"econtext":{"result":{"user":{"id":"x"}}}}"#;

async fn create_user(_body: axum::body::Bytes) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        BODY,
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let addr: std::net::SocketAddr = args.get(1).map_or("127.0.0.1:18080", |s| s).parse()?;
    if !addr.ip().is_loopback() {
        return Err("fast_target listens on loopback only".into());
    }
    let threads: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let app = Router::new().route("/users/user", post(create_user));
        let listener = tokio::net::TcpListener::bind(addr).await?;
        eprintln!("fast_target listening on http://{}", listener.local_addr()?);
        axum::serve(listener, app).await?;
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
