//! The cluster's Prometheus metrics (rendered after the node's own, only when the cluster is on).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Written by the cluster thread (and, for `publish_dropped`, the publish thread).
#[derive(Default)]
pub struct ClusterMetrics {
    pub connected: AtomicU64,
    pub connects: AtomicU64,
    pub disconnects: AtomicU64,
    pub subjects: AtomicU64,
    pub published: AtomicU64,
    pub publish_dropped: AtomicU64,
    pub publish_errors: AtomicU64,
    pub received: AtomicU64,
    pub invalid: AtomicU64,
    pub lost: AtomicU64,
    pub slow_consumer: AtomicU64,
}

impl ClusterMetrics {
    pub fn render(&self, out: &mut String) {
        let rows: [(&str, &str, &str, &AtomicU64); 11] = [
            (
                "holdfast_cluster_connected",
                "gauge",
                "1 while connected to a NATS server, else 0.",
                &self.connected,
            ),
            (
                "holdfast_cluster_connects_total",
                "counter",
                "Connections made to a NATS server (the first one and every reconnect).",
                &self.connects,
            ),
            (
                "holdfast_cluster_disconnects_total",
                "counter",
                "Connections to a NATS server lost.",
                &self.disconnects,
            ),
            (
                "holdfast_cluster_subjects",
                "gauge",
                "Channel subjects this node listens to (channels with local subscribers, and lingering ones).",
                &self.subjects,
            ),
            (
                "holdfast_cluster_published_total",
                "counter",
                "Items accepted here and sent to NATS.",
                &self.published,
            ),
            (
                "holdfast_cluster_publish_dropped_total",
                "counter",
                "Items accepted here that were delivered on this node only: the queue to NATS was full.",
                &self.publish_dropped,
            ),
            (
                "holdfast_cluster_publish_errors_total",
                "counter",
                "Items the NATS client refused to send (e.g. larger than the server's max_payload).",
                &self.publish_errors,
            ),
            (
                "holdfast_cluster_received_total",
                "counter",
                "Items received from other nodes through NATS.",
                &self.received,
            ),
            (
                "holdfast_cluster_invalid_total",
                "counter",
                "Messages from NATS that were not valid holdfast messages, or duplicates.",
                &self.invalid,
            ),
            (
                "holdfast_cluster_lost_total",
                "counter",
                "Items other nodes sent that never arrived here, known from gaps in their sequence numbers.",
                &self.lost,
            ),
            (
                "holdfast_cluster_slow_consumer_total",
                "counter",
                "Messages the NATS client dropped because this node did not take them fast enough.",
                &self.slow_consumer,
            ),
        ];
        for (name, kind, help, v) in rows {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {}", v.load(Relaxed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family() {
        let m = ClusterMetrics::default();
        m.lost.store(3, Relaxed);
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("holdfast_cluster_connected 0\n"), "{out}");
        assert!(out.contains("holdfast_cluster_lost_total 3\n"), "{out}");
        assert_eq!(out.matches("# TYPE").count(), 11);
    }
}
