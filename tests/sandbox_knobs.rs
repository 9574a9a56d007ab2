//! The sandbox knobs the slow-target benchmark needs (`benches/slow_targets.sh`): a
//! fixed-window rate limit whose Retry-After is the rest of the window, RateLimit-* headers,
//! a latency that changes mid-run, and the count of requests the client gave up on.

use std::time::{Duration, Instant};

use enlist::sandbox::{start, RunningSandbox, SandboxConfig, SandboxKind};

async fn scim(tweak: impl FnOnce(&mut SandboxConfig)) -> RunningSandbox {
    let mut cfg = SandboxConfig {
        kind: SandboxKind::Scim,
        ..SandboxConfig::default()
    };
    tweak(&mut cfg);
    start(cfg).await.expect("sandbox starts")
}

fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .expect("client")
}

fn header(r: &reqwest::Response, name: &str) -> Option<u64> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().expect("ascii").parse().expect("a number"))
}

#[tokio::test]
async fn retry_after_is_the_rest_of_the_window_and_headers_count_down() {
    let sb = scim(|c| {
        c.rate_limit = Some(2);
        c.rate_window = Duration::from_secs(3);
        c.rate_limit_headers = true;
    })
    .await;
    let c = client(Duration::from_secs(5));
    let url = format!("{}/Users", sb.base_url());
    let mut refused = 0;
    // Two windows' quota and one more: at least one request is refused.
    for _ in 0..13 {
        let r = c
            .get(&url)
            .bearer_auth("sandbox-token")
            .send()
            .await
            .unwrap();
        assert_eq!(
            header(&r, "ratelimit-limit"),
            Some(6),
            "2/s over 3 s windows"
        );
        let remaining = header(&r, "ratelimit-remaining").expect("remaining");
        let reset = header(&r, "ratelimit-reset").expect("reset");
        assert!((1..=3).contains(&reset), "reset {reset}");
        if r.status() == 429 {
            refused += 1;
            assert_eq!(remaining, 0);
            assert_eq!(header(&r, "retry-after"), Some(reset));
        } else {
            assert_eq!(r.status(), 200);
            assert!(remaining < 6, "remaining {remaining}");
            assert_eq!(header(&r, "retry-after"), None);
        }
    }
    assert!(refused >= 1, "refused {refused}");
    let stats = sb.stats();
    assert_eq!(stats["rate_limited"], refused);
    let per_second = |name: &str| -> u64 {
        stats[name]
            .as_array()
            .expect("array")
            .iter()
            .map(|v| v.as_u64().unwrap())
            .sum()
    };
    assert_eq!(per_second("limited_per_second"), refused);
    assert_eq!(per_second("per_second"), 13);
    sb.shutdown().await;
}

#[tokio::test]
async fn no_rate_limit_headers_unless_asked() {
    let sb = scim(|c| c.rate_limit = Some(100)).await;
    let r = client(Duration::from_secs(5))
        .get(format!("{}/Users", sb.base_url()))
        .bearer_auth("sandbox-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("ratelimit-limit").is_none());
    sb.shutdown().await;
}

#[tokio::test]
async fn latency_changes_after_the_first_request() {
    let sb = scim(|c| c.latency_after = Some((Duration::ZERO, Duration::from_millis(300)))).await;
    let started = Instant::now();
    let r = client(Duration::from_secs(5))
        .get(format!("{}/Users", sb.base_url()))
        .bearer_auth("sandbox-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A lower bound only: the sandbox sleeps at least this long.
    assert!(started.elapsed() >= Duration::from_millis(300));
    sb.shutdown().await;
}

#[tokio::test]
async fn a_request_the_client_gives_up_on_is_counted_as_abandoned() {
    let sb = scim(|c| c.latency = Duration::from_secs(3)).await;
    let e = client(Duration::from_millis(200))
        .get(format!("{}/Users", sb.base_url()))
        .bearer_auth("sandbox-token")
        .send()
        .await
        .expect_err("the client times out");
    assert!(e.is_timeout(), "{e:?}");
    let mut abandoned = 0;
    for _ in 0..50 {
        abandoned = sb.stats()["abandoned"].as_u64().unwrap();
        if abandoned > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(abandoned, 1);
    assert_eq!(sb.stats()["in_flight"], 0);
    sb.shutdown().await;
}

#[test]
fn cli_knobs() {
    use clap::Parser;
    use enlist::cmd::sandbox::SandboxArgs;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SandboxArgs,
    }

    let cfg = Cli::parse_from(["x"]).args.config().unwrap();
    assert_eq!(cfg.rate_window, Duration::from_secs(1));
    assert!(!cfg.rate_limit_headers);
    assert_eq!(cfg.latency_after, None);

    let cfg = Cli::parse_from([
        "x",
        "--rate-limit",
        "150",
        "--rate-window",
        "10",
        "--rate-limit-headers",
        "--latency",
        "20",
        "--latency-after",
        "7.5:500",
    ])
    .args
    .config()
    .unwrap();
    assert_eq!(cfg.rate_limit, Some(150));
    assert_eq!(cfg.rate_window, Duration::from_secs(10));
    assert!(cfg.rate_limit_headers);
    assert_eq!(
        cfg.latency_after,
        Some((Duration::from_millis(7500), Duration::from_millis(500)))
    );

    for bad in [
        &["x", "--latency-after", "10"][..],
        &["x", "--latency-after", "ten:500"],
        &["x", "--latency-after", "-1:500"],
        &["x", "--latency-after", "10:0.5"],
        &["x", "--rate-limit-headers"],
        &["x", "--rate-limit", "5", "--rate-window", "0"],
    ] {
        assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
    }
}
