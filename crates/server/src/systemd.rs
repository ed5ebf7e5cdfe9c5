//! systemd's service protocol (`Type=notify`): `READY=1` once the listener accepts, `WATCHDOG=1`
//! at half the unit's `WatchdogSec` while the runtime runs, `STOPPING=1` when shutdown starts.
//! Without `NOTIFY_SOCKET` (not under systemd) each call does nothing. The `sd-notify` crate
//! reads systemd's own `NOTIFY_SOCKET` and `WATCHDOG_USEC`, the one place outside the
//! configuration crate where the environment is read: they are the protocol, not settings.

use std::time::Duration;

use sd_notify::NotifyState;

/// The listener accepts: start-up is over.
pub fn ready() {
    notify(&[NotifyState::Ready]);
    let mut usec = 0;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        let every = Duration::from_micros(usec / 2);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                notify(&[NotifyState::Watchdog]);
            }
        });
    }
}

/// Shutdown started.
pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}

fn notify(state: &[NotifyState]) {
    if let Err(error) = sd_notify::notify(false, state) {
        tracing::warn!(%error, "cannot tell systemd the service state");
    }
}
