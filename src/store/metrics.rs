//! Usage samples: written by monitoring's sampler, one transaction per
//! pass for every instance; read back as a bucketed series; deleted by
//! retention (see [`super::retention::expire_samples`]).

use std::ops::ControlFlow;

use super::access::{Reader, Result, Tx};
use crate::domain::ServiceId;
use crate::domain::usage::{Bucketizer, MetricsRange, Sample, Series};

/// Stores one sampling pass.
pub fn record(tx: &mut Tx<'_>, samples: &[(ServiceId, Sample)]) -> Result<()> {
    tx.put_samples(samples)
}

/// The metrics of `svc` over `range`, read in one range scan and bucketed
/// as they are read (memory stays bounded by the buckets, whatever the
/// number of samples).
pub fn series(r: Reader<'_>, svc: ServiceId, range: MetricsRange) -> Result<Series> {
    let mut buckets = Bucketizer::new(range);
    r.scan_samples(svc, (range.from, range.to), |sample| {
        buckets.add(&sample);
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(buckets.finish())
}
