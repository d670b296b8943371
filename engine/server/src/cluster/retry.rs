//! Retrying cluster conditions until a deadline, with a bounded exponential back-off.

use std::time::Duration;

use tokio::time::Instant;

const FIRST_PAUSE: Duration = Duration::from_millis(20);
const MAX_PAUSE: Duration = Duration::from_millis(500);

/// The retry budget of one request.
#[derive(Debug)]
pub(crate) struct Retry {
    deadline: Instant,
    pause: Duration,
}

impl Retry {
    pub fn until(deadline: Instant) -> Self {
        Retry {
            deadline,
            pause: FIRST_PAUSE,
        }
    }

    /// Wait before the next attempt; `false` (without waiting) once the deadline has passed.
    /// The last pause ends at the deadline, so a request gets one attempt there.
    pub async fn pause(&mut self) -> bool {
        let now = Instant::now();
        if now >= self.deadline {
            return false;
        }
        tokio::time::sleep(self.pause.min(self.deadline - now)).await;
        self.pause = (self.pause * 2).min(MAX_PAUSE);
        true
    }
}
