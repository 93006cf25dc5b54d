//! A fresh, migrated database per benchmark run on the configured Postgres server, dropped afterwards.

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::config::DatabaseSettings;
use crate::store::{self, Pool};

pub struct ScratchDatabase {
    pub name: String,
    pub settings: DatabaseSettings,
    pub pool: Pool,
}

/// `base` with its database name replaced by `name`.
fn settings_for(base: &DatabaseSettings, name: &str) -> anyhow::Result<DatabaseSettings> {
    let mut url = url::Url::parse(base.url.expose_secret()).context("database.url is not a URL")?;
    url.set_path(&format!("/{name}"));
    Ok(DatabaseSettings { url: SecretString::from(url.to_string()), ..base.clone() })
}

impl ScratchDatabase {
    /// Creates `entrasync_bench_<random>` on the server of `base` and applies every migration.
    pub async fn create(base: &DatabaseSettings) -> anyhow::Result<ScratchDatabase> {
        let name = format!("entrasync_bench_{}", Uuid::new_v4().simple());
        let settings = settings_for(base, &name)?;
        store::ensure_database_exists(&settings).await.context("creating the benchmark database")?;
        store::migrate::run(&settings).await.context("migrating the benchmark database")?;
        let pool = store::pool(&settings).context("the benchmark pool")?;
        Ok(ScratchDatabase { name, settings, pool })
    }

    /// Closes the pool and drops the database (closing any session left).
    pub async fn drop_database(self) -> anyhow::Result<()> {
        self.pool.close();
        store::drop_database(&self.settings).await.with_context(|| format!("dropping {}", self.name))
    }

    /// Drops the database at a benchmark's end; a failure is logged, not fatal (the figures are taken).
    pub async fn drop_or_warn(self) {
        if let Err(error) = self.drop_database().await {
            tracing::warn!(error = format!("{error:#}"), "could not drop the benchmark database");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_the_database_name() {
        let base = DatabaseSettings {
            url: SecretString::from("postgres://u:p@db.example:5433/entrasync?sslmode=disable".to_owned()),
            pool_size: 4,
            connect_timeout: std::time::Duration::from_secs(3),
            session: Default::default(),
        };
        let settings = settings_for(&base, "entrasync_bench_x").expect("settings");
        assert_eq!(settings.url.expose_secret(), "postgres://u:p@db.example:5433/entrasync_bench_x?sslmode=disable");
        assert_eq!(settings.pool_size, 4);
    }
}
