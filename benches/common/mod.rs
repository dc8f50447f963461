//! What several benchmarks share: the load loop, raw redb commits as a
//! baseline, and the median.

use std::sync::Arc;
use std::time::{Duration, Instant};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Completed requests per second from `clients` concurrent loops over
/// `window`; `make` gets the client's number. A failed request aborts the
/// benchmark: a figure from a run that failed is not a figure.
pub async fn load<F, Fut>(clients: usize, window: Duration, make: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), BoxError>> + Send + 'static,
{
    let make = Arc::new(make);
    let start = Instant::now();
    let deadline = start + window;
    let loops: Vec<_> = (0..clients)
        .map(|client| {
            let make = make.clone();
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    make(client).await.expect("request failed during the benchmark");
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for handle in loops {
        total += handle.await.expect("client loop");
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// Sequential commits of one row each, per second.
pub fn raw_commits(
    db: &redb::Database,
    row: &[u8],
    window: Duration,
    next_key: &mut u64,
) -> anyhow::Result<f64> {
    const TABLE: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("operations");
    let start = Instant::now();
    let mut commits = 0u64;
    while start.elapsed() < window {
        let txn = db.begin_write()?;
        txn.open_table(TABLE)?.insert(*next_key, row)?;
        txn.commit()?;
        *next_key += 1;
        commits += 1;
    }
    Ok(commits as f64 / start.elapsed().as_secs_f64())
}

/// An HTTP client that sends `token` with every request.
pub fn client(token: &str) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse()?);
    Ok(reqwest::Client::builder().default_headers(headers).build()?)
}

pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}
