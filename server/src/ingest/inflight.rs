//! `InflightBudget`: the server-wide cap on request body bytes held by ingest requests
//! between reading the body and answering it. Parsing costs a few times the body
//! size per entry, so without this cap memory grows with the number of concurrent
//! clients. It only counts and admits; it never reads a body and never queues a
//! request for longer than its bounded wait: past that the caller answers 503.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget is kept in KiB so that even a large cap fits a semaphore's `u32` permits.
const UNIT_BYTES: usize = 1024;

/// The shared budget; clones share it.
#[derive(Clone, Debug)]
pub struct InflightBudget {
    semaphore: Arc<Semaphore>,
    total_units: u32,
    wait: Duration,
}

/// The budget is spent: the request was not admitted within the wait.
#[derive(Debug, thiserror::Error)]
#[error("request bytes in flight are at the server's limit")]
pub struct BudgetExhausted;

/// A share of the budget, returned when dropped (that is, once the request is answered).
#[derive(Debug)]
pub struct InflightPermit {
    permit: Option<OwnedSemaphorePermit>,
    units: u32,
}

impl InflightBudget {
    /// A budget of `max_bytes` (at least one unit); admission waits at most `wait`.
    pub fn new(max_bytes: usize, wait: Duration) -> Self {
        let units = u32::try_from(max_bytes.div_ceil(UNIT_BYTES))
            .unwrap_or(u32::MAX)
            .clamp(1, u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX));
        InflightBudget {
            semaphore: Arc::new(Semaphore::new(units as usize)),
            total_units: units,
            wait,
        }
    }

    /// An empty share, grown with [`InflightBudget::grow`] as sizes become known.
    pub fn empty_permit(&self) -> InflightPermit {
        InflightPermit {
            permit: None,
            units: 0,
        }
    }

    /// Grows `permit` to cover `bytes`. A request larger than the whole budget takes
    /// the whole budget, so it runs alone instead of never.
    pub async fn grow(
        &self,
        permit: &mut InflightPermit,
        bytes: usize,
    ) -> Result<(), BudgetExhausted> {
        let wanted = u32::try_from(bytes.div_ceil(UNIT_BYTES))
            .unwrap_or(u32::MAX)
            .min(self.total_units);
        let extra = wanted.saturating_sub(permit.units);
        if extra == 0 {
            return Ok(());
        }
        let acquire = Arc::clone(&self.semaphore).acquire_many_owned(extra);
        let granted = match tokio::time::timeout(self.wait, acquire).await {
            Ok(Ok(granted)) => granted,
            // Timed out, or the semaphore is closed (it never is): refuse either way.
            Ok(Err(_)) | Err(_) => return Err(BudgetExhausted),
        };
        match permit.permit.as_mut() {
            Some(held) => held.merge(granted),
            None => permit.permit = Some(granted),
        }
        permit.units = wanted;
        Ok(())
    }

    /// Shrinks `permit` to cover only `bytes` (when it covers more), returning the rest
    /// to the budget: what a request charged while it needed more (a decoder, a buffer
    /// it has dropped) is freed for others at once, not when it is answered.
    pub fn shrink(&self, permit: &mut InflightPermit, bytes: usize) {
        let wanted = u32::try_from(bytes.div_ceil(UNIT_BYTES))
            .unwrap_or(u32::MAX)
            .min(self.total_units);
        let surplus = permit.units.saturating_sub(wanted);
        if surplus == 0 {
            return;
        }
        if let Some(held) = permit.permit.as_mut() {
            // Dropping the split-off part returns it to the semaphore.
            drop(held.split(surplus as usize));
            permit.units = wanted;
        }
    }

    /// Bytes currently reserved by requests in flight.
    pub fn reserved_bytes(&self) -> u64 {
        let free = u32::try_from(self.semaphore.available_permits()).unwrap_or(u32::MAX);
        u64::from(self.total_units.saturating_sub(free)) * UNIT_BYTES as u64
    }

    /// The cap in bytes (rounded up to whole KiB).
    pub fn limit_bytes(&self) -> u64 {
        u64::from(self.total_units) * UNIT_BYTES as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_permit_returns_its_bytes_when_dropped() {
        let budget = InflightBudget::new(10 * 1024, Duration::ZERO);
        let mut permit = budget.empty_permit();
        budget.grow(&mut permit, 3 * 1024).await.unwrap();
        budget.grow(&mut permit, 5 * 1024 + 1).await.unwrap();
        assert_eq!(budget.reserved_bytes(), 6 * 1024);
        drop(permit);
        assert_eq!(budget.reserved_bytes(), 0);
    }

    #[tokio::test]
    async fn a_shrunk_permit_returns_the_surplus_at_once() {
        let budget = InflightBudget::new(10 * 1024, Duration::ZERO);
        let mut permit = budget.empty_permit();
        budget.grow(&mut permit, 8 * 1024).await.unwrap();
        budget.shrink(&mut permit, 3 * 1024);
        assert_eq!(budget.reserved_bytes(), 3 * 1024);
        budget.shrink(&mut permit, 5 * 1024);
        assert_eq!(budget.reserved_bytes(), 3 * 1024, "shrinking never grows");
        budget.grow(&mut permit, 4 * 1024).await.unwrap();
        assert_eq!(budget.reserved_bytes(), 4 * 1024);
        drop(permit);
        assert_eq!(budget.reserved_bytes(), 0);
    }

    #[tokio::test]
    async fn growing_past_the_free_budget_is_refused_after_the_wait() {
        let budget = InflightBudget::new(4 * 1024, Duration::from_millis(10));
        let mut first = budget.empty_permit();
        budget.grow(&mut first, 3 * 1024).await.unwrap();
        let mut second = budget.empty_permit();
        assert!(budget.grow(&mut second, 2 * 1024).await.is_err());
        assert_eq!(budget.reserved_bytes(), 3 * 1024);
    }

    #[tokio::test]
    async fn a_request_larger_than_the_budget_takes_all_of_it() {
        let budget = InflightBudget::new(4 * 1024, Duration::ZERO);
        let mut permit = budget.empty_permit();
        budget.grow(&mut permit, 1 << 30).await.unwrap();
        assert_eq!(budget.reserved_bytes(), budget.limit_bytes());
    }
}
