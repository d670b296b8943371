//! Exponential back-off between failed attempts (coordinator calls, opening a channel, committing
//! a checkpoint), shared by the streaming and data nodes.

use std::time::Duration;

/// The first delay after a failure.
pub(crate) const FIRST_DELAY: Duration = Duration::from_millis(50);

/// Delays doubling from [`FIRST_DELAY`] up to a maximum.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(max: Duration) -> Self {
        Backoff {
            next: FIRST_DELAY.min(max),
            max,
        }
    }

    /// The delay to wait now; the next one doubles (up to the maximum).
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// Back to the first delay (after a success).
    pub fn reset(&mut self) {
        self.next = FIRST_DELAY.min(self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_maximum_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(300));
        let got: Vec<u64> = (0..5).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(got, vec![50, 100, 200, 300, 300]);
        b.reset();
        assert_eq!(b.next_delay(), FIRST_DELAY);
    }
}
