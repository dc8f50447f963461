//! Stuck operations: how long an operation may run before the engine
//! cancels it.
//!
//! An operation's timeout counts from the moment it starts running (time
//! spent queued does not count).

use super::{DomainError, OperationType, ServiceSpec};

const MINUTE_MS: u64 = 60_000;

/// Longest operation timeout a service may set: one day.
pub const MAX_OPERATION_TIMEOUT_MS: i64 = 86_400_000;

/// How long an operation of `op_type` may run when its service sets no
/// timeout: deploys build, so they get the longest.
pub fn default_timeout_ms(op_type: OperationType) -> u64 {
    match op_type {
        OperationType::Deploy | OperationType::Redeploy => 30 * MINUTE_MS,
        OperationType::Restart
        | OperationType::Scale
        | OperationType::Start
        | OperationType::Stop
        | OperationType::Delete => 10 * MINUTE_MS,
    }
}

/// The timeout of an operation of `op_type` on a service with `spec`: the
/// service's own when it sets one, else the default of the type.
pub fn timeout_ms(op_type: OperationType, spec: &ServiceSpec) -> u64 {
    spec.operation_timeout_ms.unwrap_or_else(|| default_timeout_ms(op_type))
}

/// Checks an operation timeout given by a client: 1 ms to one day.
pub fn parse_operation_timeout_ms(raw: i64) -> Result<u64, DomainError> {
    super::resource::parse_ms_within("operationTimeoutMs", raw, 1..=MAX_OPERATION_TIMEOUT_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deploys_get_thirty_minutes_and_every_other_type_ten() {
        use OperationType::*;
        for (t, minutes) in
            [(Deploy, 30), (Redeploy, 30), (Restart, 10), (Scale, 10), (Start, 10), (Stop, 10), (Delete, 10)]
        {
            assert_eq!(timeout_ms(t, &ServiceSpec::default()), minutes * MINUTE_MS, "{t:?}");
        }
    }

    #[test]
    fn a_service_timeout_replaces_the_default_of_every_type() {
        let spec = ServiceSpec { operation_timeout_ms: Some(300), ..ServiceSpec::default() };
        for t in [OperationType::Deploy, OperationType::Stop, OperationType::Delete] {
            assert_eq!(timeout_ms(t, &spec), 300);
        }
    }

    #[test]
    fn a_spec_stored_before_timeouts_existed_reads_with_the_defaults() {
        let mut stored = serde_json::to_value(ServiceSpec::default()).unwrap();
        stored.as_object_mut().unwrap().remove("operation_timeout_ms");
        let spec: ServiceSpec = serde_json::from_value(stored).unwrap();
        assert_eq!(spec.operation_timeout_ms, None);
    }

    #[test]
    fn timeouts_outside_one_ms_to_one_day_are_bad_user_input() {
        assert_eq!(parse_operation_timeout_ms(1).unwrap(), 1);
        assert_eq!(parse_operation_timeout_ms(MAX_OPERATION_TIMEOUT_MS).unwrap(), 86_400_000);
        for bad in [0, -5, MAX_OPERATION_TIMEOUT_MS + 1] {
            let err = parse_operation_timeout_ms(bad).unwrap_err();
            assert_eq!(err.code().as_str(), "BAD_USER_INPUT", "{bad}");
            assert!(err.to_string().contains("operationTimeoutMs"), "{err}");
        }
    }
}
