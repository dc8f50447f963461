//! Typed ids and their global (`Node`) form.
//!
//! Ids are monotonic `u64`s allocated by the store. Clients see them as
//! global ids with a type prefix (`svc_12`), so `node(id:)` can tell which
//! table to read and an id of one type is never mistaken for another.

/// Declares a typed id: the struct, its global form (`Display`) and its
/// parsing (`FromStr`, `BAD_USER_INPUT` naming the expected form). Used
/// here and by the status page's ids.
macro_rules! typed_id {
    ($name:ident, $prefix:literal, $kind:literal) => {
        #[doc = concat!("Id of a ", $kind, "; its global form is `", $prefix, "_<n>`.")]
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize, ::serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            pub const PREFIX: &'static str = $prefix;
            pub const KIND: &'static str = $kind;
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}_{}", $prefix, self.0)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::domain::DomainError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.strip_prefix(concat!($prefix, "_"))
                    .and_then(|n| n.parse::<u64>().ok())
                    .map($name)
                    .ok_or_else(|| {
                        $crate::domain::DomainError::bad_input(
                            "id",
                            format!("`{s}` is not a {} id (expected {}_<number>)", $kind, $prefix),
                        )
                    })
            }
        }
    };
}
pub(crate) use typed_id;

typed_id!(OrganizationId, "org", "Organization");
typed_id!(EnvironmentId, "env", "Environment");
typed_id!(ServiceId, "svc", "Service");
typed_id!(InstanceId, "inst", "Instance");
typed_id!(OperationId, "op", "Operation");
typed_id!(MaintenanceId, "mnt", "Maintenance campaign");
typed_id!(MemberId, "mem", "Member");
typed_id!(TokenId, "tok", "Token");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_ids_round_trip() {
        let id: ServiceId = "svc_42".parse().unwrap();
        assert_eq!(id, ServiceId(42));
        assert_eq!(id.to_string(), "svc_42");
    }

    #[test]
    fn an_id_of_another_type_is_refused_with_a_clear_message() {
        let err = "op_1".parse::<ServiceId>().unwrap_err();
        assert_eq!(err.code().as_str(), "BAD_USER_INPUT");
        assert!(err.to_string().contains("not a Service id"), "{err}");
        assert!("svc_x".parse::<ServiceId>().is_err());
        assert!("".parse::<ServiceId>().is_err());
    }
}
