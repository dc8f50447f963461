//! One file per GraphQL type, with its inputs, filter and connection.

pub mod access;
pub mod activity;
pub mod activity_report;
pub mod enums;
pub mod environment;
pub mod instance;
pub mod log_line;
pub mod maintenance;
pub mod metrics;
pub mod monitoring;
pub mod node;
pub mod operation;
pub mod operation_event;
pub mod operation_input;
pub mod pin;
pub mod recovery;
pub mod redeploy;
pub mod running_status;
pub mod selector;
pub mod service;
pub mod service_input;
pub mod status_event;
pub mod step;
pub mod trigger;
pub mod viewer;
pub mod webhook_delivery;
