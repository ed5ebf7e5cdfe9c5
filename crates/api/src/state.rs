use std::sync::Arc;

use pier_config::{Config, MetricsConfig};
use pier_ops::{Metrics, Readiness};
use pier_records::Engine;
use pier_storage::{Migration, Store};

use crate::ApiError;

/// What every handler may reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    engine: tokio::sync::OnceCell<Arc<Engine>>,
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
                engine: tokio::sync::OnceCell::new(),
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

    /// The records engine, created on first use once the migrations have been applied (the
    /// database may be unreachable at start).
    ///
    /// # Errors
    /// 503 while the database is unavailable or not migrated.
    pub async fn engine(&self) -> Result<Arc<Engine>, ApiError> {
        if !self.inner.readiness.is_migrated() {
            return Err(ApiError::unavailable("The database is not ready yet."));
        }
        self.inner
            .engine
            .get_or_try_init(|| async { Engine::new(self.inner.store.clone()).await.map(Arc::new) })
            .await
            .cloned()
            .map_err(ApiError::from)
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
