//! End-to-end tests: a real `mosaic server` process driven by the real kubectl
//! 1.37 binary and by kube-rs clients, over real TLS, with real fsync.

mod api;
mod apply;
mod apps;
mod backup;
mod bench;
mod binding;
mod burst;
mod cel;
mod cgroups;
mod chart;
mod chart_rbac;
mod clients;
mod cluster;
mod conditions;
mod constraints;
mod controller_identity;
mod durability;
#[cfg(feature = "etcd")]
mod etcd_cluster;
mod events;
mod fidelity;
mod file_modes;
mod gc;
#[cfg(feature = "etcd")]
mod ha;
mod health;
mod helm;
mod hostile;
mod isolation;
mod kubectl;
mod leader;
mod lint;
mod logs;
mod machinery;
mod maintenance;
mod marathon;
mod module_cycles;
mod newcomer;
mod node_identity;
mod offers;
mod ports;
mod rbac;
mod recovery;
mod scheduling;
mod simulate;
mod support;
mod watch;
