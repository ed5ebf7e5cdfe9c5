use std::sync::Arc;

use pier_config::{Config, MetricsConfig};
use pier_ops::{Metrics, Readiness};
use pier_storage::{Migration, Store};

/// What every handler may reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    migrations: &'static [Migration],
    metrics_access: MetricsConfig,
    production: bool,
}

impl AppState {
    /// Builds the state from its parts.
    pub fn new(
        config: &Config,
        store: Store,
        metrics: Arc<Metrics>,
        readiness: Arc<Readiness>,
        migrations: &'static [Migration],
    ) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                store,
                metrics,
                readiness,
                migrations,
                metrics_access: config.metrics.clone(),
                production: config.is_production(),
            }),
        }
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The metric registry.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub(crate) fn readiness(&self) -> &Readiness {
        &self.inner.readiness
    }

    pub(crate) fn migrations(&self) -> &'static [Migration] {
        self.inner.migrations
    }

    pub(crate) fn metrics_access(&self) -> &MetricsConfig {
        &self.inner.metrics_access
    }

    pub(crate) fn production(&self) -> bool {
        self.inner.production
    }
}
