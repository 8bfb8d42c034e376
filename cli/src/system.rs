//! The whole system in one process: the four services side by side on one bus, as
//! `dbt-ops up` runs them and the end-to-end tests start them.

use dbtops_bus::Bus;
use dbtops_settings::Settings;
use tokio::sync::watch;

/// Why a service stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    /// The detector failed.
    #[error("detector: {0}")]
    Detector(#[from] dbtops_detector::DetectorError),
    /// The fixer failed.
    #[error("fixer: {0}")]
    Fixer(#[from] dbtops_fixer::FixerError),
    /// The validator failed.
    #[error("validator: {0}")]
    Validator(#[from] dbtops_validator::ValidatorError),
    /// Delivery failed.
    #[error("delivery: {0}")]
    Delivery(#[from] dbtops_delivery::DeliveryError),
}

/// Runs detector, fixer, validator and delivery until `shutdown` resolves; each drains what
/// it has in flight before this returns.
pub async fn run_all(
    bus: Bus,
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), SystemError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut receiver: watch::Receiver<bool>| async move {
        // An error means the sender is gone: stop too.
        let _ = receiver.wait_for(|stop| *stop).await;
    };
    // Boxed: the four services' futures together are too large for a worker thread's stack.
    let detector = Box::pin(dbtops_detector::run(
        bus.clone(),
        settings.clone(),
        stopped(stop_rx.clone()),
    ));
    let fixer = Box::pin(dbtops_fixer::run(
        bus.clone(),
        settings.clone(),
        stopped(stop_rx.clone()),
    ));
    let validator = Box::pin(dbtops_validator::run(
        bus.clone(),
        settings.clone(),
        stopped(stop_rx.clone()),
    ));
    let delivery = Box::pin(dbtops_delivery::run(bus, settings, stopped(stop_rx)));
    let services = async {
        let (detector, fixer, validator, delivery) =
            tokio::join!(detector, fixer, validator, delivery);
        detector?;
        fixer?;
        validator?;
        delivery?;
        Ok::<(), SystemError>(())
    };
    let mut services = Box::pin(services);
    tokio::select! {
        result = &mut services => result,
        _ = shutdown => {
            let _ = stop_tx.send(true);
            services.await
        }
    }
}
