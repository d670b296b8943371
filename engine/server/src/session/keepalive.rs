//! Keeping an etcd lease alive with a configurable interval and loss policy (the storage
//! crate's `keep_alive` renews every third of the TTL and reports a loss only after a whole TTL,
//! which is right for sessions but too late for a leader).

use std::time::Duration;

use etcd_client::{Client, LeaseKeepAliveStream, LeaseKeeper};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::SessionError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LossPolicy {
    /// Lost at the first keep-alive that fails or does not answer within the interval (leaders:
    /// stop acting while the lease is certainly still alive for everyone else).
    FirstFailure,
    /// Keep retrying; lost only when the lease is known expired or no renewal succeeded before
    /// it would expire (sessions: ride out a short etcd hiccup).
    Expiry,
}

/// One keep-alive stream with its last known expiry.
pub(super) struct KeepAlive {
    client: Client,
    lease_id: i64,
    keeper: LeaseKeeper,
    stream: LeaseKeepAliveStream,
    /// The lease is certainly alive until this instant (measured from before the request).
    expires: Instant,
    /// When the last successful round was sent.
    last_sent: Instant,
}

enum Round {
    Renewed(Instant),
    Expired,
    Failed(String),
}

async fn round(
    keeper: &mut LeaseKeeper,
    stream: &mut LeaseKeepAliveStream,
    deadline: Instant,
) -> Round {
    let sent = Instant::now();
    let exchange = async {
        keeper.keep_alive().await?;
        stream.message().await
    };
    match tokio::time::timeout_at(deadline, exchange).await {
        Ok(Ok(Some(resp))) if resp.ttl() > 0 => {
            Round::Renewed(sent + Duration::from_secs(resp.ttl() as u64))
        }
        Ok(Ok(Some(_))) => Round::Expired,
        Ok(Ok(None)) => Round::Failed("keep-alive stream closed".into()),
        Ok(Err(e)) => Round::Failed(e.to_string()),
        Err(_) => Round::Failed("keep-alive not answered in time".into()),
    }
}

impl KeepAlive {
    /// Opens the stream and renews once: the lease is alive (and renewable) when this returns.
    pub(super) async fn start(
        client: &Client,
        lease_id: i64,
        timeout: Duration,
    ) -> Result<KeepAlive, SessionError> {
        let deadline = Instant::now() + timeout;
        let mut c = client.clone();
        let (mut keeper, mut stream) =
            match tokio::time::timeout_at(deadline, c.lease_keep_alive(lease_id)).await {
                Ok(Ok(pair)) => pair,
                Ok(Err(e)) => {
                    return Err(SessionError::LeaseLost(format!(
                        "lease {lease_id:x}: cannot open the keep-alive stream: {e}"
                    )));
                }
                Err(_) => {
                    return Err(SessionError::LeaseLost(format!(
                        "lease {lease_id:x}: keep-alive stream not opened within {timeout:?}"
                    )));
                }
            };
        let sent = Instant::now();
        match round(&mut keeper, &mut stream, deadline).await {
            Round::Renewed(expires) => Ok(KeepAlive {
                client: client.clone(),
                lease_id,
                keeper,
                stream,
                expires,
                last_sent: sent,
            }),
            Round::Expired => Err(SessionError::LeaseLost(format!(
                "lease {lease_id:x} expired before its first keep-alive"
            ))),
            Round::Failed(why) => Err(SessionError::LeaseLost(format!(
                "lease {lease_id:x}: first keep-alive failed: {why}"
            ))),
        }
    }

    /// Renews every `interval` in a background task until aborted; `lost` turns true (and the
    /// task ends) according to `policy`.
    pub(super) fn spawn(
        self,
        interval: Duration,
        policy: LossPolicy,
    ) -> (JoinHandle<()>, watch::Receiver<bool>) {
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(self.run(interval, policy, tx));
        (task, rx)
    }

    async fn run(mut self, interval: Duration, policy: LossPolicy, lost: watch::Sender<bool>) {
        let lease_id = self.lease_id;
        let mut next = self.last_sent + interval;
        loop {
            tokio::time::sleep_until(next).await;
            let sent = Instant::now();
            next = sent + interval;
            // A round may take at most the interval, and never past the known expiry.
            let deadline = (sent + interval).min(self.expires);
            match round(&mut self.keeper, &mut self.stream, deadline).await {
                Round::Renewed(expires) => {
                    self.expires = expires;
                    self.last_sent = sent;
                }
                Round::Expired => {
                    tracing::warn!(lease_id, "etcd lease expired or was revoked");
                    break;
                }
                Round::Failed(why) => match policy {
                    LossPolicy::FirstFailure => {
                        tracing::warn!(lease_id, %why, "leader lease keep-alive failed: leadership lost");
                        let _ = lost.send(true);
                        // We have stopped acting: if etcd is still reachable (a slow answer),
                        // free the key now rather than making the others wait for the expiry.
                        let mut c = self.client.clone();
                        let revoke = tokio::time::timeout(interval, c.lease_revoke(lease_id));
                        if let Ok(Ok(_)) = revoke.await {
                            tracing::info!(lease_id, "revoked the lost leader lease");
                        }
                        break;
                    }
                    LossPolicy::Expiry => {
                        tracing::warn!(lease_id, %why, "lease keep-alive failed, reconnecting");
                        if !self.reconnect(interval).await {
                            tracing::warn!(
                                lease_id,
                                "lease could not be renewed before it expired"
                            );
                            break;
                        }
                        next = Instant::now(); // renew on the new stream at once
                    }
                },
            }
            if Instant::now() >= self.expires {
                tracing::warn!(lease_id, "lease could not be renewed before it expired");
                break;
            }
        }
        let _ = lost.send(true);
    }

    /// Opens a new keep-alive stream, retrying until the lease would expire. False if it could not.
    async fn reconnect(&mut self, interval: Duration) -> bool {
        let mut backoff = Duration::from_millis(50);
        loop {
            let now = Instant::now();
            if now >= self.expires {
                return false;
            }
            let deadline = (now + interval).min(self.expires);
            let mut c = self.client.clone();
            if let Ok(Ok((keeper, stream))) =
                tokio::time::timeout_at(deadline, c.lease_keep_alive(self.lease_id)).await
            {
                self.keeper = keeper;
                self.stream = stream;
                return true;
            }
            tokio::time::sleep_until((Instant::now() + backoff).min(self.expires)).await;
            backoff = (backoff * 2).min(interval);
        }
    }
}
