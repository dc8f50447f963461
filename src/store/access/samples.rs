//! Typed access to the usage samples, whose fixed-width rows do not go
//! through the codec (see `tables::USAGE_SAMPLES`).

use std::ops::ControlFlow;

use redb::ReadableTable;

use super::{Reader, Result, Tx, Txn, internal};
use crate::domain::usage::Sample;
use crate::domain::{InstanceId, Millis, ServiceId};
use crate::store::tables::USAGE_SAMPLES;

/// CPU is stored in hundredths of a percent.
const CPU_SCALE: f64 = 100.0;

impl Reader<'_> {
    /// Calls `f` with every sample of `svc` taken in `[from, to)`, in time
    /// order (the instances of one time by id), until `f` breaks.
    pub fn scan_samples(
        &self,
        svc: ServiceId,
        (from, to): (Millis, Millis),
        mut f: impl FnMut(Sample) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        if from >= to {
            return Ok(());
        }
        with_table!(self.txn, USAGE_SAMPLES, |t| {
            // Instance ids start at 1: `(svc, to, 0)` lies before every
            // sample taken at `to`.
            for entry in t.range((svc.0, from, 0)..(svc.0, to, 0)).map_err(internal)? {
                let (key, value) = entry.map_err(internal)?;
                let (_, at, instance) = key.value();
                let (cpu, memory_bytes, disk_bytes) = value.value();
                let sample = Sample {
                    instance: InstanceId(instance),
                    at,
                    cpu_percent: f64::from(cpu) / CPU_SCALE,
                    memory_bytes,
                    disk_bytes,
                };
                if f(sample)?.is_break() {
                    break;
                }
            }
            Ok(())
        })
    }
}

impl Tx<'_> {
    /// Stores samples of any services, opening the table once.
    pub fn put_samples(&mut self, samples: &[(ServiceId, Sample)]) -> Result<()> {
        self.wrote = true;
        let mut t = self.txn.open_table(USAGE_SAMPLES).map_err(internal)?;
        for (svc, s) in samples {
            // Saturates: a negative or huge figure cannot come from /proc.
            let cpu = (s.cpu_percent * CPU_SCALE).round() as u32;
            t.insert((svc.0, s.at, s.instance.0), (cpu, s.memory_bytes, s.disk_bytes)).map_err(internal)?;
        }
        Ok(())
    }

    /// Removes the samples of `svc` taken before `cutoff`, oldest first, at
    /// most `limit` of them; returns how many went.
    pub fn remove_samples_before(&mut self, svc: ServiceId, cutoff: Millis, limit: usize) -> Result<usize> {
        if limit == 0 {
            return Ok(0);
        }
        self.wrote = true;
        let mut t = self.txn.open_table(USAGE_SAMPLES).map_err(internal)?;
        let mut removed = 0;
        let range = (svc.0, Millis::MIN, 0)..(svc.0, cutoff, 0);
        // Only the entries read from the iterator are removed.
        for entry in t.extract_from_if(range, |_, _| true).map_err(internal)?.take(limit) {
            entry.map_err(internal)?;
            removed += 1;
        }
        Ok(removed)
    }
}
