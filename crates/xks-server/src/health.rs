//! The deep health check: run in the background, cached, never served stale.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use arc_swap::ArcSwapOption;
use tokio::task::JoinHandle;
use xks_keymanager::{KeyManager, NodeHealth};
use xks_protocol::{EkmFleetDetail, ErrorName, HealthResponse, HealthStatus, XksError};

use crate::config::HealthConfig;

/// The oldest deep-check result GetHealthStatus may report (fact sheet §6).
pub const MAX_HEALTH_AGE: Duration = Duration::from_secs(60);

/// The most fleet entries GetHealthStatus may report (fact sheet §6).
const MAX_FLEET_ENTRIES: usize = 10;

/// Runs the key manager's deep check on a schedule and keeps the latest result.
#[derive(Debug)]
pub struct HealthMonitor {
    latest: ArcSwapOption<Snapshot>,
    km: Arc<dyn KeyManager>,
    config: HealthConfig,
}

#[derive(Debug)]
struct Snapshot {
    taken: Instant,
    nodes: Vec<NodeHealth>,
}

// === impl HealthMonitor ===

impl HealthMonitor {
    /// A monitor for `km`; nothing runs until [`HealthMonitor::check_now`] or
    /// [`HealthMonitor::spawn`].
    pub fn new(km: Arc<dyn KeyManager>, config: HealthConfig) -> Arc<Self> {
        Arc::new(Self {
            latest: ArcSwapOption::empty(),
            km,
            config,
        })
    }

    /// Runs one deep check now, under the configured deadline, and caches it.
    pub async fn check_now(&self) {
        let nodes = match tokio::time::timeout(self.config.timeout, self.km.health()).await {
            Ok(nodes) => nodes,
            Err(_) => {
                tracing::warn!(
                    backend = self.km.backend_name(),
                    timeout = ?self.config.timeout,
                    "deep health check timed out; reporting the key manager unavailable"
                );
                self.unavailable_nodes()
            }
        };
        for node in &nodes {
            if node.status != HealthStatus::Active {
                tracing::warn!(node = %node.id, status = ?node.status, "key manager node not active");
            }
        }
        self.latest.store(Some(Arc::new(Snapshot {
            taken: Instant::now(),
            nodes,
        })));
    }

    /// The previous node list marked unavailable, or one entry for the backend.
    fn unavailable_nodes(&self) -> Vec<NodeHealth> {
        match self.latest.load_full() {
            Some(prev) if !prev.nodes.is_empty() => prev
                .nodes
                .iter()
                .map(|n| NodeHealth {
                    status: HealthStatus::Unavailable,
                    ..n.clone()
                })
                .collect(),
            _ => vec![NodeHealth {
                id: self.km.backend_name().to_owned(),
                model: self.km.backend_name().to_owned(),
                status: HealthStatus::Unavailable,
            }],
        }
    }

    /// Starts the background schedule. The task ends when the monitor is dropped
    /// by everyone else, or when the handle is aborted.
    pub fn spawn(self: &Arc<Self>) -> JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let interval = self.config.interval;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(monitor) = weak.upgrade() else {
                    return;
                };
                monitor.check_now().await;
            }
        })
    }

    /// The GetHealthStatus answer from the cached deep check.
    ///
    /// **Conformance** (fact sheet §6, where the spec is silent): with no result
    /// younger than 60 s the answer is `DependencyTimeoutException`; when no node can
    /// serve traffic it is `InternalException`, since a 200 would tell KMS the proxy is
    /// ready for crypto. Otherwise 200 with one entry per node (at most 10).
    pub fn response(&self) -> Result<HealthResponse, XksError> {
        let snapshot = self.latest.load();
        let Some(snapshot) = snapshot
            .as_ref()
            .filter(|s| s.taken.elapsed() <= MAX_HEALTH_AGE)
        else {
            return Err(XksError::with_message(
                ErrorName::DependencyTimeoutException,
                "no deep health check of the external key manager has completed in the last 60 seconds",
            ));
        };
        if !snapshot
            .nodes
            .iter()
            .any(|n| matches!(n.status, HealthStatus::Active | HealthStatus::Degraded))
        {
            return Err(XksError::with_message(
                ErrorName::InternalException,
                "no external key manager node can serve traffic",
            ));
        }
        let details = snapshot
            .nodes
            .iter()
            .take(MAX_FLEET_ENTRIES)
            .map(|n| EkmFleetDetail {
                id: n.id.clone(),
                model: n.model.clone(),
                health_status: n.status,
            })
            .collect();
        Ok(HealthResponse {
            xks_proxy_fleet_size: self.config.fleet_size,
            xks_proxy_vendor: self.config.proxy_vendor.clone(),
            xks_proxy_model: self.config.proxy_model.clone(),
            ekm_vendor: self.km.vendor().to_owned(),
            ekm_fleet_details: details,
        })
    }
}
