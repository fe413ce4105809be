//! End-to-end tests: a real `mosaic server` process driven by the real kubectl
//! 1.37 binary and by kube-rs clients, over real TLS, with real fsync.

mod api;
mod apply;
mod bench;
mod burst;
mod cgroups;
mod chart;
mod chart_rbac;
mod cluster;
mod durability;
mod events;
mod gc;
mod health;
mod helm;
mod kubectl;
mod leader;
mod logs;
mod machinery;
mod newcomer;
mod offers;
mod rbac;
mod recovery;
mod scheduling;
mod simulate;
mod support;
mod watch;
